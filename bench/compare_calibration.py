"""Calibration of ``compare``: the per-report A/A false-alarm rate, and the power to see +2 ms.

    .venv/bin/python bench/compare_calibration.py [--out DIR] [--reuse] [--aa-runs 16] [--runs 8]
                                                  [--repeat 5] [--reports 60]

Records, interleaved (d0 d2 d0 d2 ...), runs of the reference server over Streamable HTTP at an
open-model 60 calls/s (echo + 4 KiB blob, 3 s measured each): ``--aa-runs`` with no added
delay and ``--runs`` with ``delay_ms = 2`` (the README's +2 ms case). Then, with ``--repeat``
runs a side (default: matrix's default repeat):

- **A/A, per report**: what users feel is whether a report says anything, not the share of
  figures. Real A/A reports of 5 runs against 5 would need 10 runs each (ten reports: over
  three minutes of a shared 2-core machine), so this is a **resampling mode over real runs**:
  ``--reports`` random disjoint splits of the undelayed runs into ``repeat`` against
  ``repeat``. The reports share runs, so they are not independent; the pool's size bounds how
  much they can say. The false-alarm rate is the share of reports with any figure called
  regressed or improved; the share of figures that would have been flagged each on its own
  (p < 0.05 and the minimum effect, as before the report controlled its family) is beside it.
- **Single runs** (disjoint pairs): how often thin evidence says "inconclusive" (it never
  fails the exit code).
- **Power, +2 ms**: ``--reports`` random draws of ``repeat`` undelayed against ``repeat``
  delayed runs; the share of reports calling echo p50 regressed, and the report regressed.

The figures go to stdout and ``DIR/calibration.json``. About 2 minutes on 2 cores (24 runs).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

from loadtest.analysis.compare.model import Run, Side, load_side
from loadtest.analysis.compare.verdicts import INCONCLUSIVE, REGRESSED, Comparison, compare_sides
from loadtest.run.matrix import DEFAULT_REPEAT

SCENARIO = """
name = "calibration"
transports = ["http"]
{target}
[workload]
model = "open"
rate = "60/s"
sessions = 4
duration = "3s"
warmup = "0.5s"
[[ops]]
name = "echo"
tool = "echo"
arguments = {{ text = "hello {{nonce}}" }}
weight = 4
expect = {{ text = "hello {{nonce}}" }}
[[ops]]
name = "blob"
tool = "blob"
arguments = {{ n_bytes = 4096, seed = "{{seed}}" }}
weight = 1
expect = {{ blob = true }}
"""

DELAY_MS = 2


def record(out: Path, aa_runs: int, runs: int) -> None:
    exe = Path(sys.executable).with_name("mcp-loadtest")
    for delay in (0, DELAY_MS):
        text = SCENARIO.format(target=f"[target]\ndelay_ms = {delay}" if delay else "")
        (out / f"d{delay}.toml").write_text(text)
    plan = []
    for i in range(max(aa_runs, runs)):
        order = [0, DELAY_MS] if i % 2 == 0 else [DELAY_MS, 0]
        plan += [d for d in order if (d == 0 and i < aa_runs) or (d and i < runs)]
    for n, delay in enumerate(plan, 1):
        print(f"[{n}/{len(plan)}] delay {delay} ms", flush=True)
        subprocess.run(
            [str(exe), "run", str(out / f"d{delay}.toml"), "--out", str(out / f"d{delay}"), "--no-progress"],
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


def _compare(a: list[Run], b: list[Run]) -> Comparison:
    # The delayed runs' scenario hash differs (delay_ms is part of the target): force.
    return compare_sides(Side("A", a), Side("B", b), force=True, resamples=400)


def _alone(c: Comparison) -> bool:
    """Would a figure have been flagged on its own (per-figure test, before the family control)?"""
    return any(
        row.metric.gated and row.p is not None and row.p < c.alpha and (row.verdict != "unchanged")
        for row in c.rows
    )


def aa_reports(pool: list[Run], repeat: int, reports: int, rng: random.Random) -> dict[str, Any]:
    alarms = inconclusive = alone = figures = 0
    for _ in range(reports):
        picked = rng.sample(pool, 2 * repeat)
        c = _compare(picked[:repeat], picked[repeat:])
        alarms += bool(c.regressions or c.improvements)
        inconclusive += bool(c.inconclusive)
        alone += _alone(c)
        figures = c.evidence()["gated_figures"]
    return {
        "reports": reports,
        "runs_per_side": repeat,
        "pool_runs": len(pool),
        "gated_figures_per_report": figures,
        "reports_with_a_false_verdict": alarms,
        "per_report_false_alarm_rate": alarms / reports,
        "reports_with_an_inconclusive_figure": inconclusive,
        "reports_a_per_figure_test_would_have_flagged": alone,
    }


def single_pairs(pool: list[Run]) -> dict[str, Any]:
    pairs = len(pool) // 2
    alarms = inconclusive = 0
    for k in range(pairs):
        c = _compare([pool[2 * k]], [pool[2 * k + 1]])
        alarms += bool(c.regressed or c.improvements)
        inconclusive += bool(c.inconclusive)
    return {"reports": pairs, "reports_failing": alarms, "reports_with_an_inconclusive_figure": inconclusive}


def power(
    plain: list[Run], delayed: list[Run], repeat: int, reports: int, rng: random.Random
) -> dict[str, Any]:
    echo_regressed = report_regressed = inconclusive = 0
    ratios: list[float] = []
    for _ in range(reports):
        c = _compare(rng.sample(plain, repeat), rng.sample(delayed, repeat))
        p50 = next(r for r in c.rows if r.op == "echo" and r.metric.key == "p50")
        echo_regressed += p50.verdict == REGRESSED
        inconclusive += p50.verdict == INCONCLUSIVE
        report_regressed += c.regressed
        if p50.ratio is not None:
            ratios.append(p50.ratio)
    full = _compare(plain, delayed)
    p50 = next(r for r in full.rows if r.op == "echo" and r.metric.key == "p50")
    return {
        "reports": reports,
        "runs_per_side": repeat,
        "echo_p50_regressed": echo_regressed,
        "echo_p50_inconclusive": inconclusive,
        "power_echo_p50": echo_regressed / reports,
        "power_report": report_regressed / reports,
        "echo_p50_ratio_median": sorted(ratios)[len(ratios) // 2] if ratios else None,
        "all_runs": {
            "runs": [len(plain), len(delayed)],
            "a_us": p50.a,
            "ratio": p50.ratio,
            "ci95": p50.ci,
            "q": p50.q,
            "verdict": p50.verdict,
            "pure_delay_ratio": (p50.a + DELAY_MS * 1000) / p50.a if p50.a else None,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("/tmp/mcp-loadtest-calibration"))
    parser.add_argument("--reuse", action="store_true", help="analyse runs already in --out")
    parser.add_argument("--aa-runs", type=int, default=16)
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=DEFAULT_REPEAT)
    parser.add_argument("--reports", type=int, default=60)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.reuse:
        record(args.out, args.aa_runs, args.runs)
    d0 = load_side([args.out / "d0"]).runs
    delayed = load_side([args.out / f"d{DELAY_MS}"]).runs
    rng = random.Random(1)
    figures: dict[str, Any] = {
        "aa_per_report": aa_reports(d0, args.repeat, args.reports, rng),
        "aa_single_runs": single_pairs(d0),
        f"power_plus_{DELAY_MS}ms": power(d0, delayed, args.repeat, args.reports, rng),
    }
    text = json.dumps(figures, indent=2, default=str)
    (args.out / "calibration.json").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
