"""The SSE parser: framing details and very long events."""

from __future__ import annotations

from loadtest.protocol.transports.sse_parser import SseParser


def test_events_split_across_arbitrary_chunks() -> None:
    wire = b'event: endpoint\r\ndata: /messages/?session_id=1\r\n\r\n: keep-alive\n\nid: 7\ndata:\n\ndata: {"a"\ndata: :1}\n\n'
    for size in (1, 2, 3, 7, len(wire)):
        parser = SseParser()
        events = []
        for i in range(0, len(wire), size):
            events += parser.feed(wire[i : i + size])
        assert [(e.event, e.data, e.id) for e in events] == [
            ("endpoint", b"/messages/?session_id=1", None),
            ("message", b"", "7"),
            ("message", b'{"a"\n:1}', None),
        ]
        assert parser.last_event_id == "7"


def test_retry_field_is_kept() -> None:
    parser = SseParser()
    (event,) = parser.feed(b"id: 3\nretry: 1500\ndata:\n\n")
    assert event.retry == 1500
    assert parser.retry_ms == 1500


def test_a_32_mb_data_line_is_one_event() -> None:
    payload = b"x" * (32 << 20)
    parser = SseParser()
    events = []
    wire = b"data: " + payload + b"\n\n"
    for i in range(0, len(wire), 65536):
        events += parser.feed(wire[i : i + 65536])
    assert len(events) == 1
    assert events[0].data == payload
    assert parser.pending_bytes == 0
