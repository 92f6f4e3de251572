"""`matrix` on the command line: the scenario's thresholds per side, and wire differences by cause.

Two real releases (an old 1.x that negotiates no newer than 2024-11-05, and the newest 2.x)
in their own environments, each with a threshold that cannot hold (``p50 < 1us``) next to one
that does: the matrix must show both per side and exit 1, whatever the comparison says.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio
import orjson
import pytest

from loadtest.present.wire_diffs import group_differences
from tests.test_envs import OLD_SDK

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(600)]
NEW_SDK = "2.3.0"


async def test_matrix_fails_on_a_threshold_shows_it_per_side_and_lists_wire_differences_once(
    tmp_path: Path, env_cache: Path
) -> None:
    scenario = tmp_path / "gated.toml"
    scenario.write_text(
        'transports = ["http"]\nthresholds = ["p50 < 1us", "silent_failures == 0"]\n'
        '[workload]\nsessions = 2\nrequests = 30\nwarmup = "0s"\n'
        '[[ops]]\ntool = "echo"\narguments = { text = "{nonce}" }\nexpect = { text = "{nonce}" }\n'
    )
    # The CLI finds environments under $MCP_LOADTEST_CACHE/envs: share the session's.
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "envs").symlink_to(env_cache, target_is_directory=True)
    with anyio.fail_after(550):
        done = await anyio.run_process(
            [
                sys.executable,
                "-m",
                "loadtest",
                "matrix",
                str(scenario),
                "--sdk",
                OLD_SDK,
                "--sdk",
                NEW_SDK,
                "--repeat",
                "1",
                "--out",
                str(tmp_path / "out"),
                "--no-progress",
            ],
            check=False,
            env={**os.environ, "MCP_LOADTEST_CACHE": str(cache), "NO_COLOR": "1"},
        )
    out, err = done.stdout.decode(), done.stderr.decode()
    assert done.returncode == 1, out + err
    old, new = f"mcp-{OLD_SDK}", f"mcp-{NEW_SDK}"
    # The thresholds, per side: the failing one on both, the passing one on both.
    table = out[out.index("thresholds, per side") :].splitlines()
    header = table[1].split()
    assert header[0] == "threshold"
    assert old in header
    assert new in header
    failing = next(line for line in table if line.strip().startswith("p50 < 1us"))
    assert failing.count("FAIL in 1/1 runs") == 2, failing
    passing = next(line for line in table if line.strip().startswith("silent_failures == 0"))
    assert passing.count("pass (1/1 runs)") == 2, passing
    assert f"FAIL {old}: p50 < 1us: measured" in out
    assert "threshold of the scenario failed on" in err
    # Every report of the comparison has them too.
    (matrix,) = (tmp_path / "out").iterdir()
    # The plan next to the runs keeps the schema name scripts read (it was once renamed by accident).
    assert orjson.loads((matrix / "matrix.json").read_bytes())["schema"] == "mcp-loadtest/matrix/1"
    stem = matrix / f"compare-{old}-vs-{new}"
    markdown = stem.with_name(stem.name + ".md").read_text()
    assert "Thresholds (every run must pass)" in markdown
    assert "`p50 < 1us` | 🔴 FAIL in 1/1 runs" in markdown
    # The report groups the wire differences by cause as well: one row for the version's.
    assert "checks | unchanged | protocol version negotiated: 2024-11-05 -> " in markdown
    assert "| `http-initialize` |" not in markdown
    assert "| `http-endpoint-path` |" in markdown
    report = orjson.loads(stem.with_name(stem.name + ".json").read_bytes())
    assert [gate["passed"] for gate in report["thresholds"]["b"]] == [False, True]
    assert 'id="thresholds"' in stem.with_name(stem.name + ".html").read_text()
    # Wire differences: printed once, the negotiated version's dozen consequences on one line.
    assert out.count("wire-behaviour differences") == 1, out
    section = out[out.index("wire-behaviour differences") :].split("\n\n")[0].splitlines()
    cause = [line for line in section if "protocol version negotiated: 2024-11-05 -> " in line]
    assert len(cause) == 1, section
    assert "2025-11-25" in cause[0]
    assert "http-initialize" in cause[0]
    assert "http-negotiate-future" in cause[0]
    assert not any(line.strip().startswith("http-initialize:") for line in section), section
    # The difference that matters still has its own line.
    assert any(line.strip().startswith("http-endpoint-path:") for line in section), section


def test_differences_that_are_not_the_version_keep_their_own_line() -> None:
    diffs = [
        {
            "id": "http-initialize",
            "status": ["SUCCESS", "SUCCESS"],
            "observed": ["protocolVersion 2024-11-05", "protocolVersion 2025-11-25"],
            "line": "http-initialize: ...",
        },
        {
            "id": "stdio-initialize",
            "status": ["SUCCESS", "SUCCESS"],
            "observed": ["protocolVersion 2024-11-05", "protocolVersion 2025-11-25"],
            "line": "stdio-initialize: ...",
        },
        {
            # The version differs, but so does the verdict: that is news, not a consequence.
            "id": "http-batch",
            "status": ["SKIPPED", "FAILURE"],
            "observed": ["at 2024-11-05 -> 400", "at 2025-11-25 -> 400"],
            "line": "http-batch: ...",
        },
        {
            "id": "http-origin",
            "status": ["FAILURE", "SUCCESS"],
            "observed": ["Origin evil -> 200", "Origin evil -> 403"],
            "line": "http-origin: ...",
        },
    ]
    groups = group_differences(diffs)
    assert [g.render() for g in groups] == [
        "protocol version negotiated: 2024-11-05 -> 2025-11-25: 2 checks (http-initialize, stdio-initialize)",
        "http-batch: ...",
        "http-origin: ...",
    ]
    assert group_differences(diffs[3:])[0].render() == "http-origin: ..."
