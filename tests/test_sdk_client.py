"""SDK-client mode: real `mcp` releases' own clients make the calls; the tester still checks them.

The environments are real releases from PyPI (built once per test session, see conftest's
``env_cache``): the oldest 1.x the reference server supports, whose client reads SSE events of
any size, and the newest 2.x, whose client rejects any single SSE event over 1 MiB.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import anyio
import psutil
import pytest

from loadtest.analysis.compare.model import load_side
from loadtest.analysis.compare.verdicts import compare_sides
from loadtest.core.names import MATRIX_FILE
from loadtest.envs import ensure_env
from loadtest.present.terminal import Style, render_summary
from loadtest.run.clients.config import BUILTIN, ClientConfig, resolve_client, sdk_client_from_env
from loadtest.run.execute import RunOutcome, execute
from loadtest.run.matrix import run_matrix, side_by_side
from loadtest.scenario import Scenario, load_scenario
from tests.test_envs import OLD_SDK
from tests.test_matrix import NEW_SDK

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(600)]

#: The mcp installed with the tester: `--client sdk` without a spec uses its client.
INSTALLED = version("mcp")
#: Above the 1 MiB (1,048,576 bytes) SSE event limit of the 2.x client, with JSON framing.
BIG_BLOB = 1_200_000
LIMIT_MESSAGE = "exceeded the 1048576 byte limit"


def _scenario(
    tmp_path: Path, body: str, transports: str = '["stdio", "sse", "http"]', name: str = "s"
) -> Scenario:
    path = tmp_path / f"{name}.toml"
    path.write_text(f"transports = {transports}\n{body}")
    return load_scenario(path)


MIXED = (
    '[workload]\nsessions = 2\nrequests = 24\nwarmup = "0s"\n'
    '[[ops]]\ntool = "echo"\narguments = { text = "{nonce}" }\nexpect = { text = "{nonce}" }\nweight = 2\n'
    f'[[ops]]\nname = "big"\nmethod = "resources/read"\nuri = "blob://{BIG_BLOB}/{{seed}}"\nexpect = {{ blob = true }}\n'
)


async def _run(scenario: Scenario, directory: Path, client: ClientConfig) -> RunOutcome:
    await anyio.Path(directory).mkdir(parents=True, exist_ok=True)
    outcome = await execute(scenario, directory, client=client)
    assert outcome.failure is None, outcome.failure
    return outcome


def _ops(outcome: RunOutcome, transport: str) -> dict[str, Any]:
    ops: dict[str, Any] = outcome.document["transports"][transport]["ops"]
    return ops


@pytest.mark.slow
async def test_two_releases_clients_on_every_transport_with_a_blob_over_1_mib(
    tmp_path: Path, env_cache: Path
) -> None:
    scenario = _scenario(tmp_path, MIXED)
    old = sdk_client_from_env(ensure_env(OLD_SDK, cache_dir=env_cache))
    new = sdk_client_from_env(ensure_env(NEW_SDK, cache_dir=env_cache))
    before = await _run(scenario, tmp_path / "old", old)
    after = await _run(scenario, tmp_path / "new", new)

    for outcome, client in ((before, old), (after, new)):
        meta = outcome.document["meta"]["client"]
        assert (meta["kind"], meta["mcp"]) == ("sdk", client.mcp_version)
        assert meta["freeze"]["mcp"] == client.mcp_version
        for transport in ("stdio", "sse", "http"):
            section = outcome.document["transports"][transport]
            # The server said which SDK served it; the handshake went through the SDK client.
            assert section["server_info"]["name"] == "mcp-loadtest-reference"
            assert section["sessions"]["opened"] >= 1
            # The client's own cost, apart from the protocol that carries its results to us.
            assert section["client"]["kind"] == "sdk"
            assert section["client"]["cpu_per_call_us"] > 0
            assert section["client"]["harness_cpu_s"] >= 0
            assert section["client"]["calls"] == 24
            assert section["ops"]["echo"]["silent"] == {}

    # The old client reads every byte of the big blob on every transport: all checked, all fine.
    for transport in ("stdio", "sse", "http"):
        ops = _ops(before, transport)
        assert ops["big"]["count"] > 0
        assert ops["big"]["ok"] == ops["big"]["count"], ops["big"]["errors"]
        assert ops["echo"]["ok"] == ops["echo"]["count"]
    # 1.8.0 speaks no newer protocol than 2024-11-05; 2.3.0 negotiates the newest.
    assert before.document["transports"]["http"]["negotiated_protocol_version"] == "2024-11-05"
    assert after.document["transports"]["http"]["negotiated_protocol_version"] == "2025-11-25"

    # The new client: stdio has no SSE, so no limit; over SSE and Streamable HTTP every big
    # blob fails in the client, loudly, with the SDK's own message kept as an example.
    stdio = _ops(after, "stdio")
    assert stdio["big"]["ok"] == stdio["big"]["count"] > 0
    for transport in ("sse", "http"):
        big = _ops(after, transport)["big"]
        assert big["count"] > 0
        assert big["ok"] == 0
        assert sum(big["errors"].values()) == big["count"]
        assert big["silent"] == {}
        details = [example["detail"] for examples in big["error_examples"].values() for example in examples]
        assert details
        assert all(LIMIT_MESSAGE in detail for detail in details), details
    # Legacy SSE: the oversized event ends the whole session; the driver opens a new one.
    assert after.document["transports"]["sse"]["sessions"]["opened"] > 2
    # Streamable HTTP: only that request fails; the session and its small calls go on.
    echo = _ops(after, "http")["echo"]
    assert echo["ok"] == echo["count"] > 0

    text = render_summary(after.document, Style(colour=False))
    assert f"under test: the mcp {NEW_SDK} SDK client (ClientSession, 1 worker process)" in text
    assert (
        f"errors http/big: jsonrpc_-32000 {_ops(after, 'http')['big']['errors']['jsonrpc_-32000']}, first: SSE stream failed"
        in text
    )
    assert f"SDK client (mcp {NEW_SDK}) CPU " in text

    # Everything downstream works the same: the comparison says who made the calls, and the
    # new client's errors are a regression on the transports where they happen.
    comparison = compare_sides(
        load_side([before.path.parent], label="old"), load_side([after.path.parent], label="new")
    )
    assert comparison.a.clients[0].startswith(f"mcp {OLD_SDK} SDK, CPU/call stdio ")
    assert comparison.b.clients[0].startswith(f"mcp {NEW_SDK} SDK, CPU/call stdio ")
    regressed = {
        (row.transport, row.op)
        for row in comparison.rows
        if row.metric.key == "error_rate" and row.verdict == "regressed"
    }
    assert regressed == {("sse", "big"), ("http", "big")}


async def test_the_sdk_clients_cost_is_its_own_figure_beside_the_builtin_clients(tmp_path: Path) -> None:
    scenario = _scenario(
        tmp_path,
        '[workload]\nsessions = 2\nrequests = 150\nwarmup = "0s"\n'
        '[[ops]]\ntool = "echo"\narguments = { text = "{nonce}" }\nexpect = { text = "{nonce}" }\n',
        transports='["http"]',
    )
    builtin = await _run(scenario, tmp_path / "builtin", BUILTIN)
    sdk = await _run(scenario, tmp_path / "sdk", resolve_client("sdk"))
    b = builtin.document["transports"]["http"]["client"]
    s = sdk.document["transports"]["http"]["client"]
    assert builtin.document["meta"]["client"] == {"kind": "builtin"}
    assert b["kind"] == "builtin"
    assert s["kind"] == "sdk"
    assert s["mcp"] == sdk.document["meta"]["client"]["mcp"]
    for section in (b, s):
        assert section["calls"] == 150
        assert section["cpu_per_call_us"] > 0
    # The SDK client's CPU is its worker's; the tester's own share is reported beside it.
    assert s["tester_cpu_per_call_us"] > 0
    # The point of a wire-level generator: the SDK's client costs more per call (measured
    # here ~5 ms against ~0.3 ms, both in CPU time, not wall-clock).
    assert s["cpu_per_call_us"] > b["cpu_per_call_us"]
    assert sdk.document["totals"] == {"calls": 150, "errors": 0, "silent_failures": 0}


async def test_open_model_overlaps_calls_in_sdk_sessions_spread_over_two_workers(tmp_path: Path) -> None:
    scenario = _scenario(
        tmp_path,
        '[workload]\nrate = "30/s"\nduration = "1s"\nwarmup = "0s"\nsessions = 2\nmax_in_flight = 0\n'
        '[[ops]]\ntool = "sleep"\narguments = { ms = 100, nonce = "{nonce}" }\nexpect = { text = "slept 100 {nonce}" }\n',
        transports='["http"]',
    )
    outcome = await _run(scenario, tmp_path / "run", resolve_client("sdk", workers=2))
    http = outcome.document["transports"]["http"]
    assert outcome.document["meta"]["client"]["workers"] == 2
    assert http["client"]["workers"] == 2
    assert http["sessions"]["opened"] == 2
    stats = http["ops"]["sleep"]
    assert stats["count"] == stats["ok"] == 30
    # Calls due every 33 ms that take 100 ms: several at once on the SDK's sessions.
    assert http["generator"]["in_flight_max"] >= 2
    # No answer comes sooner than the server's 100 ms, whichever clock timed it.
    assert stats["latency_us"]["p50"] >= 100_000


async def test_a_call_the_sdk_never_answers_is_silently_lost(tmp_path: Path) -> None:
    # The SDK raises nothing while the server takes longer than the deadline: the tester's
    # taxonomy calls that `lost`, the same as with the built-in client.
    scenario = _scenario(
        tmp_path,
        '[workload]\nsessions = 1\nrequests = 2\nwarmup = "0s"\nrequest_timeout = "1s"\n'
        '[[ops]]\ntool = "sleep"\narguments = { ms = 2500, nonce = "{nonce}" }\nexpect = { text = "slept 2500 {nonce}" }\n',
        transports='["http"]',
    )
    outcome = await _run(scenario, tmp_path / "run", resolve_client("sdk"))
    stats = _ops(outcome, "http")["sleep"]
    assert stats["silent"] == {"lost": 2}
    assert (
        stats["silent_examples"]["lost"][0]["detail"]
        == "no answer by the deadline, and the SDK raised nothing"
    )


async def test_a_client_that_cannot_start_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    # An interpreter without `mcp`: the worker dies at import, the run says why in one line.
    bare = tmp_path / "bare"
    with anyio.fail_after(120):
        await anyio.run_process([sys.executable, "-m", "venv", "--without-pip", str(bare)])
    scenario = _scenario(
        tmp_path, '[workload]\nrequests = 5\nwarmup = "0s"\n[[ops]]\nmethod = "ping"\n', transports='["http"]'
    )
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    directory = tmp_path / "run"
    await anyio.Path(directory).mkdir()
    outcome = await execute(
        scenario, directory, client=ClientConfig("sdk", str(bare / "bin" / "python"), "?", None)
    )
    assert outcome.failure is not None
    message = str(outcome.failure)
    assert message.startswith("the SDK client could not start: the SDK client's worker process ")
    assert "No module named 'mcp'" in message
    assert outcome.failure.exit_code == 3
    assert outcome.document["error"] == message
    assert {p.pid for p in psutil.Process().children(recursive=True)} <= before


def _cli(*args: str, cache: Path, timeout: float = 400) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loadtest", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "MCP_LOADTEST_CACHE": str(cache), "NO_COLOR": "1"},
    )


def test_run_client_sdk_from_the_command_line(tmp_path: Path, env_cache: Path) -> None:
    scenario = tmp_path / "s.toml"
    scenario.write_text(
        '[workload]\nrequests = 20\nwarmup = "0s"\n[[ops]]\ntool = "echo"\narguments = { text = "{nonce}" }\nexpect = { text = "{nonce}" }\n'
    )
    done = _cli(
        "run",
        str(scenario),
        "--client",
        "sdk",
        "--transport",
        "sse",
        "--out",
        str(tmp_path),
        "--no-progress",
        cache=env_cache.parent / "cli-cache",
    )
    assert done.returncode == 0, done.stderr
    assert (
        f"under test: the mcp {INSTALLED} SDK client (ClientSession, 1 worker process) with the reference server on mcp {INSTALLED}"
        in done.stdout
    )
    run = json.loads(next(tmp_path.glob("*-s/run.json")).read_text())
    assert run["meta"]["client"]["kind"] == "sdk"
    assert run["meta"]["client"]["mcp"] == INSTALLED
    assert run["totals"] == {"calls": 20, "errors": 0, "silent_failures": 0}
    assert (next(tmp_path.glob("*-s")) / "client-sse.log").is_file()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--client", "builtin", "--client-sdk", "1.8.0"], 2, "--client-sdk needs --client sdk"),
        (["--client", "wire"], 2, "Invalid value for '--client'"),
        (["--client-sdk", "0.0.999"], 3, "could not build an environment for SDK spec '0.0.999'"),
    ],
)
def test_client_mistakes_are_one_line(
    tmp_path: Path, env_cache: Path, args: list[str], code: int, message: str
) -> None:
    done = _cli(
        "run",
        "--transport",
        "http",
        "--requests",
        "5",
        "--out",
        str(tmp_path),
        *args,
        cache=env_cache.parent / "cli-cache",
    )
    assert done.returncode == code, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
async def test_matrix_crosses_client_releases_with_a_server_release(tmp_path: Path, env_cache: Path) -> None:
    # "Does my server work with agents on 2.x?": one server release, two client releases.
    scenario = _scenario(tmp_path, MIXED.replace("requests = 24", "requests = 12"), transports='["http"]')
    lines: list[str] = []
    sides = await run_matrix(
        scenario, [NEW_SDK], tmp_path / "m", repeat=1, cache_dir=env_cache, check=False, say=lines.append,
        client_specs=[OLD_SDK, NEW_SDK],
    )  # fmt: skip
    labels = [f"mcp-{NEW_SDK}_client-mcp-{OLD_SDK}", f"mcp-{NEW_SDK}_client-mcp-{NEW_SDK}"]
    assert [side.label for side in sides] == labels
    assert all(side.usable for side in sides), lines
    assert any(
        f"(server {NEW_SDK}, SDK client mcp {OLD_SDK} ({OLD_SDK})) repeat 1/1" in line for line in lines
    ), lines
    plan = json.loads((tmp_path / "m" / MATRIX_FILE).read_text())
    assert [side["client"]["mcp"] for side in plan["sides"]] == [OLD_SDK, NEW_SDK]
    assert [side["client_spec"] for side in plan["sides"]] == [OLD_SDK, NEW_SDK]
    for side, client_version in zip(sides, (OLD_SDK, NEW_SDK), strict=True):
        run = json.loads((side.runs[0] / "run.json").read_text())
        assert run["meta"]["target"]["sdk"]["version"] == NEW_SDK
        assert run["meta"]["client"]["mcp"] == client_version
    rows = side_by_side(sides)
    big = next(row for row in rows if row[:2] == ["http", "big"])
    # err columns: the old client none, the new one every big blob.
    assert big[5] == "0"
    assert int(big[10]) > 0


def test_the_summary_says_when_the_sdk_client_is_what_limits_the_rate() -> None:
    run: dict[str, Any] = {
        "meta": {
            "client": {"kind": "sdk", "mcp": "2.3.0", "workers": 2},
            "target": {"kind": "url", "url": "http://127.0.0.1:9/mcp"},
        },
        "transports": {
            "http": {
                "ops": {},
                "client": {
                    "kind": "sdk",
                    "mcp": "2.3.0",
                    "workers": 2,
                    "cpu_per_call_us": 4000.0,
                    "cpu_busy": 0.97,
                    "saturated": True,
                },
            }
        },
    }
    text = render_summary(run, Style(colour=False))
    assert text.startswith(
        "under test: the mcp 2.3.0 SDK client (ClientSession, 2 worker processes) with http://127.0.0.1:9/mcp\n"
    )
    assert "SDK client (mcp 2.3.0) CPU 4.00ms/call" in text
    assert "note: on http the mcp 2.3.0 SDK client kept its worker processes 97% busy" in text
    run["transports"]["http"]["client"]["saturated"] = False
    assert "note:" not in render_summary(run, Style(colour=False))
