"""A SIGKILLed run rebuilt from its logs carries every field a finished run has.

The run is made as users make it (``mcp-loadtest run`` in its own process, the bundled
reference server on stdio), killed with SIGKILL (no chance to write run.json), rebuilt with
:func:`~loadtest.results.recovery.rebuild_document`, and its sections compared, key by key,
with those of the same scenario run to the end.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from loadtest.results.document import load_run
from loadtest.results.recovery import rebuild_document, rebuild_run

CLI = [sys.executable, "-m", "loadtest"]

SCENARIO = """
transports = ["stdio"]
[workload]
model = "open"
rate = "40/s"
sessions = 1
duration = "{duration}"
warmup = "0s"
[[ops]]
name = "echo"
tool = "echo"
arguments = {{ text = "hello {{nonce}}" }}
expect = {{ text = "hello {{nonce}}" }}
[[ops]]
name = "missing"
tool = "no-such-tool"
"""


def _scenario(tmp_path: Path, duration: str) -> Path:
    path = tmp_path / f"scenario-{duration}.toml"
    path.write_text(SCENARIO.format(duration=duration))
    return path


def _killed_run(tmp_path: Path) -> Path:
    """A run directory whose tester was SIGKILLed once its logs held failures and examples."""
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [*CLI, "run", str(_scenario(tmp_path, "1h")), "--out", str(out), "--no-progress"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    children: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, "the run ended by itself"
            assert time.monotonic() < deadline, "no failures logged in 90 s"
            logs = list(out.glob("*/health-stdio.jsonl"))
            lines = logs[0].read_text().splitlines() if logs else []
            samples = [json.loads(line) for line in lines[:-1] if '"gen_rss"' in line]
            ops = samples[-1]["ops"] if samples else {}
            # Wait until the log holds what must survive: errors, bytes and their examples.
            if ops.get("missing", [0])[0] >= 3 and any(
                len(e) >= 9 for s in samples for e in s["ops"].values()
            ):
                break
            time.sleep(0.2)
        children = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for child in children:
            child.kill()
        psutil.wait_procs(children, timeout=10)
    (run,) = out.iterdir()
    assert not (run / "run.json").exists()
    return run


def _finished_run(tmp_path: Path) -> dict[str, Any]:
    out = tmp_path / "finished"
    done = subprocess.run(
        [*CLI, "run", str(_scenario(tmp_path, "2s")), "--out", str(out), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode in (0, 1), done.stderr
    (run,) = out.iterdir()
    return load_run(run)


def test_a_rebuilt_run_has_every_field_of_a_finished_one(tmp_path: Path) -> None:
    finished = _finished_run(tmp_path)["transports"]["stdio"]
    rebuilt_doc = rebuild_document(_killed_run(tmp_path))
    rebuilt = rebuilt_doc.to_json()["transports"]["stdio"]

    assert set(rebuilt) == set(finished)
    assert set(rebuilt["sessions"]) == set(finished["sessions"])
    assert set(rebuilt["ops"]) == set(finished["ops"]) == {"echo", "missing"}
    for name, op in finished["ops"].items():
        assert set(rebuilt["ops"][name]) == set(op), name
    # The fields are filled, not just present: bytes, loud failures and their examples.
    echo, missing = (
        rebuilt_doc.transports["stdio"].ops["echo"],
        rebuilt_doc.transports["stdio"].ops["missing"],
    )
    assert echo.count > 0
    assert echo.bytes_in > 0
    assert echo.bytes_out > 0
    assert missing.errors
    assert missing.error_examples
    assert set(missing.error_examples) == set(finished["ops"]["missing"]["error_examples"])
    assert rebuilt_doc.partial is not None
    assert rebuilt_doc.totals["errors"] == sum(missing.errors.values())
    # The JSON form is the typed one, as `report` and `compare` read it.
    assert rebuild_run(next((tmp_path / "killed").iterdir())) == rebuilt_doc.to_json()
