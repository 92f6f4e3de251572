"""``python -m loadtest.proxy``: the proxy command without loading the rest of the CLI."""

from loadtest.proxy.cli import proxy_command

proxy_command(prog_name="mcp-loadtest proxy")
