"""The project's shared vocabulary: names and defaults that more than one layer relies on.

Each fact is written here once and imported wherever it is used, so that two layers can never
disagree about it (the scenario's list of transports and the transports' own, say).
"""

from __future__ import annotations

from typing import Literal, get_args

# -- transports and targets ---------------------------------------------------------------------

#: A transport as the tester names it, everywhere: scenarios, run.json, the command line.
TransportName = Literal["stdio", "sse", "http"]
#: Every transport, in the order a run goes through them.
TRANSPORTS: tuple[TransportName, ...] = get_args(TransportName)
#: The names servers' own ``--transport`` flags use (the `mcp` SDK's, the reference server's):
#: what ``{transport}`` becomes in a target command.
SERVER_TRANSPORT_NAMES: dict[str, str] = {"stdio": "stdio", "sse": "sse", "http": "streamable-http"}
#: Where a launched HTTP target serves each transport, unless told otherwise.
DEFAULT_PATHS: dict[str, str] = {"sse": "/sse", "http": "/mcp"}
#: The only address launched targets listen on.
LOOPBACK = "127.0.0.1"
#: How long a call may wait for its answer before it counts as ``lost``.
DEFAULT_REQUEST_TIMEOUT_S = 30.0


def transport_name(name: str) -> TransportName | None:
    """Our name for a transport named either way (``http`` or ``streamable-http``); None if unknown."""
    for ours in TRANSPORTS:
        if name in (ours, SERVER_TRANSPORT_NAMES[ours]):
            return ours
    return None


__all__ = [
    "DEFAULT_PATHS",
    "DEFAULT_REQUEST_TIMEOUT_S",
    "LOOPBACK",
    "SERVER_TRANSPORT_NAMES",
    "TRANSPORTS",
    "TransportName",
    "transport_name",
]
