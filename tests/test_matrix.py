"""`matrix` over real `mcp` releases, each in its own environment, through to a comparison."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from loadtest.analysis.compare.health import HEALTH_OP
from loadtest.analysis.compare.model import load_side
from loadtest.analysis.compare.verdicts import compare_sides
from loadtest.core.names import MATRIX_FILE
from loadtest.run.matrix import check_differences, interleaved, run_matrix, side_by_side
from loadtest.scenario import Scenario, load_scenario
from tests.test_envs import OLD_SDK

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(600)]
NEW_SDK = "2.3.0"


def _scenario(tmp_path: Path, transports: str = '["stdio", "sse", "http"]') -> Scenario:
    path = tmp_path / "matrix.toml"
    path.write_text(
        f"transports = {transports}\n"
        '[workload]\nsessions = 2\nrequests = 30\nwarmup = "0s"\n'
        '[[ops]]\ntool = "echo"\narguments = { text = "{nonce}" }\nexpect = { text = "{nonce}" }\n'
        '[[ops]]\nmethod = "resources/read"\nuri = "blob://70000/{seed}"\nexpect = { blob = true }\n'
    )
    return load_scenario(path)


def test_interleaving_is_abba() -> None:
    assert interleaved(2, 3) == [(0, 0), (1, 0), (1, 1), (0, 1), (0, 2), (1, 2)]
    assert interleaved(3, 2) == [(0, 0), (1, 0), (2, 0), (2, 1), (1, 1), (0, 1)]


@pytest.mark.slow
async def test_two_real_releases_on_every_transport(tmp_path: Path, env_cache: Path) -> None:
    # An old 1.x (FastMCP, host/port in the constructor) and the newest 2.x (MCPServer,
    # host/port in run()): the same reference server script serves both.
    lines: list[str] = []
    sides = await run_matrix(
        _scenario(tmp_path),
        [OLD_SDK, NEW_SDK],
        tmp_path / "m",
        repeat=2,
        cache_dir=env_cache,
        say=lines.append,
    )
    assert [side.usable for side in sides] == [True, True], lines
    plan = json.loads((tmp_path / "m" / MATRIX_FILE).read_text())
    old_label, new_label = f"mcp-{OLD_SDK}", f"mcp-{NEW_SDK}"
    assert plan["order"] == [old_label, new_label, new_label, old_label]
    for side, version in zip(sides, (OLD_SDK, NEW_SDK), strict=True):
        assert len(side.runs) == 2
        for run_dir in side.runs:
            run = json.loads((run_dir / "run.json").read_text())
            sdk = run["meta"]["target"]["sdk"]
            assert sdk["version"] == version
            assert sdk["freeze"]["mcp"] == version
            # What the server itself says it is: the exact release that served the run.
            assert run["meta"]["target"]["server_info"]["version"] == version
            assert set(run["transports"]) == {"stdio", "sse", "http"}
            assert run["totals"]["calls"] == 3 * 30
            assert run["totals"]["silent_failures"] == 0
            assert run["totals"]["errors"] == 0
    rows = side_by_side(sides)
    assert rows[0][2] == f"{old_label} rate"
    assert len(rows) == 1 + 3 * 2  # header + transports x ops
    # Each version's conformance checks travel in its runs' results, and what changed on the
    # wire is listed: 1.8.0 redirects /mcp to /mcp/ and negotiates no newer than 2024-11-05.
    assert run["checks"]
    changed = {diff.id: str(diff) for _a, _b, diff in check_differences(sides)}
    assert "POST /mcp -> 307" in changed["http-endpoint-path"]
    assert "2024-11-05" in changed["http-negotiate-future"]
    # Through to a comparison of the two SDKs' groups of runs, with the check differences in it.
    comparison = compare_sides(
        load_side([tmp_path / "m" / old_label]), load_side([tmp_path / "m" / new_label])
    )
    compared = {(row.transport, row.op) for row in comparison.rows if row.op != HEALTH_OP}
    assert compared == {(t, op) for t in ("stdio", "sse", "http") for op in ("echo", "read:blob")}
    # ...and the launched servers' health, side by side, per transport.
    assert {row.transport for row in comparison.rows if row.op == HEALTH_OP} == {"stdio", "sse", "http"}
    assert comparison.check_diffs


# tests/test_envs.py shows a complete environment reused without the installer by default.
@pytest.mark.slow
async def test_a_second_matrix_reuses_the_environments(tmp_path: Path) -> None:
    # Its own cache (uv's cache makes the first build quick), so that the command-line run can
    # be pointed at it: $MCP_LOADTEST_CACHE/envs.
    scenario = _scenario(tmp_path, '["http"]')
    cache = tmp_path / "cache"
    first: list[str] = []
    await run_matrix(
        scenario,
        [OLD_SDK, NEW_SDK],
        tmp_path / "a",
        repeat=1,
        cache_dir=cache / "envs",
        check=False,
        say=first.append,
    )
    assert [line for line in first if "building environment" in line], first
    with anyio.fail_after(500):
        done = await anyio.run_process(
            [
                sys.executable,
                "-m",
                "loadtest",
                "matrix",
                scenario.source,
                "--sdk",
                OLD_SDK,
                "--sdk",
                NEW_SDK,
                "--repeat",
                "1",
                "--out",
                str(tmp_path / "b"),
                "--no-progress",
                "--no-check",
            ],
            check=False,
            env={**os.environ, "MCP_LOADTEST_CACHE": str(cache)},
        )
    said = (done.stdout + done.stderr).decode()
    assert done.returncode in (0, 1), said
    assert "installing" not in said, said
    assert "building environment" not in said, said
    # Compared automatically, one report of each kind, named after both SDKs in full.
    (matrix,) = (tmp_path / "b").iterdir()
    stem = f"compare-mcp-{OLD_SDK}-vs-mcp-{NEW_SDK}"
    assert sorted(p.name for p in matrix.glob("compare-*")) == sorted(
        f"{stem}.{ext}" for ext in ("html", "json", "md")
    )


def test_a_version_that_does_not_exist_is_named_and_exit_3(tmp_path: Path, env_cache: Path) -> None:
    scenario = tmp_path / "s.toml"
    scenario.write_text(
        'transports = ["http"]\n[workload]\nrequests = 10\nwarmup = "0s"\n[[ops]]\nmethod = "ping"\n'
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "loadtest",
            "matrix",
            str(scenario),
            "--sdk",
            "0.0.999",
            "--sdk",
            NEW_SDK,
            "--repeat",
            "1",
            "--out",
            str(tmp_path),
            "--no-progress",
            "--no-check",
        ],
        capture_output=True,
        text=True,
        timeout=500,
        env={**os.environ, "MCP_LOADTEST_CACHE": str(env_cache.parent / "matrix-cli-cache")},
    )
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr
    assert "'0.0.999'" in done.stderr
    # The version that exists still ran.
    assert f"mcp-{NEW_SDK} rate" in done.stdout
