"""`compare` on the real reference server: an added server-side delay is found, with its size."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest.analysis.compare.model import load_side
from loadtest.analysis.compare.verdicts import REGRESSED, compare_sides
from loadtest.run.execute import execute
from loadtest.scenario import load_scenario

pytestmark = pytest.mark.anyio

SCENARIO = """
name = "delay"
transports = ["http"]
[target]
delay_ms = {delay}
[workload]
model = "open"
rate = "50/s"
sessions = 2
duration = "2s"
warmup = "0.5s"
[[ops]]
name = "echo"
tool = "echo"
arguments = {{ text = "hello {{nonce}}" }}
expect = {{ text = "hello {{nonce}}" }}
"""


@pytest.mark.slow
async def test_an_added_delay_is_reported_as_a_regression_of_the_right_size(tmp_path: Path) -> None:
    # 20 ms: several times the p50 of the quiet server, so that even with the run-to-run spread
    # of a shared 2-core machine (~30% of p50) four runs a side clear the report's bar.
    delays = {"a": 0, "b": 20}
    scenarios = {}
    for side, delay in delays.items():
        path = tmp_path / f"{side}.toml"
        path.write_text(SCENARIO.format(delay=delay))
        scenarios[side] = load_scenario(path, None)
    # Interleaved A B B A A B B A, as matrix does: a drift of the machine falls on both sides.
    for n, side in enumerate("abbaabba"):
        directory = tmp_path / side / f"run-{n:02d}"
        directory.mkdir(parents=True)
        outcome = await execute(scenarios[side], directory)
        assert outcome.failure is None
    a, b = load_side([tmp_path / "a"]), load_side([tmp_path / "b"])
    assert len(a.runs) == len(b.runs) == 4
    # The delay is a knob of the reference server, i.e. of the target: compared, and said so.
    comparison = compare_sides(a, b)
    assert any("target.delay_ms: 0 in" in w for w in comparison.warnings), comparison.warnings
    p50 = next(r for r in comparison.rows if r.op == "echo" and r.metric.key == "p50")
    assert p50.a is not None
    assert p50.ratio is not None
    assert p50.ci is not None
    expected = (p50.a + 20_000) / p50.a
    assert p50.verdict == REGRESSED, p50
    # Four runs a side: Welch's t over runs, not thin (three is the fewest a verdict rests on).
    assert not p50.thin
    assert "Welch" in p50.method
    assert p50.q is not None
    assert p50.q < 0.05
    # The right magnitude: 20 ms on top of A's median (asyncio.sleep overshoots by a little).
    assert p50.ci[0] > 1.5
    assert 0.8 * expected <= p50.ratio <= 1.6 * expected, (p50.ratio, expected)
    assert comparison.regressed
    # Throughput is set by the open model, not by the server: unchanged.
    rate = next(r for r in comparison.rows if r.op == "echo" and r.metric.key == "throughput")
    assert rate.verdict != REGRESSED
