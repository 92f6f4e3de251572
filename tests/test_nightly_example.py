"""examples/nightly-perf.yml recovers by itself: its own shell steps, run night after night.

Night 1 finds a baseline recorded on another kind of machine (a hosted runner that changed CPU
model): the run is judged on its thresholds, the JUnit file and step summary are written, and
the good run refreshes the baseline. Night 2 is compared with it again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

WORKFLOW = Path(__file__).parent.parent / "examples" / "nightly-perf.yml"


def step_script(name: str) -> str:
    """The ``run: |`` block of the step called ``name`` (the file is plain enough to cut by indent)."""
    lines = WORKFLOW.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == f"- name: {name}")
    at = next(i for i in range(start, len(lines)) if lines[i].strip() == "run: |")
    indent = len(lines[at]) - len(lines[at].lstrip())
    body = []
    for line in lines[at + 1 :]:
        if line.strip() and len(line) - len(line.lstrip()) <= indent:
            break
        body.append(line)
    return "\n".join(body)


def _step(name: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "GITHUB_STEP_SUMMARY": str(cwd / "step-summary.md"),
    }
    return subprocess.run(
        ["bash", "-e", "-c", step_script(name)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.skipif(sys.platform == "win32", reason="the workflow's steps are bash")
def test_the_nightly_workflow_recovers_from_a_baseline_of_another_machine(tmp_path: Path) -> None:
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "nightly.toml").write_text(
        'transports = ["http"]\nthresholds = ["silent_failures == 0"]\n'
        '[workload]\nrequests = 150\nwarmup = "0s"\n[[ops]]\nmethod = "ping"\n'
    )
    # The cached baseline: a good run, but from a runner with another CPU.
    seed = _step("run against the baseline", tmp_path)
    assert seed.returncode == 0, seed.stderr
    assert _step("refresh the baseline", tmp_path).returncode == 0
    (old,) = (tmp_path / "results" / "baseline").glob("*/run.json")
    document = json.loads(old.read_text())
    document["meta"]["cpu_model"] = "Yesterday's CPU"
    old.write_text(json.dumps(document))
    for path in (tmp_path / "summary.md", tmp_path / "junit.xml"):
        path.unlink()

    night1 = _step("run against the baseline", tmp_path)
    assert night1.returncode == 0, night1.stdout + night1.stderr
    assert "not compared with the baseline" in (tmp_path / "summary.md").read_text()
    assert "<skipped" in (tmp_path / "junit.xml").read_text()
    reports = _step("reports", tmp_path)
    assert reports.returncode == 0, reports.stderr
    assert "thresholds passed" in (tmp_path / "step-summary.md").read_text()
    assert (tmp_path / "report.html").is_file()
    assert _step("refresh the baseline", tmp_path).returncode == 0
    assert len(list((tmp_path / "results" / "baseline").glob("*/run.json"))) == 2

    night2 = _step("run against the baseline", tmp_path)
    assert night2.returncode in (0, 1), night2.stdout + night2.stderr
    summary = (tmp_path / "summary.md").read_text()
    assert "## mcp-loadtest compare" in summary
    assert "Yesterday's CPU" in summary  # the old run, skipped with its reason
    (tmp_path / "report.html").unlink()
    assert _step("reports", tmp_path).returncode == 0
    assert (tmp_path / "report.html").is_file()
