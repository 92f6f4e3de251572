"""Echo latency on the installed ``mcp``'s reference server: 2026-07-28 (auto) vs pinned 2025-11-25.

Paired, so that a shared machine's noise lands on both sides alike: per transport, one session
of each protocol is open at once (HTTP: both on one server; stdio: one server process each),
and sequential ``echo`` calls alternate between them after a warm-up. Reports p50/p99 in µs
per side and the ratio of the p50s, modern/legacy (the figure to read).

    .venv/bin/python bench/protocol_eras.py                  # 3,000 calls per side
    .venv/bin/python bench/protocol_eras.py --calls 300 --transport stdio
"""

from __future__ import annotations

import argparse
from contextlib import AsyncExitStack

import anyio

from loadtest.protocol.negotiation import negotiate
from loadtest.protocol.session import Session, open_session
from loadtest.protocol.transports import connect
from loadtest.run.targets.reference import free_port, reference_command, start_target

PROTOCOLS = ("auto", "2025-11-25")


def _pct(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000


async def _paired(transport: str, calls: int) -> None:
    async with AsyncExitStack() as stack:
        port = None if transport == "stdio" else free_port()
        command = reference_command(transport, port=port)
        endpoint = await stack.enter_async_context(
            start_target(transport, command=command, url=None, port=port)
        )
        sessions: list[Session] = []
        for protocol in PROTOCOLS:
            channel = await stack.enter_async_context(
                connect(transport, command=endpoint.command, url=endpoint.url)  # type: ignore[arg-type]
            )
            session = await stack.enter_async_context(open_session(channel))
            hello = await negotiate(session, protocol)
            print(f"{transport:5} {protocol:10} -> {hello.protocol_version} ({hello.chosen_by})")
            sessions.append(session)
        latencies: list[list[int]] = [[] for _ in PROTOCOLS]
        warmup = calls // 10
        for i in range(warmup + calls):
            for side, session in enumerate(sessions):
                outcome = await session.request(
                    "tools/call", {"name": "echo", "arguments": {"text": f"e{i}"}}
                )
                if outcome.error is not None:
                    raise SystemExit(f"{transport} {PROTOCOLS[side]}: echo failed: {outcome.error}")
                if i >= warmup:
                    latencies[side].append(outcome.latency_ns)
        for protocol, lat in zip(PROTOCOLS, latencies, strict=True):
            print(
                f"{transport:5} {protocol:10} p50 {_pct(lat, 0.5):.0f} µs  p99 {_pct(lat, 0.99):.0f} µs  n={len(lat)}"
            )
        modern, legacy = (_pct(lat, 0.5) for lat in latencies)
        print(f"{transport:5} p50 ratio 2026-07-28 / 2025-11-25: {modern / legacy:.2f}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--transport", action="append", choices=("stdio", "http"))
    args = parser.parse_args()
    for transport in args.transport or ["stdio", "http"]:
        await _paired(transport, args.calls)


if __name__ == "__main__":
    anyio.run(main)
