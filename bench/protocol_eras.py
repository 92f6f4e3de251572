"""Echo latency on the installed ``mcp``'s reference server: 2026-07-28 (auto) vs pinned 2025-11-25.

One session per (transport, protocol), sequential ``echo`` calls after a warm-up; the two
protocols alternate in rounds so that machine noise lands on both. Reports p50/p99 in µs and
the ratio modern/legacy per transport (the figure to read on a shared machine).

    .venv/bin/python bench/protocol_eras.py                  # 2,000 calls per side, 3 rounds
    .venv/bin/python bench/protocol_eras.py --calls 300 --rounds 1 --transport stdio
"""

from __future__ import annotations

import argparse
import statistics

import anyio

from loadtest.protocol.negotiation import negotiate
from loadtest.protocol.session import open_session
from loadtest.protocol.transports import connect
from loadtest.run.targets.reference import free_port, reference_command, start_target

PROTOCOLS = ("auto", "2025-11-25")


async def _one(transport: str, protocol: str, calls: int, warmup: int) -> tuple[str, str, list[int]]:
    port = None if transport == "stdio" else free_port()
    command = reference_command(transport, port=port)
    async with (
        start_target(transport, command=command, url=None, port=port) as endpoint,
        connect(transport, command=endpoint.command, url=endpoint.url) as channel,  # type: ignore[arg-type]
        open_session(channel) as session,
    ):
        hello = await negotiate(session, protocol)
        latencies: list[int] = []
        for i in range(warmup + calls):
            outcome = await session.request("tools/call", {"name": "echo", "arguments": {"text": f"e{i}"}})
            if outcome.error is not None:
                raise SystemExit(f"{transport} {protocol}: echo failed: {outcome.error}")
            if i >= warmup:
                latencies.append(outcome.latency_ns)
        return hello.protocol_version, hello.chosen_by, latencies


def _pct(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--transport", action="append", choices=("stdio", "http"))
    args = parser.parse_args()
    for transport in args.transport or ["stdio", "http"]:
        p50s: dict[str, list[float]] = {p: [] for p in PROTOCOLS}
        for _ in range(args.rounds):
            for protocol in PROTOCOLS:
                version, how, lat = await _one(transport, protocol, args.calls, args.calls // 10)
                p50s[protocol].append(_pct(lat, 0.5))
                print(
                    f"{transport:5} {protocol:10} -> {version} ({how}): "
                    f"p50 {_pct(lat, 0.5):.0f} µs  p99 {_pct(lat, 0.99):.0f} µs  n={len(lat)}"
                )
        modern, legacy = (statistics.median(p50s[p]) for p in PROTOCOLS)
        print(
            f"{transport:5} median p50: 2026-07-28 {modern:.0f} µs, 2025-11-25 {legacy:.0f} µs, "
            f"ratio {modern / legacy:.2f}"
        )


if __name__ == "__main__":
    anyio.run(main)
