"""The statistics of `compare` on known values and synthetic runs (fast, deterministic)."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

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
from loadtest.analysis.compare.verdicts import IMPROVED, NOT_ENOUGH, REGRESSED, UNCHANGED, compare_sides
from loadtest.core.errors import LoadtestError


def test_mann_whitney_exact_matches_reference_values() -> None:
    # As scipy.stats.mannwhitneyu(..., method="exact").
    assert mann_whitney_u([1, 2, 3], [4, 5, 6]) == (0.0, pytest.approx(0.1))
    assert mann_whitney_u([1, 2, 3, 4], [5, 6, 7, 8])[1] == pytest.approx(2 / 70)
    # U = 20 of 25; P(U <= 5) for 5 vs 5 is (1 + 1 + 2 + 3 + 5 + 7) / 252, doubled.
    assert mann_whitney_u([5, 6, 7, 8, 9], [1, 2, 3, 4, 10]) == (20.0, pytest.approx(38 / 252))
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
