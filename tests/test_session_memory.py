"""The built-in session keeps no per-request state once a request has ended."""

from __future__ import annotations

from typing import Any

import pytest

from loadtest.protocol.session import Session, open_session
from tests.conftest import reference_channel

pytestmark = pytest.mark.anyio


def _kept(session: Session) -> int:
    """Entries in every per-request table the session holds."""
    return sum(len(value) for value in vars(session).values() if isinstance(value, dict))


async def test_requests_on_a_closed_session_leave_nothing_behind() -> None:
    # The reference server exits on its first handler call: the session is then closed, and
    # every later request fails at once. Each used to leave its label behind (1,003 entries
    # after 1,000 calls).
    async with (
        reference_channel("stdio", extra=["--exit-after-calls", "1"]) as channel,
        open_session(channel, request_timeout=10) as session,
    ):
        await session.initialize()
        first = await session.request(
            "tools/call", {"name": "echo", "arguments": {"text": "x"}}, label="echo"
        )
        assert first.error is not None
        assert session.closed is not None
        before = _kept(session)
        outcomes: list[Any] = []
        for _ in range(1000):
            outcomes.append(await session.request("ping", label="ping"))
        assert all(o.error is not None and o.error.kind == session.closed.kind for o in outcomes)
        assert _kept(session) == before


async def test_answered_requests_keep_only_the_bounded_settled_table() -> None:
    async with reference_channel("stdio") as channel, open_session(channel, request_timeout=10) as session:
        await session.initialize()
        for _ in range(200):
            outcome = await session.request("ping", label="my-op")
            assert outcome.error is None
        assert not session._pending
        # What remains names each settled request's op (for late duplicates), under its label.
        assert set(session._settled.values()) <= {"my-op", "initialize"}
