"""The injector: applies the fault schedule to server-to-client messages, whatever the framing.

Framings (stdio lines, SSE events, JSON bodies) differ only in how bytes reach the client; each
gives the injector a :class:`Sink` for the place a message is headed. Held messages (``delay``,
``swap``) are written later by tasks of the injector's task group; a sink counts them, so a
framing whose stream must end (a POST's event stream, a JSON body) waits until they are out.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import orjson
from anyio.abc import TaskGroup

from loadtest.proxy.faults import (
    _FOREIGN_ID_OFFSET,
    _NEEDS_TEXT,
    FaultSpec,
    InjectionLog,
    Schedule,
    alter_position,
    altered,
    expectation,
    longest_text,
    now,
    swap_key,
)
from loadtest.proxy.tracking import Tracked, Tracker

#: Faults that apply to responses (as opposed to notifications).
_RESPONSE_FAULTS = frozenset(
    {
        "drop_response",
        "truncate",
        "alter",
        "malformed",
        "duplicate",
        "swap",
        "foreign_id",
        "delay",
        "cut",
        "close_stream",
        "reset",
    }
)
_NOTIFICATION_FAULTS = frozenset({"drop_notification"})
#: Faults that make no sense for a framing: JSON bodies carry no notifications.
_UNSUPPORTED = {"http-json": frozenset({"drop_notification"})}


class Sink:
    """Where messages for one client stream go. Subclasses implement the framing."""

    framing = "stdio"

    def __init__(self) -> None:
        self._lock = anyio.Lock()
        self._held = 0
        self._idle = anyio.Event()
        self._idle.set()
        #: The sink's stream is gone (client left, or a fault ended it): later writes are dropped.
        self.closed = False

    async def send(self, data: bytes, meta: Any = None) -> None:
        """Write one whole message (``meta``: framing details such as an SSE event id)."""
        async with self._lock:
            if not self.closed:
                await self._send(data, meta)

    async def cut_and_close(self, partial: bytes) -> None:
        """Write the start of a message, then end the stream as if nothing were wrong."""
        async with self._lock:
            if not self.closed:
                self.closed = True
                await self._cut_and_close(partial)

    async def reset(self) -> None:
        """Break the connection (or pipe) abruptly."""
        async with self._lock:
            if not self.closed:
                self.closed = True
                await self._reset()

    async def _send(self, data: bytes, meta: Any) -> None:
        raise NotImplementedError

    async def _cut_and_close(self, partial: bytes) -> None:
        raise NotImplementedError

    async def _reset(self) -> None:
        raise NotImplementedError

    def hold(self) -> None:
        self._held += 1
        self._idle = anyio.Event() if self._held == 1 else self._idle

    def release(self) -> None:
        self._held -= 1
        if self._held == 0:
            self._idle.set()

    async def wait_idle(self) -> None:
        """Until every message held for this sink (delayed, waiting for a swap) is out."""
        await self._idle.wait()


@dataclass(slots=True)
class _Held:
    message: dict[str, Any]
    raw: bytes
    meta: Any
    sink: Sink
    tracked: Tracked
    text: str
    swapped: anyio.Event


class Injector:
    """Decides and applies faults; logs every injection with its expected classification."""

    def __init__(self, specs: tuple[FaultSpec, ...], seed: int, log: InjectionLog, tg: TaskGroup) -> None:
        self.schedule = Schedule(specs, seed)
        self.kinds = frozenset(spec.kind for spec in specs)
        self.specs = {spec.kind: spec for spec in specs}
        self.log = log
        self.tg = tg
        self.tracker = Tracker()
        self._rng = random.Random(f"{seed}:surgery")
        self._held: dict[str, _Held] = {}
        #: Called when a fault has ended the whole proxy's usefulness (stdio close/reset).
        self.on_fatal: Callable[[], None] | None = None

    @property
    def active(self) -> bool:
        return bool(self.kinds)

    # -- client to server -------------------------------------------------------------------

    def track(self, scope: Any, body: bytes | memoryview) -> None:
        """Remember the requests in a client-to-server message (or batch)."""
        if not self.kinds:
            return
        try:
            decoded = orjson.loads(body)
        except orjson.JSONDecodeError:
            return
        self.tracker.add(scope, decoded)

    # -- server to client -------------------------------------------------------------------

    async def deliver(self, scope: Any, raw: bytes, sink: Sink, meta: Any = None) -> None:
        """Pass one server-to-client message on to ``sink``, with a fault if one is due."""
        if not self.kinds:
            await sink.send(raw, meta)
            return
        try:
            message = orjson.loads(raw)
        except orjson.JSONDecodeError:
            await sink.send(raw, meta)
            return
        if not isinstance(message, dict):
            await sink.send(raw, meta)
            return
        if "method" in message:
            await self._notification(scope, message, raw, sink, meta)
        elif "result" in message and "id" in message:
            await self._response(scope, message, raw, sink, meta)
        else:
            if "id" in message:
                self.tracker.response(scope, message["id"])
            await sink.send(raw, meta)

    async def _notification(
        self, scope: Any, message: dict[str, Any], raw: bytes, sink: Sink, meta: Any
    ) -> None:
        if message.get("method") == "notifications/progress" and "drop_notification" in self.kinds:
            params = message.get("params")
            token = params.get("progressToken") if isinstance(params, dict) else None
            tracked = self.tracker.progress(scope, token)
            # At most one per request: a call counts as notification_lost once, however many go.
            if (
                tracked is not None
                and not tracked.notification_dropped
                and self._supported("drop_notification", sink)
            ):
                spec = self.schedule.decide(frozenset({"drop_notification"}))
                if spec is not None:
                    tracked.notification_dropped = True
                    self._log(
                        spec.kind, sink.framing, token, tracked, f"dropped progress notification {params}"
                    )
                    return
        await sink.send(raw, meta)

    async def _response(self, scope: Any, message: dict[str, Any], raw: bytes, sink: Sink, meta: Any) -> None:
        request_id = message["id"]
        tracked = self.tracker.response(scope, request_id)
        if tracked is None or tracked.method == "initialize":
            await sink.send(raw, meta)
            return
        slot = longest_text(message)
        text = slot[0][slot[1]] if slot is not None else ""
        key = swap_key(tracked)
        partner = self._held.get(key)
        if partner is not None and text and partner.text != text and self.schedule.under_limit("swap"):
            await self._swap(partner, message, raw, sink, meta, tracked, request_id)
            return
        eligible = {kind for kind in self.kinds & _RESPONSE_FAULTS if self._supported(kind, sink)}
        if not text:
            eligible -= _NEEDS_TEXT
        if key in self._held:
            eligible.discard("swap")  # one waiting per kind of call at a time
        spec = self.schedule.decide(frozenset(eligible))
        if spec is None:
            await sink.send(raw, meta)
            return
        await self._apply(spec, scope, message, raw, sink, meta, tracked, request_id, slot, text)

    def _supported(self, kind: str, sink: Sink) -> bool:
        return kind not in _UNSUPPORTED.get(sink.framing, frozenset())

    async def _apply(
        self,
        spec: FaultSpec,
        scope: Any,
        message: dict[str, Any],
        raw: bytes,
        sink: Sink,
        meta: Any,
        tracked: Tracked,
        request_id: Any,
        slot: tuple[dict[str, Any], str] | None,
        text: str,
    ) -> None:
        kind = spec.kind
        framing = sink.framing
        rng = self._rng
        if kind == "drop_response":
            self._log(kind, framing, request_id, tracked, "response dropped")
        elif kind == "duplicate":
            self._log(kind, framing, request_id, tracked, "response sent twice")
            await sink.send(raw, meta)
            await sink.send(raw, meta)
        elif kind == "truncate":
            assert slot is not None
            keep = rng.randrange(len(text))
            slot[0][slot[1]] = text[:keep]
            self._log(kind, framing, request_id, tracked, f"text cut to {keep} of {len(text)} chars")
            await sink.send(orjson.dumps(message), meta)
        elif kind == "alter":
            assert slot is not None
            at = alter_position(text, rng)
            if at is None:
                await sink.send(raw, meta)
                return
            new = altered(text[at])
            slot[0][slot[1]] = text[:at] + new + text[at + 1 :]
            self._log(
                kind,
                framing,
                request_id,
                tracked,
                f"char {at} of {len(text)} changed {text[at]!r} -> {new!r}",
            )
            await sink.send(orjson.dumps(message), meta)
        elif kind == "malformed":
            message["result"] = "result replaced by mcp-loadtest proxy"
            self._log(kind, framing, request_id, tracked, "result replaced by a string")
            await sink.send(orjson.dumps(message), meta)
        elif kind == "foreign_id":
            foreign = (
                request_id + _FOREIGN_ID_OFFSET if isinstance(request_id, int) else f"{request_id}-foreign"
            )
            message["id"] = foreign
            self._log(kind, framing, request_id, tracked, f"id rewritten to {foreign!r}")
            await sink.send(orjson.dumps(message), meta)
        elif kind == "cut":
            keep = rng.randrange(1, max(2, len(raw) - 1))
            self._log(kind, framing, request_id, tracked, f"message cut to {keep} of {len(raw)} bytes")
            await sink.send(raw[:keep], meta)
        elif kind == "delay":
            self._log(kind, framing, request_id, tracked, f"response held {spec.ms:g} ms")
            sink.hold()
            self.tg.start_soon(self._later, spec.ms / 1000, raw, sink, meta)
        elif kind == "swap":
            held = _Held(message, raw, meta, sink, tracked, text, anyio.Event())
            self._held[swap_key(tracked)] = held
            sink.hold()
            self.tg.start_soon(self._unswapped, held, spec.ms / 1000)
        elif kind == "close_stream":
            keep = max(1, len(raw) // 2)
            self._log(kind, framing, request_id, tracked, f"stream closed after {keep} of {len(raw)} bytes")
            await sink.cut_and_close(raw[:keep])
            self._fatal(framing)
        elif kind == "reset":
            self._log(kind, framing, request_id, tracked, "connection reset")
            await sink.reset()
            self._fatal(framing)
        else:  # pragma: no cover - parse_faults admits only known kinds
            raise AssertionError(kind)

    def _fatal(self, framing: str) -> None:
        if framing == "stdio" and self.on_fatal is not None:
            self.on_fatal()

    async def _later(self, delay: float, raw: bytes, sink: Sink, meta: Any) -> None:
        try:
            await anyio.sleep(delay)
            await sink.send(raw, meta)
        finally:
            sink.release()

    async def _unswapped(self, held: _Held, hold: float) -> None:
        # No partner came in time: let the response through as it was (nothing is logged).
        with anyio.move_on_after(hold):
            await held.swapped.wait()
        if held.swapped.is_set():
            return
        key = swap_key(held.tracked)
        if self._held.get(key) is held:
            del self._held[key]
        try:
            await held.sink.send(held.raw, held.meta)
        finally:
            held.sink.release()

    async def _swap(
        self,
        held: _Held,
        message: dict[str, Any],
        raw: bytes,
        sink: Sink,
        meta: Any,
        tracked: Tracked,
        request_id: Any,
    ) -> None:
        del self._held[swap_key(tracked)]
        held.swapped.set()
        self.schedule.count("swap")
        other_id = held.message["id"]
        # The two calls receive each other's results, under their own ids.
        mine = {**message, "result": held.message["result"]}
        theirs = {**held.message, "result": message["result"]}
        self._log(
            "swap",
            sink.framing,
            request_id,
            tracked,
            f"results of ids {other_id!r} and {request_id!r} exchanged",
            ids=[other_id, request_id],
            count=False,
        )
        try:
            await sink.send(orjson.dumps(mine), meta)
            await held.sink.send(orjson.dumps(theirs), held.meta)
        finally:
            held.sink.release()

    def _log(
        self,
        kind: str,
        framing: str,
        request_id: Any,
        tracked: Tracked,
        detail: str,
        *,
        ids: list[Any] | None = None,
        count: bool = True,
    ) -> None:
        if count:
            self.schedule.count(kind)
        self.log.write(
            {
                "t": round(now(), 6),
                "fault": kind,
                "framing": framing,
                "id": request_id,
                **({"ids": ids} if ids is not None else {}),
                "method": tracked.method,
                "op": tracked.op,
                "detail": detail,
                "expect": expectation(kind, framing).to_dict(),
            }
        )
