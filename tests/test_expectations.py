"""Expectations against real servers: placeholders in every expectation that holds text.

The servers are small real MCP servers (``tests/servers/small_mcp.py``, written with the
installed ``mcp``) and the bundled reference server, reached over stdio by the real tester.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from loadtest.core.errors import UsageError
from loadtest.measure.metrics import Recorder
from loadtest.protocol.session import Outcome
from loadtest.run.check import Checker
from loadtest.run.driver import run_scenario
from loadtest.scenario import LIST_KEYS, Expect, Op, load_scenario

pytestmark = pytest.mark.anyio

SMALL = Path(__file__).resolve().parent / "servers" / "small_mcp.py"
CALLS = 20


def small_target(kind: str) -> str:
    return f"[target]\ncommand = {json.dumps([sys.executable, str(SMALL), kind])}\n"


async def run_ops(tmp_path: Path, target: str, ops: str, *, calls: int = CALLS) -> dict[str, Any]:
    """Run ``ops`` over stdio with one session; the per-op statistics."""
    path = tmp_path / "s.toml"
    path.write_text(
        'transports = ["stdio"]\n'
        f'[workload]\nsessions = 1\nrequests = {calls}\nwarmup = "0s"\nrequest_timeout = "10s"\n'
        + target
        + ops,
        encoding="utf-8",
    )
    recorder = Recorder(out_dir=tmp_path)
    await run_scenario(load_scenario(path), recorder)
    recorder.finish()
    ops_stats: dict[str, Any] = recorder.summary()["stdio"]["ops"]
    return ops_stats


def outcome(stats: dict[str, Any]) -> tuple[int, dict[str, int], dict[str, int]]:
    return stats["ok"], stats["errors"], stats["silent"]


# -- item 11: {nonce} and {seed} in json and regex expectations -----------------------------------

NONCE_OPS = """
[[ops]]
name = "regex"
tool = "record"
arguments = { nonce = "{nonce}", seed = "{seed}" }
expect = { regex = '^nonce={nonce} seed={seed}$' }

[[ops]]
name = "json-text"
tool = "record"
arguments = { nonce = "{nonce}", seed = "{seed}" }
expect = { json = { content = [{ type = "text", text = "nonce={nonce} seed={seed}" }] } }

[[ops]]
name = "json-structured"
tool = "pair"
arguments = { nonce = "{nonce}", seed = "{seed}" }
expect = { json = { structuredContent = { nonce = "{nonce}", seed = "{seed}" } } }
"""


async def test_nonce_and_seed_are_filled_in_regex_and_json_expectations(tmp_path: Path) -> None:
    # Before: every one of these calls was "corrupt" (the placeholders were compared literally).
    stats = await run_ops(tmp_path, small_target("nonce"), NONCE_OPS, calls=30)
    assert sum(s["count"] for s in stats.values()) == 30
    for name, op in stats.items():
        assert op["count"] > 0, name
        assert outcome(op) == (op["count"], {}, {}), name


async def test_a_filled_expectation_still_catches_a_wrong_answer(tmp_path: Path) -> None:
    # The known-bad case: the server answers with the seed where the nonce should be, so a
    # filled-in expectation must fail, and fail as corrupt, on every call.
    ops = """
[[ops]]
name = "regex"
tool = "record"
arguments = { nonce = "seed-{seed}", seed = "{seed}" }
expect = { regex = '^nonce={nonce} ' }

[[ops]]
name = "json"
tool = "pair"
arguments = { nonce = "x", seed = 7 }
expect = { json = { structuredContent = { nonce = "x", seed = "{seed}" } } }
"""
    stats = await run_ops(tmp_path, small_target("nonce"), ops)
    for name, op in stats.items():
        assert op["count"] > 0, name
        assert outcome(op) == (0, {}, {"corrupt": op["count"]}), name


async def test_reference_echo_with_regex_and_json_expectations(tmp_path: Path) -> None:
    ops = """
[[ops]]
name = "regex"
tool = "echo"
arguments = { text = "hello {nonce} {seed}" }
expect = { regex = '^hello {nonce} {seed}$' }

[[ops]]
name = "json"
tool = "echo"
arguments = { text = "hello {nonce}" }
expect = { json = { content = [{ text = "hello {nonce}" }] } }
"""
    stats = await run_ops(tmp_path, "", ops)
    for name, op in stats.items():
        assert op["count"] > 0, name
        assert outcome(op) == (op["count"], {}, {}), name


def test_a_regex_that_is_invalid_is_refused_at_load_naming_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(
        '[[ops]]\ntool = "echo"\narguments = { text = "{nonce}" }\nexpect = { regex = "({nonce}" }\n',
        encoding="utf-8",
    )
    with pytest.raises(UsageError, match=r"s\.toml: ops\[0\]\.expect\.regex: invalid regular expression"):
        load_scenario(path)


# -- item 17: every result can carry an expectation ------------------------------------------------

LISTINGS = """
[[ops]]
name = "tools-named"
method = "tools/list"
expect = { tools = ["echo", "blob"] }

[[ops]]
name = "tools-counted"
method = "tools/list"
expect = { min_items = 1 }

[[ops]]
name = "tools-json"
method = "tools/list"
expect = { json = { tools = [{ name = "echo" }] } }

[[ops]]
name = "prompts"
method = "prompts/list"
expect = { prompts = ["greet"], min_items = 1, max_items = 1 }

