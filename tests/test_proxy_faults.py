"""The proof: tester -> fault-injecting proxy -> reference server, per transport and fault kind.

Every test runs the real tester (``run_scenario``) through the real proxy (its own process, as
users run it) to the real reference server, over loopback sockets or pipes, and compares what
the tester reported, by kind, with what the proxy's injection log says it did and how each
injection should be classified (``loadtest.proxy.expectation``).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from loadtest.core.names import DEFAULT_PATHS, TRANSPORTS
from loadtest.core.process import launch, wait_for_port
from loadtest.measure.metrics import Recorder
from loadtest.proxy import FAULT_KINDS, expected_totals, read_log
from loadtest.run.driver import run_scenario
from loadtest.run.targets.reference import free_port, reference_command
from loadtest.scenario import load_scenario

pytestmark = pytest.mark.anyio


#: Faults after which the client's session is over on these transports (pipe or event stream gone).
SESSION_ENDING = {("close_stream", "stdio"), ("close_stream", "sse"), ("reset", "stdio"), ("reset", "sse")}
#: Loud errors that follow from a session that ended (every later call on it fails).
AFTERMATH = {"server_exit", "truncated_line", "stream_closed", "stream_broken", "channel_closed"}

OPS = """
[[ops]]
name = "echo"
tool = "echo"
arguments = { text = "hello {nonce}" }
weight = 3
expect = { text = "hello {nonce}" }

[[ops]]
name = "blob"
tool = "blob"
arguments = { n_bytes = 4096, seed = "{seed}" }
weight = 2
expect = { blob = true }

[[ops]]
name = "read:blob"
method = "resources/read"
uri = "blob://16384/{seed}"
weight = 2
expect = { blob = true }

