"""Unit-level edge cases of silent-failure detection (the end-to-end proof is test_proxy_faults).

A session over an in-process channel stands in for a transport here: these tests are about how
the session and the checker classify what arrives, not about any wire.
"""

from __future__ import annotations

import random
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.streams.memory import MemoryObjectSendStream

from loadtest.protocol.session import Anomaly, Outcome, Session, open_session
from loadtest.protocol.transports.base import Channel, Incoming, Message, Received, TransportError
from loadtest.proxy.faults import alter_position, parse_faults
from loadtest.run.check import NONCE_RE, Checker
from loadtest.scenario import Expect, Op

pytestmark = pytest.mark.anyio


class Fake:
    """A session whose transport is the test: what it sends and what it reports come out here."""

    def __init__(self, session: Session, to_session: MemoryObjectSendStream[Incoming]) -> None:
        self.session = session
        self.to_session = to_session
        self.sent, self._sent = anyio.create_memory_object_stream[Message](16)
        self.anomalies_in, self.anomalies = anyio.create_memory_object_stream[Anomaly](16)

    async def send(self, message: Message) -> int:
        await self.sent.send(message)
        return 1

    async def call(self, *items: Any) -> Outcome:
        """Make one request; answer it with ``items`` (each may be a function of its id)."""
        outcome: Outcome | None = None

        async def call() -> None:
            nonlocal outcome
            outcome = await self.session.request("tools/call", {"name": "echo"}, label="echo-op")

        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            request_id = (await self._sent.receive())["id"]
            for item in items:
                await self.to_session.send(item(request_id) if callable(item) else item)
        assert outcome is not None
        return outcome

    async def next_anomaly(self) -> Anomaly:
        with anyio.fail_after(2):
            return await self.anomalies.receive()


@asynccontextmanager
async def fake_session() -> AsyncIterator[Fake]:
    to_session, incoming = anyio.create_memory_object_stream[Incoming](16)
    fake: Fake | None = None

    async def send(message: Message) -> int:
        assert fake is not None
        return await fake.send(message)

    def on_anomaly(anomaly: Anomaly) -> None:
        assert fake is not None
        fake.anomalies_in.send_nowait(anomaly)

    async with (
        to_session,
        incoming,
        open_session(Channel(send, incoming), request_timeout=2, on_anomaly=on_anomaly) as session,
    ):
        fake = Fake(session, to_session)
        async with fake.sent, fake._sent, fake.anomalies_in, fake.anomalies:
            yield fake


def _answer(request_id: int) -> Received:
    return Received({"jsonrpc": "2.0", "id": request_id, "result": {"content": []}}, 10)


async def test_a_second_answer_is_a_duplicate_counted_under_the_op() -> None:
    async with fake_session() as fake:
        outcome = await fake.call(_answer)
        assert outcome.error is None
        await fake.to_session.send(_answer(outcome.request_id))
        anomaly = await fake.next_anomaly()
    assert (anomaly.kind, anomaly.method, anomaly.silent) == ("duplicate", "echo-op", True)


async def test_an_answer_after_a_loud_transport_error_is_late_not_a_duplicate() -> None:
    # Legacy SSE: the POST broke (loud), but the server still answers on the event stream.
    async with fake_session() as fake:
        outcome = await fake.call(lambda rid: TransportError("connection", "POST broke", rid))
        assert outcome.error is not None
        assert (outcome.error.kind, outcome.error.silent) == ("connection", False)
        await fake.to_session.send(_answer(outcome.request_id))
        anomaly = await fake.next_anomaly()
    assert (anomaly.kind, anomaly.silent) == ("late", False)


def _nonce(k: int) -> str:
    return f"nonce-abc123-{k:010d}"


def test_another_calls_answer_is_misrouted_even_when_its_nonce_is_shorter() -> None:
    # With variable-width nonces, "nonce-…-1" is a prefix of "nonce-…-10": call 1's answer
    # delivered to call 10 read as a truncated answer. Fixed width makes it a clear misroute.
    op = Op(
        "echo",
        "tools/call",
        tool="echo",
        arguments={"text": "hello {nonce}"},
        expect=Expect(text="hello {nonce}"),
    )
    checker = Checker(op)
    got = Outcome("tools/call", 1, 0, 1, result={"content": [{"type": "text", "text": f"hello {_nonce(1)}"}]})
    verdict = checker.check(got, op.render(_nonce(10), 10), _nonce(10), 10)
    assert verdict.silent == "misrouted"
    cut = Outcome(
        "tools/call", 1, 0, 1, result={"content": [{"type": "text", "text": f"hello {_nonce(10)}"[:-3]}]}
    )
    assert checker.check(cut, op.render(_nonce(10), 10), _nonce(10), 10).silent == "truncated"


async def test_the_tester_sends_fixed_width_nonces(tmp_path: Path) -> None:
    from loadtest.measure.metrics import Recorder
    from loadtest.run.driver import run_scenario
    from loadtest.scenario import load_scenario

    path = tmp_path / "s.toml"
    path.write_text(
        'transports = ["stdio"]\n[workload]\nsessions = 1\nrequests = 12\nwarmup = "0s"\n'
        '[[ops]]\nname = "echo"\ntool = "echo"\narguments = { text = "{nonce}" }\nexpect = { text = "{nonce}!" }\n'
    )
    recorder = Recorder(out_dir=tmp_path)
    await run_scenario(load_scenario(path), recorder)
    recorder.finish()
    stats = recorder.summary()["stdio"]["ops"]["echo"]
    # Every answer is a proper prefix of what was expected: truncated, with examples.
    assert stats["silent"] == {"truncated": 12}
    for example in stats["silent_examples"]["truncated"]:
        assert re.fullmatch(r"nonce-[0-9a-f]{6}-\d{10}", example["nonce"])
        assert example["expected"] == example["nonce"] + "!"
        assert example["got"]["content"][0]["text"] == example["nonce"]


def test_alter_never_touches_a_nonce_or_a_blob_seed() -> None:
    rng = random.Random(3)
    text = f"hello {_nonce(42)}, and {_nonce(7)}!"
    spans = [m.span() for m in NONCE_RE.finditer(text)]
    for _ in range(500):
        at = alter_position(text, rng)
        assert at is not None
        assert not any(a <= at < b for a, b in spans)
    blob = "0000abcd:0000000000:ABCDEFGHIJ\n"
    assert all((alter_position(blob, rng) or 0) >= 9 for _ in range(200))
    assert alter_position(_nonce(5), rng) is None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("drop:0.1", "unknown fault kind 'drop'"),
        ("drop_response", "say how often"),
        ("drop_response:2", "not between 0 and 1"),
        ("delay:every=0", "every must be a whole number >= 1"),
        ("delay:every=3:speed=2", "unknown option 'speed'"),
        ("truncate:0.1,truncate:0.2", "given twice"),
    ],
)
def test_fault_specs_are_checked(spec: str, message: str) -> None:
    from loadtest.core.errors import UsageError

    with pytest.raises(UsageError, match=re.escape(message)):
        parse_faults(spec)


def test_fault_specs_parse() -> None:
    specs = parse_faults("drop_response:0.05, delay:every=20:ms=1500:max=3:after=2")
    assert [s.to_dict() for s in specs] == [
        {"kind": "drop_response", "probability": 0.05},
        {"kind": "delay", "every": 20, "limit": 3, "after": 2, "ms": 1500.0},
    ]