[[ops]]
name = "tools-consistent"
method = "tools/list"
expect = { consistent = true }
"""


async def test_listing_expectations_pass_on_the_reference_server(tmp_path: Path) -> None:
    stats = await run_ops(tmp_path, "", LISTINGS, calls=40)
    assert set(stats) == {"tools-named", "tools-counted", "tools-json", "prompts", "tools-consistent"}
    for name, op in stats.items():
        assert op["count"] > 0, name
        assert outcome(op) == (op["count"], {}, {}), name


async def test_an_empty_listing_fails_its_expectations_as_corrupt(tmp_path: Path) -> None:
    # A server with no tools at all answers tools/list with []: the right shape, the wrong
    # content, so `corrupt` (malformed is for a wrong shape). Before, json on tools/list was
    # refused and nothing else could be said, so this server passed with 0 silent failures.
    ops = LISTINGS.replace("expect = { consistent = true }", "expect = { consistent = true, min_items = 1 }")
    stats = await run_ops(tmp_path, small_target("empty"), ops, calls=40)
    for name, op in stats.items():
        assert op["count"] > 0, name
        assert outcome(op) == (0, {}, {"corrupt": op["count"]}), name
    example = stats["tools-named"]["silent_examples"]["corrupt"][0]
    assert "tools/list lacks 'echo', 'blob' (0 listed)" in json.dumps(example)


async def test_resources_list_with_a_count_on_the_reference_server(tmp_path: Path) -> None:
    # The reference server's resources are all templates: its resources list is empty.
    ops = '[[ops]]\nname = "resources"\nmethod = "resources/list"\nexpect = { max_items = 0 }\n'
    stats = await run_ops(tmp_path, "", ops, calls=5)
    assert outcome(stats["resources"]) == (5, {}, {})


@pytest.mark.parametrize("method", ["tools/list", "prompts/list", "resources/list"])
def test_a_listing_without_its_list_is_malformed(method: str) -> None:
    op = Op(method, method, expect=Expect(min_items=0))
    verdict = Checker(op).check(Outcome(method, 1, 0, 1, result={"items": []}), None, "n", 1)
    assert verdict.silent == "malformed"
    ok = Checker(op).check(Outcome(method, 1, 0, 1, result={LIST_KEYS[method]: []}), None, "n", 1)
    assert ok.ok


@pytest.mark.parametrize(
    ("expect", "message"),
    [
        (
            'method = "tools/list"\nexpect = { text = "x" }',
            "ops[0].expect.text: tools/list answers carry no text to check; use json (a subset of the "
            "result), min_items, max_items or tools or consistent",
        ),
        (
            'method = "tools/list"\nexpect = { prompts = ["a"] }',
            "ops[0].expect.prompts: tools/list lists tools",
        ),
        (
            'tool = "echo"\nexpect = { min_items = 1 }',
            "ops[0].expect.min_items: applies to listings (tools/list, prompts/list, resources/list), "
            "not to tools/call",
        ),
        ('method = "tools/list"\nexpect = { tools = "echo" }', "ops[0].expect.tools: expected an array"),
        (
            'method = "prompts/list"\nexpect = { min_items = 2, max_items = 1 }',
            "ops[0].expect.max_items: 1 is below min_items = 2",
        ),
    ],
)
def test_listing_expectations_are_checked_at_load(tmp_path: Path, expect: str, message: str) -> None:
    path = tmp_path / "s.toml"
    path.write_text(f"[[ops]]\n{expect}\n", encoding="utf-8")
    with pytest.raises(UsageError) as info:
        load_scenario(path)
    assert f"s.toml: {message}" in str(info.value)


async def test_listings_through_the_installed_sdk_client(tmp_path: Path) -> None:
    # The SDK-client mode makes prompts/list and resources/list calls with the SDK's own
    # list_prompts / list_resources; the tester checks their answers the same way.
    from loadtest.run.clients.config import resolve_client
    from loadtest.run.execute import execute

    path = tmp_path / "s.toml"
    path.write_text(
        'transports = ["stdio"]\n[workload]\nsessions = 1\nrequests = 12\nwarmup = "0s"\n'
        + LISTINGS
        + '\n[[ops]]\nname = "resources"\nmethod = "resources/list"\nexpect = { max_items = 0 }\n',
        encoding="utf-8",
    )
    result = await execute(load_scenario(path), tmp_path, client=resolve_client("sdk"))
    assert result.failure is None, result.failure
    ops = result.document["transports"]["stdio"]["ops"]
    assert sum(op["count"] for op in ops.values()) == 12
    for name, op in ops.items():
        assert outcome(op) == (op["count"], {}, {}), name


OWN, OTHER = "nonce-abc123-0000000001", "nonce-abc123-0000000002"


@pytest.mark.parametrize(
    "pattern",
    [
        "^hello {nonce}$",
        "{nonce}",
        "{nonce} .* {nonce}",
        "seed={seed}0",
        "(a)\\1 {nonce}",
        "[{nonce}]",
        "HELLO {NONCE}",
        "x{seed}|{nonce}$",
        "(?i)hello {nonce}",
        "\\{nonce}",
    ],
)
@pytest.mark.parametrize(
    "text",
    [
        f"hello {OWN}",
        f"hello {OTHER}",
        f"{OTHER} and {OWN}",
        f"{OWN} x {OWN}",
        f"{OWN} x {OTHER}",
        "seed=70",
        "seed=7",
        f"aa {OWN}",
        f"HELLO {OWN.upper()}",
        "",
    ],
)
def test_a_regex_with_placeholders_matches_exactly_as_the_filled_in_pattern(pattern: str, text: str) -> None:
    # The per-request match avoids a compile per request; its verdict must be the exact one.
    from loadtest.scenario.templates import RegexTemplate

    template = RegexTemplate(re.compile(pattern))
    assert template.search(text, OWN, 7) == (template.exact(OWN, 7).search(text) is not None)
