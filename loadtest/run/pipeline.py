"""The path of one call: render -> request -> check -> record.

Every call of every model and client goes through :meth:`CallPipeline.call`. The outcome is
classified once (by the op's :class:`~loadtest.run.check.Checker`) and that verdict is what
the recorder counts; warm-up calls are made (they warm the server) but never recorded.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable
from typing import Any, Protocol

import anyio

from loadtest.measure.metrics import OpStats, Recorder
from loadtest.protocol.session import CallError, Outcome
from loadtest.run.check import Checker, Verdict
from loadtest.run.health_watch import HangDetector
from loadtest.scenario import Op

_SEED_MASK = 0xFFFFFFFF


class ClientSession(Protocol):
    """A session that makes calls: the built-in :class:`~loadtest.protocol.session.Session`,
    or an `mcp` SDK's session in a client worker (:class:`~loadtest.run.clients.sdk_pool.SdkSession`)."""

    async def request(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
        progress: bool = False,
        label: str | None = None,
    ) -> Outcome: ...

    @property
    def ended(self) -> CallError | None: ...


class Flight:
    """Calls under way: on the wire (``in_flight``) and, open model, waiting for room on a
    session (``queued``); ``drained`` is set when both reach 0 after the run stopped."""

    __slots__ = ("drained", "in_flight", "in_flight_max", "queued", "stopping")

    def __init__(self, stopping: anyio.Event) -> None:
        self.stopping = stopping
        self.in_flight = 0
        self.queued = 0
        #: The most calls on the wire at once (closed model: at most the sessions).
        self.in_flight_max = 0
        self.drained = anyio.Event()

    def maybe_drained(self) -> None:
        if self.in_flight == 0 and self.queued == 0 and self.stopping.is_set():
            self.drained.set()

    async def drain(self, grace_s: float) -> None:
        """Give outstanding calls ``grace_s`` to finish."""
        with anyio.move_on_after(grace_s):
            while self.in_flight or self.queued:
                self.drained = anyio.Event()
                await self.drained.wait()


class CallPipeline:
    """Makes, checks and records the calls of one transport's ops."""

    def __init__(
        self,
        ops: tuple[Op, ...],
        recorder: Recorder,
        transport: str,
        *,
        token: str | None,
        hang: HangDetector,
        flight: Flight,
        measuring: Callable[[int], bool],
    ) -> None:
        self.ops = ops
        self.stats: list[OpStats] = [recorder.op(transport, op.name) for op in ops]
        self.checkers = [Checker(op) for op in ops]
        self.token = token or secrets.token_hex(3)
        self.counter = itertools.count(1)
        self.seed_base = secrets.randbits(32)
        self.hang = hang
        self.flight = flight
        #: Whether a call intended at this instant is measured (not warm-up, not set-up).
        self.measuring = measuring

    async def call(self, session: ClientSession, index: int, intended_ns: int) -> None:
        """Make one call of op ``index`` on ``session``, intended at ``intended_ns``; record it."""
        op = self.ops[index]
        k = next(self.counter)
        # Fixed width, so that no nonce is a prefix of another: a cut-short answer then never
        # reads as another call's, nor another call's answer as a cut-short one.
        nonce = f"nonce-{self.token}-{k:010d}"
        seed = (self.seed_base + k) & _SEED_MASK
        params = op.render(nonce, seed)
        flight = self.flight
        flight.in_flight += 1
        if flight.in_flight > flight.in_flight_max:
            flight.in_flight_max = flight.in_flight
        try:
            outcome = await session.request(op.method, params, progress=op.progress, label=op.name)
        finally:
            flight.in_flight -= 1
            flight.maybe_drained()
        error = outcome.error
        # A JSON-RPC error is an answer: the server is alive. A lost call counts toward a hang.
        if error is None or error.kind.startswith("jsonrpc_"):
            self.hang.answered(outcome.done_ns)
        elif error.kind == "lost":
            self.hang.lost_one()
        if not self.measuring(intended_ns):
            return
        verdict = self.checkers[index].check(outcome, params, nonce, seed)
        self._record(index, intended_ns, outcome, verdict, nonce, seed)

    def _record(
        self, index: int, intended_ns: int, outcome: Outcome, verdict: Verdict, nonce: str, seed: int
    ) -> None:
        op = self.ops[index]
        example = None
        if not verdict.ok:
            example = {
                "request_id": outcome.request_id,
                "op": op.name,
                "nonce": nonce,
                "detail": verdict.detail,
                # What was expected and what came, shortened by the recorder when kept.
                "expected": op.expected_text(nonce, seed) or op.expect.to_dict(),
                "got": outcome.result if outcome.error is None else None,
            }
        self.stats[index].record(
            intended_ns,
            outcome.sent_ns,
            # A lost call has no latency: its "latency" would only be the deadline.
            0 if verdict.silent == "lost" else outcome.done_ns,
            error=verdict.error,
            silent=verdict.silent,
            bytes_in=outcome.nbytes,
            bytes_out=outcome.nbytes_out,
            example=example,
        )

    def no_session(self, index: int, intended_ns: int) -> None:
        """Open model: a call that could not go out because no session was open."""
        self.stats[index].record(intended_ns, intended_ns, 0, error="no_session")

    def counters(self) -> dict[str, list[Any]]:
        """Per op: its health-log entry (see :meth:`~loadtest.measure.opstats.OpStats.log_entry`)."""
        return {stats.name: stats.log_entry() for stats in self.stats}

    def calls(self) -> int:
        return sum(stats.count for stats in self.stats)


__all__ = ["CallPipeline", "ClientSession", "Flight"]
