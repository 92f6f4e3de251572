"""Calibration of ``compare``: the A/A false-alarm rate and the detection of a real slow-down.

    .venv/bin/python bench/compare_calibration.py [--out DIR] [--reuse] [--aa-runs 16] [--runs 6]

Records, interleaved (d0 d1 d2 d0 d0 d1 d2 d0 ...), runs of the reference server over
Streamable HTTP at an open-model 60 calls/s (echo + 4 KiB blob, 3 s measured each):
``--aa-runs`` with no added delay and ``--runs`` each with ``delay_ms = 1`` (about +20% on p50)
and ``delay_ms = 2``. Then:

- A/A: random disjoint splits of the undelayed runs into 5 against 5 (runs mode), and
  disjoint single-run pairs (thin mode); the share of gated metrics called regressed or
  improved is the false-alarm rate.
- Slow-down: the first ``--runs`` undelayed runs against the delayed ones; p50 ratio, its
  interval, and the ratio a pure added delay predicts, (p50_A + delay) / p50_A.

The figures go to stdout and ``DIR/calibration.json``. Takes about 3 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
from pathlib import Path

from loadtest.analysis.compare.model import Side, load_side
from loadtest.analysis.compare.verdicts import IMPROVED, NOT_ENOUGH, REGRESSED, compare_sides

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


def record(out: Path, aa_runs: int, runs: int) -> None:
    exe = Path(sys.executable).with_name("mcp-loadtest")
    for delay in (0, 1, 2):
        text = SCENARIO.format(target=f"[target]\ndelay_ms = {delay}" if delay else "")
        (out / f"d{delay}.toml").write_text(text)
    plan = []
    for i in range(max(aa_runs, runs)):
        order = [0, 1, 2] if i % 2 == 0 else [2, 1, 0]
        plan += [d for d in order if (d == 0 and i < aa_runs) or (d and i < runs)]
    for n, delay in enumerate(plan, 1):
        print(f"[{n}/{len(plan)}] delay {delay} ms", flush=True)
        subprocess.run(
            [str(exe), "run", str(out / f"d{delay}.toml"), "--out", str(out / f"d{delay}"), "--no-progress"],
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


def _flags(a: Side, b: Side) -> tuple[int, int, int]:
    c = compare_sides(a, b, force=True)
    gated = [r for r in c.rows if r.metric.gated and r.verdict != NOT_ENOUGH]
    return len(gated), sum(r.verdict == REGRESSED for r in gated), sum(r.verdict == IMPROVED for r in gated)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("/tmp/mcp-loadtest-calibration"))
    parser.add_argument("--reuse", action="store_true", help="analyse runs already in --out")
    parser.add_argument("--aa-runs", type=int, default=16)
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--splits", type=int, default=40)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.reuse:
        record(args.out, args.aa_runs, args.runs)
    d0 = load_side([args.out / "d0"]).runs
    rng = random.Random(1)
    figures: dict[str, object] = {}
    # A/A, runs mode: disjoint 5 vs 5 splits of the undelayed runs.
    metrics = regressed = improved = 0
    for _ in range(args.splits):
        picked = rng.sample(d0, 10)
        n, r, i = _flags(Side("A", picked[:5]), Side("B", picked[5:]))
        metrics, regressed, improved = metrics + n, regressed + r, improved + i
    figures["aa_runs_mode"] = {
        "comparisons": args.splits,
        "runs_per_side": 5,
        "gated_metrics": metrics,
        "regressed": regressed,
        "improved": improved,
        "false_regression_rate": regressed / metrics if metrics else None,
        "false_alarm_rate": (regressed + improved) / metrics if metrics else None,
    }
    # A/A, thin mode: disjoint single-run pairs.
    metrics = regressed = improved = 0
    pairs = len(d0) // 2
    for k in range(pairs):
        n, r, i = _flags(Side("A", [d0[2 * k]]), Side("B", [d0[2 * k + 1]]))
        metrics, regressed, improved = metrics + n, regressed + r, improved + i
    figures["aa_single_run_mode"] = {
        "comparisons": pairs,
        "runs_per_side": 1,
        "gated_metrics": metrics,
        "regressed": regressed,
        "improved": improved,
        "false_regression_rate": regressed / metrics if metrics else None,
        "false_alarm_rate": (regressed + improved) / metrics if metrics else None,
    }
    # Slow-down: delayed runs against the undelayed runs recorded alongside them.
    for delay in (1, 2):
        delayed = load_side([args.out / f"d{delay}"]).runs
        a = Side("A", d0[: len(delayed)])
        b = Side("B", delayed)
        c = compare_sides(a, b, force=True)
        out = {}
        for row in c.rows:
            if row.metric.key in ("p50", "p90", "p99") and row.a:
                out[f"{row.op} {row.metric.label}"] = {
                    "a_us": row.a,
                    "b_us": row.b,
                    "ratio": row.ratio,
                    "ci95": row.ci,
                    "p": row.p,
                    "verdict": row.verdict,
                    "pure_delay_ratio": (row.a + delay * 1000) / row.a,
                }
        single = compare_sides(Side("A", d0[:1]), Side("B", delayed[:1]), force=True)
        out["single-run echo p50"] = next(
            {"ratio": r.ratio, "ci95": r.ci, "p": r.p, "verdict": r.verdict}
            for r in single.rows
            if r.op == "echo" and r.metric.key == "p50"
        )
        figures[f"slowdown_{delay}ms"] = out
    text = json.dumps(figures, indent=2, default=str)
    (args.out / "calibration.json").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
