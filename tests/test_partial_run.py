"""A run stopped by SIGINT/SIGTERM says so in run.json: ``meta.partial`` and what ran."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "loadtest"]


def _wait_for_line(proc: subprocess.Popen[str], text: str) -> None:
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    for line in proc.stderr:
        if text in line:
            return
        assert time.monotonic() < deadline
    raise AssertionError(f"{text!r} never printed")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_an_interrupted_run_is_marked_partial_with_what_ran(tmp_path: Path, signum: int) -> None:
    proc = subprocess.Popen(
        [
            *CLI,
            "run",
            "--transport",
            "all",
            "--duration",
            "30s",
            "--out",
            str(tmp_path),
            "--no-progress",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        _wait_for_line(proc, "stdio: running")
        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    match = re.search(r"^results: (.+)$", stdout, re.MULTILINE)
    assert match, stdout
    run = json.loads(Path(match.group(1)).read_text())
    meta = run["meta"]
    assert meta["partial"] is True
    ran = meta["ran"]
    assert ran["not_run"] == ["sse", "http"]
    stdio = ran["transports"]["stdio"]
    assert stdio["completed"] is False
    assert stdio["planned_s"] == 30.0
    assert stdio["measured_s"] < 30.0
    assert stdio["measured_s"] == run["transports"]["stdio"]["measured_s"]
    assert run["partial"].startswith("interrupted: measured stdio ")
    assert "not run: sse, http" in run["partial"]


def test_a_run_that_ends_as_planned_is_not_partial(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            *CLI,
            "run",
            "--transport",
            "stdio",
            "--duration",
            "1s",
            "--out",
            str(tmp_path),
            "--no-progress",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)
    assert "partial" not in run["meta"]
    assert "partial" not in run
