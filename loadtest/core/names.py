"""The project's shared vocabulary: names, defaults and ranges that more than one layer relies on.

Each fact is written here once and imported wherever it is used, so that two layers can never
disagree about it (the scenario's list of transports and the transports' own; the ``.hlog``
writer and its readers, which once disagreed on the histogram range). Keep each block together.
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


# -- results files and latency histograms (owner: the results model, loadtest.results) ---------

#: The run document inside a run directory (README, "Results").
RUN_FILE = "run.json"
#: The plan of a matrix (its sides and repeats), next to the matrix's run directories.
MATRIX_FILE = "matrix.json"
#: Suffix of a transport's HdrHistogram interval log: ``<transport>.hlog``.
HLOG_SUFFIX = ".hlog"
#: What a secret value (an auth header, an API key) is replaced by in anything written.
REDACTED = "<redacted>"

#: Latency histograms: 1 µs .. 1 h at 3 significant digits (README, "Results").
LOWEST_US = 1
HIGHEST_US = 3_600_000_000
SIGNIFICANT_DIGITS = 3
#: The generator's scheduling-lag histograms: 1 µs .. 60 s at 2 significant digits (a lag
#: figure needs no more precision, and the smaller histogram is cheaper to merge).
LAG_RANGE: tuple[int, int, int] = (1, 60_000_000, 2)

# -- the generator's own health (the run measures it, the summary judges it) -------------------

#: Above this share of one core, or this event-loop lag, the generator may be the bottleneck.
GENERATOR_BUSY_LIMIT = 0.8
GENERATOR_LAG_LIMIT_US = 5_000

__all__ = [
    "DEFAULT_PATHS",
    "DEFAULT_REQUEST_TIMEOUT_S",
    "GENERATOR_BUSY_LIMIT",
    "GENERATOR_LAG_LIMIT_US",
    "HIGHEST_US",
    "HLOG_SUFFIX",
    "LAG_RANGE",
    "LOOPBACK",
    "LOWEST_US",
    "MATRIX_FILE",
    "REDACTED",
    "RUN_FILE",
    "SERVER_TRANSPORT_NAMES",
    "SIGNIFICANT_DIGITS",
    "TRANSPORTS",
    "TransportName",
    "transport_name",
]
