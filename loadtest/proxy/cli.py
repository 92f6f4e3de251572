"""``mcp-loadtest proxy``: the fault-injecting proxy (registered in loadtest/cli/main.py).

HTTP (legacy SSE and Streamable HTTP)::

    mcp-loadtest proxy --listen 127.0.0.1:9000 --upstream http://127.0.0.1:8000 \\
        --faults drop_response:0.05,truncate:every=50 --seed 1 --log faults.jsonl

stdio, as a wrapper command::

    mcp-loadtest proxy --stdio --faults duplicate:0.02 --log faults.jsonl -- python server.py

This module never imports ``loadtest.cli.main`` (that one imports this).
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import anyio
import click

from loadtest.core.aio import task_group
from loadtest.core.errors import UsageError, friendly
from loadtest.proxy.faults import FAULT_KINDS, FaultSpec, InjectionLog, parse_faults

_PREFIX = "mcp-loadtest proxy"


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT`` or ``PORT`` (host 127.0.0.1)."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    try:
        number = int(port)
    except ValueError:
        raise UsageError(f"--listen must be HOST:PORT, got {text!r}") from None
    if not 0 <= number <= 65535:
        raise UsageError(f"--listen: port {number} is out of range")
    return host.strip("[]") or "127.0.0.1", number


@click.command(
    "proxy",
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Fault kinds: " + ", ".join(FAULT_KINDS) + ". See the README for what each should be reported as.",
)
@click.option(
    "--listen",
    metavar="HOST:PORT",
    default="127.0.0.1:8808",
    show_default=True,
    help="HTTP: where the proxy listens.",
)
@click.option(
    "--upstream",
    metavar="URL",
    help="HTTP: the server's origin, e.g. http://127.0.0.1:8000 (paths are kept).",
)
@click.option("--stdio", is_flag=True, help="Wrap the stdio server command given after '--'.")
@click.option(
    "--faults",
    default="",
    metavar="SPEC",
    help="KIND:P or KIND:every=N [:max=M][:after=K][:ms=D], comma-separated.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the fault schedule.")
@click.option(
    "--log",
    "log_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Append one JSON line per injected fault here.",
)
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@friendly
def proxy_command(
    listen: str,
    upstream: str | None,
    stdio: bool,
    faults: str,
    seed: int,
    log_path: Path | None,
    command: tuple[str, ...],
) -> None:
    """Sit between a client and an MCP server and inject faults on a seeded schedule."""
    specs = parse_faults(faults)
    if stdio:
        if upstream is not None:
            raise UsageError("--stdio and --upstream do not go together (stdio wraps a command)")
        if not command:
            raise UsageError(
                "proxy --stdio needs the server command after '--', e.g. proxy --stdio -- python server.py"
            )
    else:
        if command:
            raise UsageError(f"unexpected command {' '.join(command)!r}: a server command goes with --stdio")
        if upstream is None:
            raise UsageError("proxy needs --upstream URL (HTTP) or --stdio -- CMD")
    address = parse_listen(listen)
    log = InjectionLog(log_path)
    try:
        if stdio:
            code = anyio.run(_stdio, list(command), specs, seed, log)
        else:
            assert upstream is not None
            code = anyio.run(_http, address, upstream, specs, seed, log)
    finally:
        log.close()
    click.echo(f"{_PREFIX}: {log.summary()}", err=True)
    sys.exit(code)


async def _stdio(command: list[str], specs: tuple[FaultSpec, ...], seed: int, log: InjectionLog) -> int:
    from loadtest.proxy.stdio import run_stdio_proxy

    return await run_stdio_proxy(command, specs, seed, log)


async def _http(
    address: tuple[str, int], upstream: str, specs: tuple[FaultSpec, ...], seed: int, log: InjectionLog
) -> int:
    # Imported here: the stdio wrapper starts once per session and should not pay for aiohttp.
    from loadtest.proxy.http import run_http_proxy

    def ready(url: str) -> None:
        what = ", ".join(spec.kind for spec in specs) or "none"
        click.echo(f"{_PREFIX}: {url} -> {upstream} (faults: {what}; seed {seed})", err=True)

    async with task_group() as tg:
        tg.start_soon(_stop_on_signal, tg.cancel_scope)
        await run_http_proxy(address, upstream, specs, seed, log, ready=ready)
    return 0


async def _stop_on_signal(scope: anyio.CancelScope) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for _ in signals:
            scope.cancel()
            return