[[ops]]
name = "greet"
method = "prompts/get"
prompt = "greet"
arguments = { name = "{nonce}" }
expect = { text = "Hello, {nonce}!" }
"""

PROGRESS_OP = """
[[ops]]
name = "progress"
tool = "progress"
arguments = { steps = 3, nonce = "{nonce}" }
weight = 2
progress = true
expect_progress = 3
expect = { text = "progress 3 {nonce}" }
"""

#: Per fault: the --faults spec (deterministic every-Nth schedules, limited so that the last
#: answers of a run are left alone) and the workload.
CLOSED = 'sessions = {sessions}\nrequests = 160\nwarmup = "0s"\nrequest_timeout = "1s"\n'
OPEN = 'model = "open"\nrate = "150/s"\nmax_in_flight = 0\nsessions = {sessions}\nrequests = 160\nwarmup = "0s"\nrequest_timeout = "2s"\n'
PLANS: dict[str, tuple[str, str]] = {
    "drop_response": ("drop_response:every=9:max=4", CLOSED),
    "drop_notification": ("drop_notification:every=3:max=5", CLOSED),
    "truncate": ("truncate:every=7:max=6", CLOSED),
    "alter": ("alter:every=7:max=6", CLOSED),
    "malformed": ("malformed:every=7:max=6", CLOSED),
    "duplicate": ("duplicate:every=7:max=6", CLOSED),
    "swap": ("swap:every=6:max=4:ms=400", OPEN),
    "foreign_id": ("foreign_id:every=9:max=4", CLOSED),
    "delay": ("delay:every=9:max=3:ms=1600", CLOSED),
    "cut": ("cut:every=9:max=4", CLOSED),
    "close_stream": ("close_stream:every=15:max=2", CLOSED),
    "reset": ("reset:every=15:max=2", CLOSED),
}


def test_every_fault_kind_has_a_plan() -> None:
    assert set(PLANS) == set(FAULT_KINDS)


def _proxy(*args: str) -> list[str]:
    return [sys.executable, "-m", "loadtest.proxy", *args]


@asynccontextmanager
async def proxied(
    transport: str, faults: str, log: Path, *, seed: int = 1, json_response: bool = False
) -> AsyncIterator[str]:
    """The ``[target]`` table that reaches the reference server through the proxy."""
    options = ["--faults", faults, "--seed", str(seed), "--log", str(log)]
    if transport == "stdio":
        command = _proxy("--stdio", *options, "--", *reference_command("stdio"))
        yield f"command = {json.dumps(command)}"
        return
    upstream = free_port()
    server_cmd = reference_command(transport, port=upstream, json_response=json_response)
    async with launch(server_cmd, stdin=False, stdout=False) as server:
        await wait_for_port(server, "127.0.0.1", upstream, 20)
        port = free_port()
        proxy_cmd = _proxy(
            "--listen", f"127.0.0.1:{port}", "--upstream", f"http://127.0.0.1:{upstream}", *options
        )
        async with launch(proxy_cmd, stdin=False, stdout=False) as proxy:
            await wait_for_port(proxy, "127.0.0.1", port, 20)
            yield f'url = "http://127.0.0.1:{port}{DEFAULT_PATHS[transport]}"'


async def run_through_proxy(
    tmp_path: Path,
    transport: str,
    faults: str,
    workload: str,
    *,
    json_response: bool = False,
    progress_op: bool = False,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    log = tmp_path / "faults.jsonl"
    sessions = 2 if transport == "stdio" else 4
    async with proxied(transport, faults, log, json_response=json_response) as target:
        text = (
            f'transports = ["{transport}"]\n[target]\n{target}\n[workload]\n{workload.format(sessions=sessions)}'
            + OPS
            + (PROGRESS_OP if progress_op else "")
        )
        path = tmp_path / "scenario.toml"
        path.write_text(text)
        recorder = Recorder(out_dir=tmp_path)
        await run_scenario(load_scenario(path), recorder)
        recorder.finish()
        summary: dict[str, Any] = recorder.summary()
    return summary[transport], read_log(log)


def reported(result: dict[str, Any]) -> tuple[Counter[str], Counter[str]]:
    silent: Counter[str] = Counter()
    loud: Counter[str] = Counter()
    for stats in result["ops"].values():
        silent.update(stats["silent"])
        loud.update(stats["errors"])
    return silent, loud


def example_ids(result: dict[str, Any]) -> set[Any]:
    return {
        example["request_id"]
        for stats in result["ops"].values()
        for examples in stats.get("silent_examples", {}).values()
        for example in examples
        if "request_id" in example
    }


def logged_ids(records: list[dict[str, Any]]) -> set[Any]:
    ids: set[Any] = set()
    for record in records:
        ids.update(record.get("ids") or [record["id"]])
    return ids


def check_counts(result: dict[str, Any], records: list[dict[str, Any]], fault: str, transport: str) -> None:
    assert records, f"the proxy injected no {fault} on {transport}"
    assert {r["fault"] for r in records} == {fault}
    want_silent, want_loud, maybe_loud, ended = expected_totals(records)
    silent, loud = reported(result)
    if ended:
        # The session is gone: the injected call and every later one on it fail loudly.
        assert not silent, silent
        assert set(loud) <= set(want_loud) | AFTERMATH, loud
        assert sum(loud.values()) >= len(records)
        for kind in want_loud:
            assert loud[kind] >= 1, (kind, loud)
        return
    assert silent == want_silent, (
        f"{fault} on {transport}: reported {dict(silent)}, injected {dict(want_silent)}"
    )
    for kind in set(loud) | set(want_loud):
        if kind in maybe_loud:
            assert want_loud[kind] <= loud[kind] <= want_loud[kind] + maybe_loud[kind], (kind, loud)
        else:
            assert loud[kind] == want_loud[kind], (
                f"{fault} on {transport}: loud {dict(loud)}, expected {dict(want_loud)}"
            )
    # The examples stored in the results name requests the proxy really tampered with.
    assert example_ids(result) <= logged_ids(records)


#: The whole fault x transport cross-product runs in CI (``-m slow`` adds the rest); by default
#: every fault runs on stdio and Streamable HTTP, and these three on legacy SSE and JSON replies.
FRAMING_SAMPLE = ("drop_response", "truncate", "swap")


def _cases() -> list[Any]:
    return [
        pytest.param(
            transport,
            fault,
            id=f"{transport}-{fault}",
            marks=() if transport != "sse" or fault in FRAMING_SAMPLE else (pytest.mark.slow,),
        )
        for transport in TRANSPORTS
        for fault in PLANS
    ]


@pytest.mark.parametrize(("transport", "fault"), _cases())
async def test_reported_silent_failures_equal_injected_faults(
    tmp_path: Path, transport: str, fault: str
) -> None:
    faults, workload = PLANS[fault]
    result, records = await run_through_proxy(
        tmp_path, transport, faults, workload, progress_op=fault == "drop_notification"
    )
    if (fault, transport) in SESSION_ENDING:
        assert all(r["expect"].get("ends_session") for r in records)
    check_counts(result, records, fault, transport)


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(fault, marks=() if fault in FRAMING_SAMPLE else (pytest.mark.slow,))
        for fault in (
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
        )
    ],
)
async def test_streamable_http_json_responses(tmp_path: Path, fault: str) -> None:
    # The server answers POSTs with application/json: a dropped answer is a 202 with no body.
    faults, workload = PLANS[fault]
    result, records = await run_through_proxy(tmp_path, "http", faults, workload, json_response=True)
    assert {r["framing"] for r in records} == {"http-json"}
    check_counts(result, records, fault, "http")


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_without_faults_the_proxy_is_transparent(tmp_path: Path, transport: str) -> None:
    result, records = await run_through_proxy(tmp_path, transport, "", CLOSED, progress_op=True)
    assert records == []
    silent, loud = reported(result)
    assert not silent
    assert not loud
    assert sum(stats["ok"] for stats in result["ops"].values()) == 160


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_mixed_faults_on_a_seeded_random_schedule(tmp_path: Path, transport: str) -> None:
    # Several kinds at once, drawn at random (seeded): each answer gets at most one fault, so
    # the sums still match kind by kind.
    faults = "drop_response:0.02:max=2,truncate:0.04:max=3,alter:0.04:max=3,duplicate:0.04:max=3,malformed:0.03:max=3"
    result, records = await run_through_proxy(tmp_path, transport, faults, CLOSED)
    assert len({r["fault"] for r in records}) >= 3, records
    want_silent, _, _, _ = expected_totals(records)
    silent, loud = reported(result)
    assert silent == want_silent
    assert not loud
