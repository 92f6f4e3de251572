"""The tester's side of SDK-client mode: worker processes that make calls with an ``mcp`` client.

:func:`open_sdk_pool` starts ``workers`` processes of :data:`WORKER_SCRIPT` with the chosen
environment's interpreter, and :meth:`SdkPool.session` opens one SDK ``ClientSession`` in one
of them. An :class:`SdkSession` has the built-in session's ``request`` signature and returns the
same :class:`~loadtest.protocol.session.Outcome`, so the driver, the integrity checks and the recorder
work unchanged: the worker sends back timings and what the SDK returned or raised, and every
verdict is made here.

Clocks: a worker reports ``perf_counter_ns`` times of its own. At start-up a few ``hello``
round trips estimate the offset between its clock and ours (as NTP does, from the fastest
round trip); on Linux both are CLOCK_MONOTONIC and the offset is taken as zero when it is
within the round trip's uncertainty. A call's times are then on our clock, so latency from the
intended time (open model) includes the trip to the worker and its queueing, while latency
from the actual send is the SDK call itself.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import orjson
import psutil

from loadtest.core.aio import read_lines, task_group
from loadtest.core.errors import LoadtestError, TargetError
from loadtest.core.process import TargetProcess, launch
from loadtest.protocol.session import CallError, Outcome
from loadtest.run.clients.config import ClientConfig
from loadtest.run.targets.reference import Endpoint

#: The standalone worker script; it imports only `mcp`, anyio and the standard library.
WORKER_SCRIPT = Path(__file__).with_name("sdk_worker.py")
PROTOCOL = 1
#: Importing `mcp` on a busy 2-core machine can take seconds.
START_TIMEOUT_S = 60.0
#: A worker answers every call by the call's own deadline; this is our margin beyond it.
REPLY_MARGIN_S = 10.0
#: The worker gives a session's teardown at most 2 x 3 s; we wait a little longer.
CLOSE_TIMEOUT_S = 8.0
STATS_TIMEOUT_S = 10.0
SEND_TIMEOUT_S = 60.0
_CLOCK_ROUNDS = 5
_ids = itertools.count(1)


class ClientStartError(LoadtestError):
    """The SDK client's worker could not start (no `mcp` there, an import error). Exit 3."""


@dataclass
class _Waiter:
    event: anyio.Event
    reply: dict[str, Any] | None = None
    nbytes: int = 0


@dataclass(frozen=True)
class ClientCost:
    """The workers' CPU at one moment: all of it, and the part spent on our protocol."""

    cpu_s: float
    harness_cpu_s: float
    rss_peak_bytes: int


