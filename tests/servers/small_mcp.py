"""Small real MCP servers for the expectation tests, written with the installed ``mcp``.

Run as ``python small_mcp.py KIND`` (stdio). Each kind plays a server the tester met in the wild:

``nonce``
    ``record(nonce, seed)`` answers ``nonce=<nonce> seed=<seed>`` as text, and ``pair`` answers
    ``{"nonce": ..., "seed": ...}`` (as structured content on releases that have it).
``shared``
    Shared state, as ``@modelcontextprotocol/server-memory`` has: ``remember(name)`` stores a
    name; ``names()`` answers every stored name; ``previous(name)`` stores a name and answers
    the one stored before it (someone else's, legitimately).
``empty``
    No tools, prompts or resources at all: every list is empty.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

warnings.filterwarnings("ignore", module=r"pydantic_settings(\.|$)")

try:  # mcp 2.x
    from mcp.server.mcpserver import MCPServer as Server
except ModuleNotFoundError as exc:  # mcp 1.x
    if exc.name != "mcp.server.mcpserver":
        raise
    from mcp.server.fastmcp import FastMCP as Server  # type: ignore[no-redef, attr-defined, unused-ignore]


def build(kind: str) -> Any:
    server = Server(f"small-{kind}")
    if kind == "nonce":

        @server.tool()
        def record(nonce: str, seed: int) -> str:
            return f"nonce={nonce} seed={seed}"

        @server.tool()
        def pair(nonce: str, seed: int) -> dict[str, Any]:
            return {"nonce": nonce, "seed": seed}

    elif kind == "shared":
        stored: list[str] = []

        @server.tool()
        def remember(name: str) -> str:
            stored.append(name)
            return f"stored {name}"

        @server.tool()
        def names() -> str:
            return ", ".join(stored) or "(none)"

        @server.tool()
        def previous(name: str) -> str:
            before = stored[-1] if stored else "(none)"
            stored.append(name)
            return f"before: {before}"

    elif kind != "empty":
        raise SystemExit(f"unknown kind {kind!r}")
    return server


if __name__ == "__main__":
    build(sys.argv[1]).run("stdio")
