"""The statistics of `compare` on known values and synthetic runs (fast, deterministic)."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import orjson
import pytest

from loadtest.analysis.compare.model import Run, Side
from loadtest.analysis.compare.stats import (
    Bucketed,
    block_bootstrap,
    fisher_exact,
    mann_whitney_u,
    min_rank_p,
    ratio_ci_katz,
)
from loadtest.analysis.compare.verdicts import (
    IMPROVED,
    INCONCLUSIVE,
    NOT_COMPARABLE,
    NOT_ENOUGH,
    REGRESSED,
    UNCHANGED,
    compare_sides,
)
from loadtest.core.errors import LoadtestError


def test_mann_whitney_exact_matches_reference_values() -> None:
    # As scipy.stats.mannwhitneyu(..., method="exact").
    u, p = mann_whitney_u([1, 2, 3], [4, 5, 6])
    assert u == 0.0
    assert p == pytest.approx(0.1)
    assert mann_whitney_u([1, 2, 3, 4], [5, 6, 7, 8])[1] == pytest.approx(2 / 70)
    # U = 20 of 25; P(U <= 5) for 5 vs 5 is (1 + 1 + 2 + 3 + 5 + 7) / 252, doubled.
    u, p = mann_whitney_u([5, 6, 7, 8, 9], [1, 2, 3, 4, 10])
    assert u == 20.0
    assert p == pytest.approx(38 / 252)
    # Ties: the exact permutation distribution of the mid-ranks.
    u, p = mann_whitney_u([1, 2, 2, 3], [2, 4, 5, 6])
    assert u == 2.0
    assert p == pytest.approx(8 / 70)
    assert mann_whitney_u([1.0, 1.0], [1.0, 1.0])[1] == 1.0


def test_mann_whitney_normal_approximation_for_large_samples() -> None:
    x = list(range(30))
    # A shift of 5.5 over 30 values each: scipy's asymptotic p with continuity correction is 0.0271.
    assert mann_whitney_u(x, [v + 5.5 for v in x])[1] == pytest.approx(0.02709, abs=2e-4)
    assert mann_whitney_u(x, x)[1] == pytest.approx(1.0)


def test_min_rank_p_says_three_against_three_cannot_reach_five_percent() -> None:
    assert min_rank_p(3, 3) == pytest.approx(0.1)
    assert min_rank_p(4, 4) < 0.05
    assert min_rank_p(1, 10) == 1.0 or min_rank_p(1, 10) > 0.05


def test_fisher_exact_matches_r() -> None:
    # R: fisher.test(matrix(c(3, 7, 7, 3), 2))$p.value
    assert fisher_exact(3, 7, 7, 3) == pytest.approx(0.1788954, rel=1e-6)
    assert fisher_exact(1, 9, 11, 3) == pytest.approx(0.002759456, rel=1e-6)
    assert fisher_exact(0, 100, 0, 100) == 1.0
    assert fisher_exact(0, 10_000, 8, 9_992) < 0.01


def test_katz_interval_contains_the_ratio() -> None:
    ci = ratio_ci_katz(10, 1000, 20, 1000)
    assert ci is not None
    assert ci[0] < 2.0 < ci[1]
    assert ratio_ci_katz(0, 1000, 5, 1000) is None


def test_block_bootstrap_is_deterministic_for_a_seed() -> None:
    runs = [[Bucketed(float(i), 1.0, 10 + i, ((100 + i, 10 + i),)) for i in range(20)]]

    def summarise(merged: dict[int, int], count: int, seconds: float) -> list[float]:
        return [count / seconds]

    one = block_bootstrap(runs, summarise, rng=random.Random(7), resamples=50)
    two = block_bootstrap(runs, summarise, rng=random.Random(7), resamples=50)
    assert one == two
    assert all(10 <= v[0] <= 29 for v in one)


# -- synthetic runs ---------------------------------------------------------------------------


def _doc(
    p50: float,
    *,
    rate: float = 100.0,
    count: int = 2000,
    errors: int = 0,
    silent: dict[str, int] | None = None,
) -> dict[str, Any]:
    latency = {
        "p50": p50,
        "p90": p50 * 1.6,
        "p99": p50 * 2.5,
        "p999": p50 * 4,
        "max": p50 * 6,
        "mean": p50 * 1.1,
    }
    op = {
        "count": count,
        "ok": count - errors - sum((silent or {}).values()),
        "errors": {"jsonrpc": errors} if errors else {},
        "silent": silent or {},
        "latency_us": latency,
        "rate": rate,
    }
    return {
        "schema": "mcp-loadtest/run/1",
        "meta": {"scenario_hash": "h", "machine_fingerprint": "m"},
        "transports": {"http": {"ops": {"echo": op}}},
    }


def _side(label: str, docs: list[dict[str, Any]]) -> Side:
    return Side(label, [Run(Path(f"/nonexistent/{label}{i}"), d, f"{label}{i}") for i, d in enumerate(docs)])


def _noisy(rng: random.Random, n: int, scale: float = 1.0) -> list[dict[str, Any]]:
    # Run-to-run noise of a few percent, as between runs on a quiet machine.
    return [
        _doc(5000 * scale * math.exp(rng.gauss(0, 0.05)), rate=100 * math.exp(rng.gauss(0, 0.02)))
        for _ in range(n)
    ]


def test_aa_comparisons_of_synthetic_runs_rarely_call_a_regression() -> None:
    rng = random.Random(42)
    gated = flagged = 0
    for _ in range(60):
        c = compare_sides(_side("A", _noisy(rng, 5)), _side("B", _noisy(rng, 5)), resamples=400)
        rows = [r for r in c.rows if r.metric.gated and r.verdict != NOT_ENOUGH]
        gated += len(rows)
        flagged += sum(r.verdict in (REGRESSED, IMPROVED) for r in rows)
    # The rank test alone would flag ~5% of metrics; the minimum effect of 5% cuts most.
    assert flagged / gated < 0.05, (flagged, gated)


def test_a_twenty_percent_slowdown_is_found_with_its_magnitude() -> None:
    rng = random.Random(3)
    c = compare_sides(_side("A", _noisy(rng, 5)), _side("B", _noisy(rng, 5, scale=1.2)), resamples=1000)
    p50 = next(r for r in c.rows if r.metric.key == "p50")
    assert p50.verdict == REGRESSED
    assert p50.ci is not None
    assert p50.ci[0] < 1.2 < p50.ci[1]
    assert p50.p is not None
    assert p50.p < 0.05
    assert not p50.thin
    throughput = next(r for r in c.rows if r.metric.key == "throughput")
    assert throughput.verdict == UNCHANGED
    assert c.regressed


def test_an_effect_below_the_minimum_is_unchanged() -> None:
    # A consistent 3% shift is significant with 6 runs per side but below the 5% minimum.
    a = [_doc(5000 + i) for i in range(6)]
    b = [_doc(5150 + i) for i in range(6)]
    c = compare_sides(_side("A", a), _side("B", b), resamples=400)
    p50 = next(r for r in c.rows if r.metric.key == "p50")
    assert p50.p is not None
    assert p50.p < 0.05
    assert p50.verdict == UNCHANGED
    c2 = compare_sides(_side("A", a), _side("B", b), min_effect=0.01, resamples=400)
    assert next(r for r in c2.rows if r.metric.key == "p50").verdict == REGRESSED


def test_errors_use_an_exact_test_and_new_silent_failures_are_flagged_whatever_the_p_value() -> None:
    a = [_doc(5000, errors=0) for _ in range(4)]
    b = [_doc(5000, errors=30), _doc(5000, silent={"lost": 1}), _doc(5000), _doc(5000)]
    c = compare_sides(_side("A", a), _side("B", b), resamples=200)
    errors = next(r for r in c.rows if r.metric.key == "error_rate")
    assert errors.verdict == REGRESSED
    assert "Fisher" in errors.method
    silent = next(r for r in c.rows if r.metric.key == "silent")
    assert silent.p is not None
    assert silent.p > 0.05
    assert silent.verdict == REGRESSED  # ...but it is a new kind of silent failure
    assert [str(s) for s in c.new_silent] == ["http/echo: lost x1 in B, none in A"]
    assert c.regressed


def test_too_few_runs_without_interval_logs_is_not_enough_data() -> None:
    c = compare_sides(_side("A", [_doc(5000)]), _side("B", [_doc(9000)]))
    p50 = next(r for r in c.rows if r.metric.key == "p50")
    assert p50.verdict == NOT_ENOUGH
    assert "interval log" in p50.note
    assert not c.regressed


def test_different_scenarios_are_refused_unless_forced() -> None:
    other = _doc(5000)
    other["meta"]["scenario_hash"] = "other"
    with pytest.raises(LoadtestError, match="scenario hashes") as info:
        compare_sides(_side("A", [_doc(5000)]), _side("B", [other]))
    assert info.value.exit_code == 3
    c = compare_sides(_side("A", [_doc(5000)]), _side("B", [other]), force=True)
    assert "scenario hashes" in c.warnings[0]


# -- the report's verdict over many figures (issue 15 item 3) -------------------------------------


def test_welch_matches_reference_values() -> None:
    from loadtest.analysis.compare.stats import benjamini_hochberg, t_quantile, t_two_sided_p, welch

    # scipy.stats.t.sf(2.0, 10) * 2 and t.ppf(0.975, 10)
    assert t_two_sided_p(2.0, 10) == pytest.approx(0.0733880, rel=1e-5)
    assert t_quantile(0.975, 10) == pytest.approx(2.228139, rel=1e-5)
    # scipy.stats.ttest_ind([1, 2, 3], [4, 5, 6.5], equal_var=False): t = 3.4125, p = 0.02915
    test = welch([1, 2, 3], [4, 5, 6.5])
    assert test is not None
    assert test.p == pytest.approx(0.029145, rel=1e-4)
    assert test.df == pytest.approx(3.80594, rel=1e-4)
    assert welch([1.0], [2.0, 3.0]) is None
    # statsmodels.stats.multitest.multipletests([...], method="fdr_bh")[1]
    assert benjamini_hochberg([0.01, 0.04, 0.03, 0.5]) == pytest.approx(
        [0.04, 0.05333, 0.05333, 0.5], rel=1e-3
    )


_OPS = 20  # x 7 gated figures (calls/s, p50, p90, p99, p99.9, error rate, silent) = 140


def _noise_doc(rng: random.Random, ops: int, slow: float = 1.0, slow_ops: int = 0) -> dict[str, Any]:
    """One run with ``ops`` ops, each figure with its own run-to-run noise (independent figures
    are the hardest case for a family's false-alarm rate)."""
    doc = _doc(5000)
    section: dict[str, Any] = {}
    for k in range(ops):
        factor = slow if k < slow_ops else 1.0

        def jitter(sd: float = 0.05) -> float:
            return math.exp(rng.gauss(0, sd))

        op = _doc(5000 * factor * jitter(), rate=100 * jitter(0.02))["transports"]["http"]["ops"]["echo"]
        for key, scale in (("p90", 1.6), ("p99", 2.5), ("p999", 4.0)):
            op["latency_us"][key] = 5000 * scale * factor * jitter()
        section[f"op{k:02d}"] = op
    doc["transports"] = {"http": {"ops": section}}
    return doc


def _report(rng: random.Random, runs: int, ops: int = _OPS, **slow: Any) -> Any:
    a = _side("A", [_noise_doc(rng, ops) for _ in range(runs)])
    b = _side("B", [_noise_doc(rng, ops, **slow) for _ in range(runs)])
    return compare_sides(a, b, resamples=50)


def test_140_figures_of_pure_noise_with_the_default_repeat_give_no_regression() -> None:
    from loadtest.run.matrix import DEFAULT_REPEAT

    c = _report(random.Random(11), DEFAULT_REPEAT)
    assert c.evidence()["gated_figures"] == 140
    # Each figure alone would be called at ~5%: some of the 140 are "candidates"...
    candidates = [r for r in c.rows if r.p is not None and r.p < 0.05 and r.metric.gated]
    assert candidates
    # ...but the report calls none of them, and it says how much evidence it had.
    assert not c.regressed
    assert c.counts()["regressed"] == c.counts()["improved"] == 0
    assert f"evidence: {DEFAULT_REPEAT} vs {DEFAULT_REPEAT} runs, 140 gated figures" in c.headline()
    assert c.headline().startswith("no regression")


def test_the_report_level_false_alarm_rate_stays_near_the_nominal_level() -> None:
    # Property over many seeds: an A/A report flags anything (regressed or improved) in at
    # most ~alpha of reports, not ~alpha of figures (which would be nearly every report).
    from loadtest.run.matrix import DEFAULT_REPEAT

    rng = random.Random(2026)
    reports, alarmed, figures_flagged_alone = 150, 0, 0
    for _ in range(reports):
        c = _report(rng, DEFAULT_REPEAT, ops=6)
        alarmed += bool(c.regressions or c.improvements)
        figures_flagged_alone += any(r.p is not None and r.p < 0.05 and r.metric.gated for r in c.rows)
    assert alarmed / reports <= 0.08, alarmed
    # Without the control, most reports would have had a figure below 0.05 on its own.
    assert figures_flagged_alone / reports > 0.5, figures_flagged_alone


def test_a_true_twenty_percent_slowdown_with_enough_runs_is_regressed() -> None:
    # Every op 20% slower (a slower release), 5 runs a side, among 140 gated figures.
    c = _report(random.Random(5), 5, slow=1.2, slow_ops=_OPS)
    p50 = [r for r in c.rows if r.metric.key == "p50"]
    assert sum(r.verdict == REGRESSED for r in p50) >= _OPS * 3 // 4
    assert c.regressed
    # One op slower among 20 needs more runs to clear a bar set for 140 figures: 10 a side do.
    lone = _report(random.Random(6), 10, slow=1.2, slow_ops=1)
    assert next(r for r in lone.rows if r.op == "op00" and r.metric.key == "p50").verdict == REGRESSED
    assert lone.regressed


def test_a_lone_change_the_family_cannot_confirm_is_inconclusive_with_runs_to_settle_it() -> None:
    # 3 runs a side, one op 12% slower: p < 0.05 alone, not after the family's control.
    rng = random.Random(8)
    found = None
    for _ in range(20):
        c = _report(rng, 3, slow=1.12, slow_ops=1)
        row = next(r for r in c.rows if r.op == "op00" and r.metric.key == "p50")
        if row.verdict == INCONCLUSIVE:
            found = (c, row)
            break
    assert found is not None
    c, row = found
    assert row.p is not None
    assert row.p < 0.05
    assert row.q is not None
    assert row.q >= 0.05
    assert row.runs_needed is not None
    assert row.runs_needed > 3
    assert f"{row.runs_needed} runs a side would settle it" in row.note
    assert not c.regressed
    assert "inconclusive" in c.headline()


def test_single_runs_are_inconclusive_and_exit_0(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from loadtest.cli.main import main

    golden = Path(__file__).parent / "golden" / "compare"
    # One run a side, a real 27% slow-down (B ran with a 1 ms server delay): thin evidence.
    result = CliRunner().invoke(
        main,
        [
            "compare",
            str(golden / "a" / "run-01"),
            str(golden / "b" / "run-01"),
            "--json",
            str(tmp_path / "c.json"),
        ],
    )
    assert result.exit_code == 0, result.output
    report = orjson.loads((tmp_path / "c.json").read_bytes())
    p50 = next(r for r in report["rows"] if r["op"] == "echo" and r["metric"] == "p50")
    assert p50["verdict"] == "inconclusive"
    assert p50["thin"]
    assert p50["runs_needed"] >= 3
    assert report["evidence"]["thin"]
    assert report["evidence"]["runs"] == [1, 1]
    assert report["counts"]["regressed"] == 0
    assert "1 vs 1 run (thin" in report["headline"]


# -- latency of failed calls (issue 15 item 5) ------------------------------------------------------


def test_latency_is_not_compared_when_most_calls_of_a_side_failed() -> None:
    # B answers fast because it fails: 100% errors (a refusal is quick). Its latency must not
    # be called "improved"; the error rate is the regression.
    a = [_doc(108_000, count=400) for _ in range(5)]
    b = [_doc(71_800, count=400, errors=400) for _ in range(5)]
    c = compare_sides(_side("A", a), _side("B", b), resamples=200)
    latency = [r for r in c.rows if r.metric.kind == "latency"]
    assert {r.verdict for r in latency} == {NOT_COMPARABLE}
    assert all("100% of 2000 calls failed on B" in r.note for r in latency)
    assert all("not comparable" in r.note for r in latency)
    assert not c.improvements
    errors = next(r for r in c.rows if r.metric.key == "error_rate")
    assert errors.verdict == REGRESSED
    assert c.counts()[NOT_COMPARABLE] == 4  # p50, p90, p99, p99.9 (max is not gated)
    assert "not comparable" in c.headline()


def test_latency_is_compared_when_only_a_few_calls_failed() -> None:
    a = [_doc(5000, count=400) for _ in range(5)]
    b = [_doc(5000 * 1.3 + i, count=400, errors=40) for i in range(5)]
    c = compare_sides(_side("A", a), _side("B", b), resamples=200)
    p50 = next(r for r in c.rows if r.metric.key == "p50")
    assert p50.verdict == REGRESSED