class _Worker:
    """One worker process: our end of its pipe, the replies we wait for, its sessions."""

    def __init__(self, process: TargetProcess) -> None:
        self.process = process
        self.waiters: dict[int, _Waiter] = {}
        self.sessions: dict[int, SdkSession] = {}
        self.lock = anyio.Lock()
        self.offset_ns = 0
        self.hello: dict[str, Any] = {}
        self.gone: str | None = None

    async def send(self, message: Mapping[str, Any]) -> int:
        data = orjson.dumps(message) + b"\n"
        stdin = self.process.process.stdin
        assert stdin is not None
        async with self.lock:
            if self.gone is not None:
                return len(data)
            # A worker that stops reading its input (a stuck event loop) would block us for
            # ever once the pipe is full; past the deadline it counts as gone.
            with anyio.move_on_after(SEND_TIMEOUT_S) as deadline:
                try:
                    await stdin.send(data)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                    self._lost("has closed its input")
            if deadline.cancelled_caught:
                self._lost(f"has not read its input for {SEND_TIMEOUT_S:g}s")
        return len(data)

    def expect(self, message_id: int) -> _Waiter:
        waiter = _Waiter(anyio.Event())
        if self.gone is not None:
            waiter.reply = self._gone_reply()
            waiter.event.set()
        else:
            self.waiters[message_id] = waiter
        return waiter

    async def ask(self, message: dict[str, Any], timeout: float) -> dict[str, Any] | None:
        """Send ``message`` (its ``id`` is set here) and wait for the reply; None on timeout."""
        message_id = message["id"] = next(_ids)
        waiter = self.expect(message_id)
        await self.send(message)
        with anyio.move_on_after(timeout):
            await waiter.event.wait()
        self.waiters.pop(message_id, None)
        return waiter.reply

    async def read(self) -> None:
        """Our reader task: lines from the worker, to whoever waits for them."""
        stdout = self.process.process.stdout
        assert stdout is not None
        await read_lines(stdout, self._deliver)
        # End of its output: the worker has exited or is about to (bounded: it may hang).
        with anyio.move_on_after(2.0):
            await self.process.process.wait()
            await self.process.stderr_done.wait()  # its last words, for the message
        self._lost(self.process.describe_exit())

    def _deliver(self, line: memoryview) -> None:
        try:
            message = orjson.loads(line)
        except orjson.JSONDecodeError:
            return  # not ours (the worker keeps its stdout clean; be tolerant all the same)
        if not isinstance(message, dict):
            return
        if message.get("t") == "dead":
            session = self.sessions.get(message.get("sid", -1))
            if session is not None:
                session.dead = CallError("sdk_session_ended", str(message.get("error", ""))[:500])
            return
        waiter = self.waiters.pop(message.get("id", -1), None)
        if waiter is not None:
            waiter.reply = message
            waiter.nbytes = len(line) + 1
            waiter.event.set()

    def _gone_reply(self) -> dict[str, Any]:
        return {"t": "gone", "error": {"kind": "sdk_worker_died", "detail": self.gone, "silent": False}}

    def _lost(self, why: str) -> None:
        if self.gone is None:
            self.gone = f"the SDK client's worker process {why}"[:1000]
        for waiter in self.waiters.values():
            waiter.reply = self._gone_reply()
            waiter.event.set()
        self.waiters.clear()
        for session in self.sessions.values():
            session.dead = session.dead or CallError("sdk_worker_died", self.gone)

    async def sync_clock(self) -> None:
        """The hello handshake: what the worker is, and its clock's offset from ours."""
        best: tuple[int, int] | None = None
        for _ in range(_CLOCK_ROUNDS):
            before = time.perf_counter_ns()
            reply = await self.ask({"t": "hello"}, START_TIMEOUT_S)
            after = time.perf_counter_ns()
            if reply is None or reply.get("t") != "hello":
                detail = self.gone or f"no answer within {START_TIMEOUT_S:g}s"
                raise ClientStartError(f"the SDK client could not start: {detail}")
            self.hello = reply
            rtt = after - before
            offset = int(reply["now"]) - (before + after) // 2
            if best is None or rtt < best[0]:
                best = (rtt, offset)
        assert best is not None
        rtt, offset = best
        # Within the round trip's uncertainty of zero: the same clock (Linux: CLOCK_MONOTONIC).
        self.offset_ns = 0 if abs(offset) <= rtt // 2 + 1000 else offset
        if self.hello.get("protocol") != PROTOCOL:
            raise ClientStartError(
                f"the SDK client worker speaks protocol {self.hello.get('protocol')}, not {PROTOCOL}"
            )

    def local(self, worker_ns: int) -> int:
        return worker_ns - self.offset_ns


class SdkSession:
    """One SDK ``ClientSession`` in a worker; ``request`` as :meth:`loadtest.protocol.session.Session.request`."""

    def __init__(self, worker: _Worker, sid: int, request_timeout: float) -> None:
        self.worker = worker
        self.sid = sid
        self.request_timeout = request_timeout
        #: Set when the session's transport failed (or the worker died): calls fail at once.
        self.dead: CallError | None = None

    @property
    def ended(self) -> CallError | None:
        """Why this session can carry no more calls, if so (the ``ClientSession`` protocol)."""
        return self.dead

    async def request(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
        progress: bool = False,
        label: str | None = None,
    ) -> Outcome:
        """Have the SDK make the call; its outcome, with times on our clock."""
        del label  # the SDK reports no anomalies (duplicates, strays) to name an op in
        timeout = self.request_timeout if timeout is None else timeout
        worker = self.worker
        message_id = next(_ids)
        if self.dead is not None:
            now = time.perf_counter_ns()
            return Outcome(method, message_id, now, now, error=self.dead)
        waiter = worker.expect(message_id)
        sent_here = time.perf_counter_ns()
        nbytes_out = await worker.send(
            {
                "t": "call",
                "id": message_id,
                "sid": self.sid,
                "method": method,
                "params": params,
                "progress": progress,
                "timeout": timeout,
            }
        )
        with anyio.move_on_after(timeout + REPLY_MARGIN_S):
            await waiter.event.wait()
        worker.waiters.pop(message_id, None)
        reply = waiter.reply
        if reply is None:
            now = time.perf_counter_ns()
            detail = f"the worker did not answer within {timeout + REPLY_MARGIN_S:g}s"
            return Outcome(
                method,
                message_id,
                sent_here,
                now,
                error=CallError("sdk_worker_timeout", detail),
                nbytes_out=nbytes_out,
            )
        error = reply.get("error")
        if "start" in reply:
            sent_ns, done_ns = worker.local(int(reply["start"])), worker.local(int(reply["end"]))
        else:  # the worker died: no times of its own
            sent_ns, done_ns = sent_here, time.perf_counter_ns()
        outcome = Outcome(
            method,
            message_id,
            sent_ns,
            done_ns,
            result=reply.get("result"),
            nbytes=waiter.nbytes,
            progress=int(reply.get("progress", 0)),
            nbytes_out=nbytes_out,
        )
        if error is not None:
            outcome.error = CallError(
                str(error.get("kind")), str(error.get("detail", ""))[:500], bool(error.get("silent"))
            )
        return outcome


