"""Gates that cannot pass on nothing, and one failure vocabulary, through the real command line.

A target that hangs during warm-up (the reference server's ``--hang-after-calls``) leaves no
measured call; an unreachable URL leaves nothing at all. Neither may print a passing threshold.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from loadtest.run.targets.reference import REFERENCE_SERVER

CLI = [sys.executable, "-m", "loadtest"]


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


def _scenario(tmp_path: Path, server_args: str, thresholds: str, workload: str) -> Path:
    path = tmp_path / "s.toml"
    path.write_text(
        f"""
transports = ["stdio"]
thresholds = {thresholds}
[target]
command = "{{python}} {REFERENCE_SERVER} --transport {{transport}} {server_args}"
[workload]
{workload}
[[ops]]
tool = "echo"
arguments = {{ text = "{{nonce}}" }}
expect = {{ text = "{{nonce}}" }}
"""
    )
    return path


def test_a_target_that_hangs_in_warm_up_fails_every_gate_with_no_data(tmp_path: Path) -> None:
    # The first call hangs: the calls sent during the 1 s warm-up are lost only at
    # their 5 s deadline, after the 2 s measured window; so the window holds no call at all.
    path = _scenario(
        tmp_path,
        "--hang-after-calls 1",
        '["silent_failures == 0", "error_rate == 0", "failure_rate == 0", "p99 < 1s", "rate < 1000"]',
        'sessions = 1\nwarmup = "1s"\nduration = "2s"\nrequest_timeout = "5s"',
    )
    done = cli("run", str(path), "--out", str(tmp_path / "out"), "--no-progress", "--json")
    assert done.returncode == 1, done.stderr
    run = json.loads(done.stdout)
    assert run["totals"]["calls"] == 0
    assert len(run["thresholds"]) == 5
    for item in run["thresholds"]:
        assert item["passed"] is False, item
        assert item["reason"].startswith("no data"), item
        assert "stdio/echo (no measured calls)" in item["reason"]
    # And on screen: no "pass", no "measured None".
    text = cli("report", str(Path(run["path"]).parent))
    assert "pass " not in text.stdout
    assert "None" not in text.stdout
    assert text.stdout.count("no data") >= 5


def test_an_unreachable_url_is_one_line_no_table_and_no_passing_threshold(tmp_path: Path) -> None:
    done = cli(
        "run", "--url", "http://127.0.0.1:1/mcp", "--out", str(tmp_path), "--no-progress", "--duration", "1s"
    )
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("mcp-loadtest: error:")]
    assert len(errors) == 1
    assert "127.0.0.1:1" in errors[0]
    # No table of zeros, and no thresholds (passing or not) under the error line.
    assert done.stdout == ""
    assert "pass" not in done.stderr
    (run_json,) = tmp_path.glob("*/run.json")
    run = json.loads(run_json.read_text())
    assert run["error"]
    assert not any(item["passed"] for item in run["thresholds"])
