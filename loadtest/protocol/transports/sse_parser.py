"""An incremental Server-Sent Events parser that copes with events of tens of MB.

aiohttp's line reader refuses lines over its buffer limit, and MCP servers send a whole
JSON-RPC message as one ``data:`` line, so a 32 MB resource is a 32 MB line. This parser keeps
one growing buffer and remembers where it stopped scanning, so a long line costs O(n) overall.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SseEvent:
    event: str
    data: bytes
    id: str | None
    retry: int | None


class SseParser:
    """Feed it chunks of bytes; it returns the complete events they finish."""

    __slots__ = ("_buf", "_data", "_event", "_id", "_retry", "_scan", "last_event_id", "retry_ms")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._scan = 0
        self._data: list[bytes] = []
        self._event = ""
        self._id: str | None = None
        self._retry: int | None = None
        #: The last event id seen on this stream (for Last-Event-ID on resumption).
        self.last_event_id: str | None = None
        #: The last ``retry`` value the server sent, in ms.
        self.retry_ms: int | None = None

    @property
    def pending_bytes(self) -> int:
        """Bytes received that do not yet form a complete event."""
        return len(self._buf) + sum(len(d) for d in self._data)

    def feed(self, chunk: bytes) -> list[SseEvent]:
        buf = self._buf
        buf += chunk
        events: list[SseEvent] = []
        start = 0
        while True:
            nl = buf.find(b"\n", self._scan)
            if nl < 0:
                self._scan = len(buf)
                break
            end = nl - 1 if nl > start and buf[nl - 1] == 0x0D else nl
            if buf.startswith(b"data:", start):
                # The hot case, and the one that can be huge: copy the value once, no more.
                value_start = start + 6 if buf.startswith(b" ", start + 5) else start + 5
                with memoryview(buf) as view:
                    self._data.append(bytes(view[value_start:end]))
            else:
                self._line(bytes(buf[start:end]), events)
            start = nl + 1
            self._scan = start
        if start:
            del buf[:start]
            self._scan -= start
        return events

    def _line(self, line: bytes, events: list[SseEvent]) -> None:
        if not line:
            if self._data or self._event or self._id is not None or self._retry is not None:
                events.append(
                    SseEvent(self._event or "message", b"\n".join(self._data), self._id, self._retry)
                )
            self._data = []
            self._event = ""
            self._id = None
            self._retry = None
            return
        if line[0] == 0x3A:  # ":" starts a comment (keep-alives)
            return
        name, sep, value = line.partition(b":")
        if sep and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        elif name == b"id":
            if b"\0" not in value:
                self._id = self.last_event_id = value.decode("utf-8", "replace")
        elif name == b"retry" and value.isdigit():
            self._retry = self.retry_ms = int(value)