@dataclass(frozen=True)
class SdkHello:
    """What the first session's handshake told (as the built-in :class:`ServerHello`)."""

    protocol_version: str
    server_info: dict[str, Any]
    latency_ns: int


class SdkPool:
    """Worker processes of one SDK client, for one transport's run."""

    def __init__(self, config: ClientConfig, workers: list[_Worker]) -> None:
        self.config = config
        self.workers = workers
        self._turn = itertools.count()
        self._sids = itertools.count(1)

    @property
    def info(self) -> dict[str, Any]:
        """The first worker's hello: ``mcp`` version, API generation, Python, client names."""
        return dict(self.workers[0].hello)

    def server_pids(self) -> list[int]:
        """stdio: the server processes the SDK clients started (children of the workers)."""
        pids: list[int] = []
        for worker in self.workers:
            with contextlib.suppress(psutil.Error):
                pids += [child.pid for child in psutil.Process(worker.process.pid).children()]
        return pids

    @asynccontextmanager
    async def session(
        self, endpoint: Endpoint, *, connect_timeout: float, request_timeout: float
    ) -> AsyncIterator[tuple[SdkSession, SdkHello]]:
        """Open one SDK session in the next worker; closed (bounded) at the end of the block.

        Raises :class:`TargetError` when the SDK cannot open it (the message is the SDK's).
        """
        worker = self.workers[next(self._turn) % len(self.workers)]
        sid = next(self._sids)
        session = SdkSession(worker, sid, request_timeout)
        worker.sessions[sid] = session
        try:
            reply = await worker.ask(
                {
                    "t": "open",
                    "sid": sid,
                    "transport": endpoint.transport,
                    "command": endpoint.command,
                    "url": endpoint.url,
                    "env": dict(endpoint.env),
                    "headers": dict(endpoint.headers),
                    "timeout": connect_timeout,
                },
                connect_timeout + REPLY_MARGIN_S,
            )
            if reply is None or not reply.get("ok"):
                why = (reply or {}).get("error") or f"no answer within {connect_timeout + REPLY_MARGIN_S:g}s"
                if isinstance(why, dict):
                    why = why.get("detail")
                where = f" ({endpoint.url})" if endpoint.url else ""
                raise TargetError(f"{self.config.describe()} could not open a session{where}: {why}")
            hello = SdkHello(
                str(reply.get("protocol_version") or ""),
                dict(reply.get("server_info") or {}),
                worker.local(int(reply["end"])) - worker.local(int(reply["start"])),
            )
            yield session, hello
        finally:
            worker.sessions.pop(sid, None)
            # Shielded and bounded: this runs when the run is being cancelled too, and a
            # session left open in the worker would hold a server process or a connection.
            with anyio.CancelScope(shield=True):
                if worker.gone is None:
                    await worker.ask({"t": "close", "sid": sid}, CLOSE_TIMEOUT_S)

    async def cost(self) -> ClientCost | None:
        """The workers' CPU so far (None if one of them could not say)."""
        cpu = harness = 0.0
        rss = 0
        for worker in self.workers:
            reply = await worker.ask({"t": "stats"}, STATS_TIMEOUT_S)
            if reply is None or reply.get("t") != "stats":
                return None
            cpu += float(reply["cpu_s"])
            harness += float(reply["harness_cpu_s"])
            rss = max(rss, int(reply.get("rss_peak_bytes", 0)))
        return ClientCost(cpu, harness, rss)


@asynccontextmanager
async def open_sdk_pool(config: ClientConfig, *, stderr_log: Path | None = None) -> AsyncIterator[SdkPool]:
    """Start the SDK client's workers and check they speak our protocol; stop them at the end.

    Raises :class:`ClientStartError` (one line, the worker's stderr tail) when one cannot start.
    """
    async with task_group() as tg:
        try:
            # The workers' stops (stdin closed, then signals, bounded) run before the readers
            # are cancelled, so a reader sees its worker's end.
            async with contextlib.AsyncExitStack() as stack:
                workers: list[_Worker] = []
                for _ in range(max(1, config.workers)):
                    try:
                        process = await stack.enter_async_context(
                            launch([config.python, str(WORKER_SCRIPT)], stderr_log=stderr_log)
                        )
                    except TargetError as exc:
                        raise ClientStartError(f"the SDK client could not start: {exc}") from None
                    worker = _Worker(process)
                    tg.start_soon(worker.read)
                    workers.append(worker)
                for worker in workers:
                    await worker.sync_clock()
                yield SdkPool(config, workers)
        finally:
            tg.cancel_scope.cancel()
