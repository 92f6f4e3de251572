"""One MCP session over any transport: handshake, id correlation, deadlines, notifications.

Request ids are integers that carry the session's number in their high bits, so an answer that
reaches the wrong session is recognisable by its id alone (``misrouted``), and an answer to an
id this session already settled is a ``duplicate``. Nothing here raises for what the server
does; every request ends in an :class:`Outcome`, and answers that belong to no request are
reported to ``on_anomaly``.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio

from loadtest import __version__
from loadtest.core.aio import call_later, task_group
from loadtest.core.errors import TargetError
from loadtest.core.names import DEFAULT_REQUEST_TIMEOUT_S
from loadtest.protocol.transports.base import (
    LATEST_PROTOCOL_VERSION,
    PROTOCOL_VERSIONS,
    Channel,
    Message,
    Received,
    TransportError,
)
from loadtest.protocol.versions import ChosenBy, result_problem, with_envelope

#: Bits of a request id that count requests within one session (16M requests per session).
_SEQ_BITS = 24
_SEQ_MASK = (1 << _SEQ_BITS) - 1
_session_numbers = itertools.count(1)
#: Request ids remembered per kind (settled, timed out, failed) for classifying late answers.
#: Bounded, so that a session open for hours keeps constant memory; an answer later than this
#: many others is classified as if its request were unknown.
_REMEMBERED = 4096


def number_sessions(first: int, step: int = 1) -> None:
    """Number this process's sessions from now on ``first``, ``first + step``, ...

    Generator worker processes take disjoint residues (worker ``i`` of ``n``: ``i + 1``, step
    ``n``), so that request ids stay unique, and misrouting provable, across the whole run.
    """
    global _session_numbers
    if first < 1 or step < 1:
        raise ValueError("session numbers start at 1 and increase")
    _session_numbers = itertools.count(first, step)


@dataclass(frozen=True, slots=True)
class CallError:
    """Why a request did not succeed. ``silent`` marks failures no transport reported."""

    kind: str
    detail: str
    silent: bool = False


@dataclass(slots=True)
class Outcome:
    """How one request ended. Times are ``time.perf_counter_ns()`` values."""

    method: str
    request_id: int
    sent_ns: int
    done_ns: int = 0
    result: Any = None
    error: CallError | None = None
    #: Bytes of the response as it arrived on the wire (0 when unknown, e.g. in a batch).
    nbytes: int = 0
    #: Progress notifications received for this request.
    progress: int = 0
    #: Bytes of the request as sent.
    nbytes_out: int = 0

    @property
    def latency_ns(self) -> int:
        return self.done_ns - self.sent_ns


@dataclass(frozen=True, slots=True)
class Anomaly:
    """A message that answers no outstanding request of this session, or a stray error."""

    kind: str
    method: str | None
    detail: str
    silent: bool


@dataclass(frozen=True, slots=True)
class ServerHello:
    """What the server said in answer to ``initialize`` (or ``server/discover``, 2026-07-28+)."""

    protocol_version: str
    server_info: dict[str, Any]
    capabilities: dict[str, Any]
    latency_ns: int
    #: How the version was chosen; the versions ``server/discover`` listed (if it was asked).
    chosen_by: ChosenBy = "initialize"
    supported_versions: tuple[str, ...] = ()


class _Waiter:
    # A bare future and a timer rather than an anyio Event in a cancel scope: this is the
    # wait of every request, and that pair costs ~4x less (see loadtest.core.aio).
    __slots__ = ("expired", "future", "label", "outcome")

    def __init__(self, outcome: Outcome, label: str | None) -> None:
        self.future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.outcome = outcome
        self.expired = False
        # The caller's name for the request (its op), kept with the request itself so that it
        # goes when the request does: a side table outlived requests that never went out.
        self.label = label

    def settle(self) -> None:
        if not self.future.done():
            self.future.set_result(None)

    def expire(self) -> None:
        if not self.future.done():
            self.expired = True
            self.future.set_result(None)


@dataclass(eq=False)
class Session:
    """Use :func:`open_session`; this holds the state while the reader task runs."""

    channel: Channel
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT_S
    on_anomaly: Callable[[Anomaly], None] | None = None
    number: int = field(default_factory=lambda: next(_session_numbers))
    hello: ServerHello | None = None
    _next_seq: int = 1
    _pending: dict[int, _Waiter] = field(default_factory=dict)
    #: Methods of settled requests, to name the op of a late duplicate; bounded.
    _settled: dict[int, str] = field(default_factory=dict)
    _timed_out: dict[int, None] = field(default_factory=dict)
    #: Requests the transport failed loudly: an answer that still comes is no duplicate.
    _failed: dict[int, None] = field(default_factory=dict)
    _closed: CallError | None = None
    #: Stateless (2026-07-28+) sessions: the ``_meta`` of every request; answers are checked.
    envelope: dict[str, Any] | None = None

    @property
    def closed(self) -> CallError | None:
        """Why the channel closed under this session (server gone, stream ended), if it did."""
        return self._closed

    #: Why this session can carry no more calls, if so (the ``ClientSession`` protocol).
    ended = closed

    # -- requests ---------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
        progress: bool = False,
        label: str | None = None,
    ) -> Outcome:
        """Send a request and wait for its answer, at most ``timeout`` seconds.

        On timeout the server is sent ``notifications/cancelled`` and the outcome is a silent
        ``lost`` failure, unless the transport had reported a problem with this request.
        ``label`` (default: the method) names the request in anomalies about it, such as a
        later duplicate answer, so they count under the caller's op.
        """
        seq = self._next_seq
        self._next_seq = seq + 1
        if seq > _SEQ_MASK:
            raise RuntimeError("more than 16M requests in one session; use session churn")
        request_id = (self.number << _SEQ_BITS) | seq
        message: Message = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if progress:
            params = dict(params or {})
            params["_meta"] = {**params.get("_meta", {}), "progressToken": request_id}
        if self.envelope is not None:
            params = with_envelope(params, self.envelope)
        if params is not None:
            message["params"] = params
        outcome = Outcome(method, request_id, time.perf_counter_ns())
        if self._closed is not None:
            outcome.error = self._closed
            outcome.done_ns = outcome.sent_ns
            return outcome
        waiter = _Waiter(outcome, label)
        self._pending[request_id] = waiter
        outcome.nbytes_out = await self.channel.send(message)
        timer = call_later(self.request_timeout if timeout is None else timeout, waiter.expire)
        try:
            await waiter.future
        finally:
            timer.cancel()
        if waiter.expired:
            self._pending.pop(request_id, None)
            _remember(self._timed_out, request_id, None)
            outcome.done_ns = time.perf_counter_ns()
            outcome.error = CallError(
                "lost", "no answer by the deadline, and no transport error", silent=True
            )
            if method != "initialize":  # the spec forbids cancelling initialize
                await self._cancel(request_id)
        return outcome

    async def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        message: Message = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        await self.channel.send(message)

    async def _cancel(self, request_id: int) -> None:
        with anyio.move_on_after(2.0):
            await self.notify(
                "notifications/cancelled", {"requestId": request_id, "reason": "client deadline"}
            )

    async def initialize(
        self, protocol_version: str = LATEST_PROTOCOL_VERSION, timeout: float = 20.0
    ) -> ServerHello:
        """The handshake: ``initialize``, check the version the server chose, ``initialized``.

        Raises :class:`TargetError` (one line) when the server cannot be talked to at all.
        """
        outcome = await self.request(
            "initialize",
            {
                "protocolVersion": protocol_version,
                "capabilities": {},
                "clientInfo": {"name": "mcp-loadtest", "version": __version__},
            },
            timeout=timeout,
        )
        if outcome.error is not None:
            error = outcome.error
            url = self.channel.info.url
            if url is not None and error.kind == "connection":
                raise TargetError(f"cannot reach {url}: {error.detail}")
            where = f" ({url})" if url is not None else ""
            raise TargetError(f"initialize failed{where}: {error.kind}: {error.detail}")
        result = outcome.result
        if not isinstance(result, dict) or not isinstance(result.get("protocolVersion"), str):
            raise TargetError(f"initialize answered without a protocolVersion: {str(result)[:200]}")
        version = result["protocolVersion"]
        if version not in PROTOCOL_VERSIONS:
            raise TargetError(
                f"the server chose protocol version {version!r}, which this client does not speak"
            )
        await self.notify("notifications/initialized")
        self.hello = ServerHello(
            version,
            result.get("serverInfo") or {},
            result.get("capabilities") or {},
            outcome.latency_ns,
        )
        return self.hello

    # -- the reader -------------------------------------------------------------------------

    async def _read(self) -> None:
        incoming = self.channel.incoming
        while True:
            try:
                # Take what is queued without a checkpoint per message (``receive()`` yields
                # to the event loop first, every time); wait only when the queue is empty.
                item = incoming.receive_nowait()
            except anyio.WouldBlock:
                try:
                    item = await incoming.receive()
                except anyio.EndOfStream:
                    break
            except anyio.EndOfStream:
                break
            if type(item) is Received:
                message = item.message
                if isinstance(message, dict):
                    if "method" in message:
                        await self._on_server_message(message)
                    elif "id" in message:
                        self._on_response(message, item.nbytes)
                    else:
                        self._anomaly(
                            "malformed", None, f"neither request nor response: {str(message)[:200]}", True
                        )
                else:
                    self._anomaly("malformed", None, f"not a JSON-RPC object: {str(message)[:200]}", True)
            else:
                assert isinstance(item, TransportError)
                self._on_transport_error(item)
        self._close_all(CallError("channel_closed", "the transport closed"))

    def _on_response(self, message: Message, nbytes: int) -> None:
        request_id = message["id"]
        waiter = self._pending.pop(request_id, None) if type(request_id) is int else None
        if waiter is None:
            self._stray(request_id, message)
            return
        outcome = waiter.outcome
        outcome.done_ns = time.perf_counter_ns()
        outcome.nbytes = nbytes
        if "result" in message:
            outcome.result = message["result"]
            if self.envelope is not None and (problem := result_problem(outcome.method, outcome.result)):
                outcome.error = CallError("malformed", problem, silent=True)
        elif isinstance(error := message.get("error"), dict):
            outcome.error = CallError(
                f"jsonrpc_{error.get('code')}", str(error.get("message", ""))[:300], silent=False
            )
        else:
            outcome.error = CallError(
                "malformed", f"response has neither result nor error: {str(message)[:200]}", True
            )
        _remember(self._settled, request_id, waiter.label or outcome.method)
        waiter.settle()

    def _stray(self, request_id: Any, message: Message) -> None:
        ours = (
            type(request_id) is int
            and request_id >> _SEQ_BITS == self.number
            and 0 < (request_id & _SEQ_MASK) < self._next_seq
        )
        if not ours:
            self._anomaly(
                "misrouted", None, f"answer to id {request_id!r}, which this session never sent", True
            )
        elif request_id in self._timed_out:
            # Already counted as lost; its late arrival is worth knowing but is no new failure.
            self._timed_out.pop(request_id, None)
            self._anomaly("late", None, f"answer to id {request_id} arrived after its deadline", False)
        elif request_id in self._failed:
            # The transport already failed this request loudly (say, its POST broke), yet the
            # server answered it on another stream: a first answer, not a second one.
            self._failed.pop(request_id, None)
            self._anomaly(
                "late",
                None,
                f"answer to id {request_id} arrived after the transport reported it failed",
                False,
            )
        else:
            self._anomaly(
                "duplicate", self._settled.get(request_id), f"second answer to id {request_id}", True
            )

    async def _on_server_message(self, message: Message) -> None:
        method = message["method"]
        if "id" in message:
            # A request from the server. Answer ping; politely refuse what we do not offer.
            reply: Message = {"jsonrpc": "2.0", "id": message["id"]}
            if method == "ping":
                reply["result"] = {}
            else:
                reply["error"] = {"code": -32601, "message": f"mcp-loadtest does not offer {method}"}
            await self.channel.send(reply)
        elif method == "notifications/progress":
            params = message.get("params") or {}
            waiter = self._pending.get(params.get("progressToken"))  # type: ignore[arg-type]
            if waiter is not None:
                waiter.outcome.progress += 1

    def _on_transport_error(self, error: TransportError) -> None:
        failure = CallError(error.kind, error.detail, silent=False)
        if error.request_id is not None and (waiter := self._pending.pop(error.request_id, None)) is not None:
            _remember(self._failed, error.request_id, None)
            waiter.outcome.error = failure
            waiter.outcome.done_ns = time.perf_counter_ns()
            waiter.settle()
        elif error.fatal:
            self._close_all(failure)
        else:
            self._anomaly(error.kind, None, error.detail, False)

    def _close_all(self, failure: CallError) -> None:
        self._closed = self._closed or failure
        now = time.perf_counter_ns()
        for waiter in self._pending.values():
            waiter.outcome.error = failure
            waiter.outcome.done_ns = now
            waiter.settle()
        self._pending.clear()

    def _anomaly(self, kind: str, method: str | None, detail: str, silent: bool) -> None:
        if self.on_anomaly is not None:
            self.on_anomaly(Anomaly(kind, method, detail, silent))


def _remember(kept: dict[int, Any], request_id: int, value: Any) -> None:
    kept[request_id] = value
    if len(kept) > _REMEMBERED:
        del kept[next(iter(kept))]


@asynccontextmanager
async def open_session(
    channel: Channel,
    *,
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT_S,
    on_anomaly: Callable[[Anomaly], None] | None = None,
) -> AsyncIterator[Session]:
    """Run a session's reader over ``channel`` for the duration of the block (not initialised)."""
    session = Session(channel, request_timeout, on_anomaly)
    async with task_group() as tg:
        tg.start_soon(session._read)
        try:
            yield session
        finally:
            tg.cancel_scope.cancel()
