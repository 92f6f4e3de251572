"""`bench/generator_cost.py --quick` runs end to end and writes a complete results file.

Only the shape and sanity of the figures are checked, never the goals: on a shared two-core
machine the figures of a seconds-long run say nothing about the generator's cost.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "generator_cost.py"
VARIANTS = ("stdio", "sse", "http", "http-json")
FIGURES = ("calls", "calls_per_s", "server_us_per_call", "client_us_per_call", "ratio", "server_busy")


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and value > 0


@pytest.mark.slow
@pytest.mark.timeout(210)
def test_quick_benchmark_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "generator_cost.json"
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=200,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["schema"] == "mcp-loadtest/bench-generator-cost/1"
    assert doc["meta"]["quick"] is True
    assert "Goals" in done.stdout

    for variant in VARIANTS:
        cost = doc["cost"][variant]
        assert "error" not in cost, (variant, cost)
        for who in ("generator", "sdk"):
            for key in FIGURES:
                assert _positive(cost[who][key]), (variant, who, key, cost[who][key])
            assert cost[who]["runs"], (variant, who)
        assert cost["generator"]["runs"][0]["integrity"]["count"] > 0
        assert _positive(cost["ratio"])
        assert _positive(cost["sdk_ratio"])
        assert _positive(cost["times_cheaper_than_sdk"])
        assert isinstance(cost["passed"], bool)

        blob = doc["blob"][variant]
        assert "error" not in blob, (variant, blob)
        assert blob["calls"]["count"] > 0
        assert blob["intact"] is True, (variant, blob)
        assert blob["rss_peak_bytes"] > 0
        assert blob["rss_increase_bytes"] >= 0
        assert isinstance(blob["passed"], bool)

    sessions = doc["sessions"]
    assert "error" not in sessions, sessions
    assert sessions["sessions"]["opened"] > 0
    assert sessions["calls"]["count"] > 0
    assert _positive(sessions["rss_peak_bytes"])
    assert sessions["lag_p99_us"] is not None
    assert set(sessions["passed"]) == {"rss", "lag", "errors"}

    for target in ("null", "http-json"):
        scaling = doc["scaling"][target]
        assert "error" not in scaling, (target, scaling)
        assert set(scaling["by_workers"]) == {"1", "2"}
        for figures in scaling["by_workers"].values():
            for key in FIGURES:
                assert _positive(figures[key]), (target, key, figures[key])
        assert [run["workers"] for run in scaling["runs"]] == [1, 2]
        for run in scaling["runs"]:
            assert run["integrity"]["count"] == run["integrity"]["ok"] > 0, (target, run)
        assert _positive(scaling["speedup"])
        assert isinstance(scaling["passed"], bool)

    # One verdict per cost and blob transport, three for the sessions case, one for scaling.
    assert len(doc["verdicts"]) == 2 * len(VARIANTS) + 3 + 1
    assert all(isinstance(v["passed"], bool) for v in doc["verdicts"])
