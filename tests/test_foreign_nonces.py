"""Another call's nonce in an answer: misrouting, or a server with shared state?

A server with shared state (``@modelcontextprotocol/server-memory``'s ``search_nodes``, here a
small real MCP server that stores names) legitimately answers with what other calls stored,
nonces included. By default only ops whose own request carries ``{nonce}`` are checked for
foreign nonces; the op key ``check_foreign_nonces`` decides explicitly. True cross-wiring stays
provable: the fault proxy's ``swap`` and ``foreign_id`` (tests/test_proxy_faults.py), and the
checker cases below.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest.protocol.session import Outcome
from loadtest.run.check import Checker
from loadtest.scenario import Expect, Op
from tests.test_expectations import outcome, run_ops, small_target

pytestmark = pytest.mark.anyio

SHARED = small_target("shared")

REMEMBER = """
[[ops]]
name = "remember"
tool = "remember"
arguments = { name = "{nonce}" }
expect = { text = "stored {nonce}" }
"""


async def test_a_listing_of_shared_state_is_not_misrouted(tmp_path: Path) -> None:
    # Before: every `names` answer after the first `remember` was "misrouted" (it carries
    # other calls' nonces and not its own, as server-memory's search_nodes did).
    ops = REMEMBER + '\n[[ops]]\nname = "names"\ntool = "names"\n'
    stats = await run_ops(tmp_path, SHARED, ops, calls=30)
    for name in ("remember", "names"):
        assert stats[name]["count"] > 0, name
        assert outcome(stats[name]) == (stats[name]["count"], {}, {}), name


async def test_the_op_key_turns_the_check_on_for_an_op_without_a_nonce(tmp_path: Path) -> None:
    # Known-bad for this op, by declaration: its answers carry other calls' nonces.
    ops = REMEMBER + '\n[[ops]]\nname = "names"\ntool = "names"\ncheck_foreign_nonces = true\n'
    stats = await run_ops(tmp_path, SHARED, ops, calls=30)
    names = stats["names"]
    # A `names` before the first `remember` has no nonce to show (ok); every later one is flagged.
    assert names["errors"] == {}
    assert set(names["silent"]) == {"misrouted"}
    assert names["ok"] + names["silent"]["misrouted"] == names["count"]
    assert outcome(stats["remember"]) == (stats["remember"]["count"], {}, {})


async def test_the_op_key_turns_the_check_off_for_an_op_with_a_nonce(tmp_path: Path) -> None:
    # `previous` carries {nonce} but answers with the name stored before it: someone else's.
    previous = '\n[[ops]]\nname = "previous"\ntool = "previous"\narguments = { name = "{nonce}" }\n'
    checked = await run_ops(tmp_path, SHARED, previous, calls=10)
    # Every call but the first (nothing stored yet) carries the previous call's nonce.
    assert outcome(checked["previous"]) == (1, {}, {"misrouted": 9})
    allowed = await run_ops(tmp_path, SHARED, previous + "check_foreign_nonces = false\n", calls=10)
    assert outcome(allowed["previous"]) == (10, {}, {})


def _nonce(k: int) -> str:
    return f"nonce-abc123-{k:010d}"


def _answer(method: str, text: str) -> Outcome:
    if method == "resources/read":
        return Outcome(method, 1, 0, 1, result={"contents": [{"uri": "mem://x", "text": text}]})
    return Outcome(method, 1, 0, 1, result={"content": [{"type": "text", "text": text}]})


@pytest.mark.parametrize(
    ("op", "text", "silent"),
    [
        # Own nonce in the request: another call's answer is misrouted, with or without a text
        # expectation (a mismatch carrying a foreign nonce is misrouted, not corrupt).
        (Op("echo", "tools/call", tool="echo", arguments={"text": "{nonce}"}), _nonce(2), "misrouted"),
        (
            Op("echo", "tools/call", tool="echo", arguments={"t": "{nonce}"}, expect=Expect(text="{nonce}")),
            _nonce(2),
            "misrouted",
        ),
        (Op("find", "tools/call", tool="find"), f"found {_nonce(2)}", None),
        (Op("find", "tools/call", tool="find", check_foreign_nonces=True), f"found {_nonce(2)}", "misrouted"),
        (
            Op("echo", "tools/call", tool="echo", arguments={"t": "{nonce}"}, check_foreign_nonces=False),
            _nonce(2),
            None,
        ),
        # A nonce in a resource URI counts as the request's own too.
        (Op("read", "resources/read", uri="mem://{nonce}"), _nonce(2), "misrouted"),
    ],
)
def test_which_ops_are_checked_for_foreign_nonces(op: Op, text: str, silent: str | None) -> None:
    nonce = _nonce(1)
    verdict = Checker(op).check(_answer(op.method, text), op.render(nonce, 1), nonce, 1)
    assert verdict.silent == silent
    assert verdict.error is None
