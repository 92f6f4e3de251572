"""The figures of one transport x op, A against B, each with its own test (before the family).

- :func:`continuous_rows`: calls/s and latency percentiles. With at least
  :data:`~loadtest.analysis.compare.rows.MIN_RUNS` runs a side, Welch's t on the logarithms of
  the per-run values (A and B: geometric means over runs); with fewer, a block bootstrap over
  per-second intervals (*thin*). Latency of a side whose calls mostly failed is not comparable.
- :func:`count_rows`: error rate and silent failures, Fisher's exact test on pooled counts, and
  the silent-failure kinds B has that A never had.

Each row carries its own candidate verdict; :mod:`~loadtest.analysis.compare.verdicts` then
settles them over the report's family.
"""

from __future__ import annotations

import math
import random
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from loadtest.analysis.compare.intervals import percentile_of_buckets
from loadtest.analysis.compare.model import Side
from loadtest.analysis.compare.rows import (
    IMPROVED,
    METRICS,
    MIN_RUNS,
    MOSTLY_FAILED,
    NOT_COMPARABLE,
    NOT_ENOUGH,
    REGRESSED,
    UNCHANGED,
    Metric,
    NewSilent,
    Row,
)
from loadtest.analysis.compare.stats import (
    block_bootstrap,
    fisher_exact,
    median,
    quantile,
    ratio_ci_katz,
    welch,
)
from loadtest.scenario.thresholds import UNATTRIBUTED

__all__ = ["NEW_SILENT_NOTE", "continuous_rows", "count_rows", "ops"]

NEW_SILENT_NOTE = "new silent-failure kind in B"
_CONTINUOUS = tuple(m for m in METRICS if m.kind in ("rate", "latency"))


def ops(sides: Sequence[Side]) -> list[tuple[str, str]]:
    keys: dict[tuple[str, str], None] = {}
    for side in sides:
        for run in side.runs:
            for transport, section in run.transports.items():
                for op in section.get("ops") or {}:
                    keys[(transport, op)] = None
    return list(keys)


def _op_stats(side: Side, transport: str, op: str) -> list[tuple[int, Mapping[str, Any]]]:
    out = []
    for index, run in enumerate(side.runs):
        stats = ((run.transports.get(transport) or {}).get("ops") or {}).get(op)
        if stats is not None:
            out.append((index, stats))
    return out


def _value(stats: Mapping[str, Any], metric: Metric) -> float | None:
    if metric.kind == "rate":
        rate = stats.get("rate")
        return float(rate) if rate is not None else None
    answered = int(stats.get("count", 0)) - int((stats.get("silent") or {}).get("lost", 0))
    if answered <= 0:
        return None
    value = (stats.get("latency_us") or {}).get(metric.key)
    return float(value) if value is not None else None


def _min_calls(metric: Metric) -> int:
    """Calls a run needs before a percentile means anything: p99 needs 100, p99.9 1000."""
    if metric.q is None or metric.q >= 1.0:
        return 1
    return math.ceil(1 / (1 - metric.q) - 1e-9)


def _verdict(
    metric: Metric,
    ratio: float | None,
    ci: tuple[float, float] | None,
    p: float | None,
    min_effect: float,
    alpha: float,
) -> str:
    """The figure's own verdict, before the report's family is taken into account."""
    if ratio is None or ci is None or p is None:
        return NOT_ENOUGH
    if p >= alpha or ci[0] <= 1.0 <= ci[1]:
        return UNCHANGED
    effect = ratio - 1.0
    if abs(effect) < min_effect - 1e-12:
        return UNCHANGED
    worse = effect < 0 if metric.higher_is_better else effect > 0
    return REGRESSED if worse else IMPROVED


def _ci(sorted_ratios: Sequence[float]) -> tuple[float, float] | None:
    if len(sorted_ratios) < 20:
        return None
    return quantile(sorted_ratios, 0.025), quantile(sorted_ratios, 0.975)


def _bootstrap_p(ratios: Sequence[float]) -> float:
    """Two-sided p-value of 'ratio = 1' from bootstrap ratios (the interval inverted)."""
    n = len(ratios)
    below = sum(1 for r in ratios if r <= 1.0)
    above = sum(1 for r in ratios if r >= 1.0)
    return min(1.0, 2 * (min(below, above) + 1) / (n + 1))


def _summarise(metrics: Sequence[Metric]) -> Callable[[dict[int, int], int, float], list[float]]:
    quantiles = [m.q for m in metrics if m.kind == "latency"]

    def summarise(merged: dict[int, int], count: int, seconds: float) -> list[float]:
        values = iter(percentile_of_buckets(merged, count, [q for q in quantiles if q is not None]))
        rate = count / seconds if seconds > 0 else math.nan
        return [rate if m.kind == "rate" else next(values) for m in metrics]

    return summarise


def _failed_share(stats: Sequence[Mapping[str, Any]]) -> tuple[int, int]:
    """(failed, calls) pooled over a side's runs: loud errors and silent failures alike."""
    calls = sum(int(s.get("count", 0)) for s in stats)
    failed = sum(
        sum(int(n) for n in (s.get("errors") or {}).values())
        + sum(int(n) for n in (s.get("silent") or {}).values())
        for s in stats
    )
    return failed, calls


def _gmean(values: Sequence[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def continuous_rows(
    a: Side,
    b: Side,
    transport: str,
    op: str,
    min_effect: float,
    alpha: float,
    resamples: int,
) -> list[Row]:
    stats_a, stats_b = _op_stats(a, transport, op), _op_stats(b, transport, op)
    seed = zlib.crc32(f"{transport}/{op}".encode())
    runs = (len(stats_a), len(stats_b))
    thin = min(runs) < MIN_RUNS
    # Latency of calls that failed is the latency of failing (a refusal is fast, a timeout
    # slow): with most calls of a side failed it says nothing about the service.
    mostly_failed = []
    for label, stats in (("A", stats_a), ("B", stats_b)):
        failed, calls = _failed_share([s for _, s in stats])
        if calls and failed / calls > MOSTLY_FAILED:
            mostly_failed.append(f"{failed / calls:.0%} of {calls} calls failed on {label}")
    rows: list[Row] = []
    ready: list[tuple[Metric, list[float], list[float]]] = []
    for metric in _CONTINUOUS:
        xa = [v for _, s in stats_a if (v := _value(s, metric)) is not None]
        xb = [v for _, s in stats_b if (v := _value(s, metric)) is not None]
        va = median(xa) if xa else None
        vb = median(xb) if xb else None
        ratio = vb / va if va and vb is not None else None
        need = _min_calls(metric)
        few = [
            label
            for label, stats in (("A", stats_a), ("B", stats_b))
            if any(int(s.get("count", 0)) < need for _, s in stats)
        ]
        note = ""
        verdict = NOT_ENOUGH
        if mostly_failed and metric.kind == "latency":
            note = "; ".join(mostly_failed) + ": the latency of failed calls is not comparable"
            verdict = NOT_COMPARABLE
            ratio = None
        elif not xa or not xb:
            note = "no answered calls on " + ("A" if not xa else "B")
        elif few:
            note = f"{metric.label} needs >= {need} calls per run"
        elif thin and metric.key == "max":
            note = "a maximum has no interval from so few runs"
        elif not thin and (min(len(xa), len(xb)) < MIN_RUNS or min(*xa, *xb) <= 0):
            note = f"fewer than {MIN_RUNS} runs a side with a value"
        if note:
            rows.append(
                Row(transport, op, metric, va, vb, ratio, None, None, verdict, "", thin, note, runs=runs)
            )
            continue
        ready.append((metric, xa, xb))
        rows.append(Row(transport, op, metric, va, vb, ratio, None, None, NOT_ENOUGH, "", thin, runs=runs))
    if not ready:
        return rows
    # key -> (ratio, interval, p, method, note)
    results: dict[str, tuple[float | None, tuple[float, float] | None, float | None, str, str]] = {}
    # Geometric means over runs where the test is over runs: A, B and B/A then agree.
    means: dict[str, tuple[float, float]] = {}
    if not thin:
        for metric, xa, xb in ready:
            test = welch([math.log(x) for x in xa], [math.log(x) for x in xb])
            assert test is not None  # MIN_RUNS >= 2 values a side, checked above
            lo, hi = test.interval()
            method = f"Welch t on log per-run values ({len(xa)} vs {len(xb)} runs)"
            results[metric.key] = (math.exp(test.diff), (math.exp(lo), math.exp(hi)), test.p, method, "")
            means[metric.key] = (_gmean(xa), _gmean(xb))
    else:
        runs_a = [a.runs[i].intervals(transport).get(_tag(s, op), []) for i, s in stats_a]
        runs_b = [b.runs[i].intervals(transport).get(_tag(s, op), []) for i, s in stats_b]
        if not any(runs_a) or not any(runs_b):
            note = "too few runs for a test over runs and no interval log (.hlog) to bootstrap"
            for metric, _, _ in ready:
                results[metric.key] = (None, None, None, "", note)
        else:
            metrics = [m for m, _, _ in ready]
            boot_resamples = max(200, resamples // 2)
            rng = random.Random(seed)
            dist_a = block_bootstrap(runs_a, _summarise(metrics), rng=rng, resamples=boot_resamples)
            dist_b = block_bootstrap(runs_b, _summarise(metrics), rng=rng, resamples=boot_resamples)
            method = f"block bootstrap over per-second intervals ({len(stats_a)} vs {len(stats_b)} runs; thin evidence)"
            for m_index, metric in enumerate(metrics):
                ratios = sorted(
                    vb[m_index] / va[m_index]
                    for va, vb in zip(dist_a, dist_b, strict=False)
                    if va[m_index] > 0 and math.isfinite(vb[m_index])
                )
                p_value = _bootstrap_p(ratios) if ratios else None
                results[metric.key] = (None, _ci(ratios), p_value, method, "")
    out = []
    for row in rows:
        if row.metric.key in results and not row.note:
            ratio, ci, p, method, note = results[row.metric.key]
            # With enough runs A and B are the geometric means over runs, the quantities the test
            # and the interval are about (so that B/A is B over A); with fewer, medians.
            va, vb = means.get(row.metric.key, (row.a, row.b))
            ratio = row.ratio if ratio is None else ratio
            verdict = _verdict(row.metric, ratio, ci, p, min_effect, alpha)
            out.append(
                Row(
                    transport,
                    op,
                    row.metric,
                    va,
                    vb,
                    ratio,
                    ci,
                    p,
                    verdict,
                    method,
                    thin,
                    note,
                    runs=runs,
                )
            )
        else:
            out.append(row)
    return out


def _tag(stats: Mapping[str, Any], op: str) -> str:
    return str(stats.get("hlog_tag") or op)


def _calls(side: Side, transport: str, op: str, stats: Sequence[Mapping[str, Any]]) -> int:
    """The calls an op's failure counts are a share of. Failures no request could be blamed
    for (op ``(unattributed)``, no calls of its own) are a share of all the transport's calls,
    as in the thresholds; without this they would be "no calls", never compared."""
    if op != UNATTRIBUTED:
        return sum(int(s.get("count", 0)) for s in stats)
    return sum(
        int(s.get("count", 0))
        for run in side.runs
        for name, s in ((run.transports.get(transport) or {}).get("ops") or {}).items()
        if name != UNATTRIBUTED and isinstance(s, Mapping)
    )


def count_rows(
    a: Side, b: Side, transport: str, op: str, min_effect: float, alpha: float
) -> tuple[list[Row], list[NewSilent]]:
    stats_a = [s for _, s in _op_stats(a, transport, op)]
    stats_b = [s for _, s in _op_stats(b, transport, op)]
    na, nb = _calls(a, transport, op, stats_a), _calls(b, transport, op, stats_b)
    rows: list[Row] = []
    for metric in METRICS:
        if metric.kind not in ("fraction", "count"):
            continue
        field_name = "errors" if metric.kind == "fraction" else "silent"
        xa = sum(sum((s.get(field_name) or {}).values()) for s in stats_a)
        xb = sum(sum((s.get(field_name) or {}).values()) for s in stats_b)
        if na == 0 or nb == 0:
            rows.append(
                Row(
                    transport,
                    op,
                    metric,
                    None,
                    None,
                    None,
                    None,
                    None,
                    NOT_ENOUGH,
                    "",
                    note="no calls on " + ("A" if na == 0 else "B"),
                    runs=(len(stats_a), len(stats_b)),
                )
            )
            continue
        ra, rb = xa / na, xb / nb
        ratio = rb / ra if ra > 0 else (1.0 if rb == 0 else None)
        ci = ratio_ci_katz(xa, na, xb, nb)
        p = fisher_exact(xa, na - xa, xb, nb - xb)
        method = f"Fisher exact on counts ({xa}/{na} vs {xb}/{nb})"
        effect_ok = ra == 0 or abs(rb / ra - 1.0) >= min_effect - 1e-12
        verdict = UNCHANGED
        if p < alpha and effect_ok:
            verdict = REGRESSED if rb > ra else IMPROVED
        a_value: float = ra if metric.kind == "fraction" else float(xa)
        b_value: float = rb if metric.kind == "fraction" else float(xb)
        rows.append(
            Row(
                transport,
                op,
                metric,
                a_value,
                b_value,
                ratio,
                ci,
                p,
                verdict,
                method,
                runs=(len(stats_a), len(stats_b)),
            )
        )
    new: list[NewSilent] = []
    kinds_a: dict[str, int] = {}
    for s in stats_a:
        for kind, n in (s.get("silent") or {}).items():
            kinds_a[kind] = kinds_a.get(kind, 0) + int(n)
    kinds_b: dict[str, int] = {}
    examples: dict[str, list[str]] = {}
    for s in stats_b:
        for kind, n in (s.get("silent") or {}).items():
            kinds_b[kind] = kinds_b.get(kind, 0) + int(n)
        for kind, items in (s.get("silent_examples") or {}).items():
            for item in items:
                detail = item.get("detail", item) if isinstance(item, Mapping) else item
                examples.setdefault(kind, []).append(str(detail))
    for kind in sorted(kinds_b):
        if kinds_b[kind] > 0 and kinds_a.get(kind, 0) == 0:
            new.append(NewSilent(transport, op, kind, kinds_b[kind], tuple(examples.get(kind, [])[:2])))
    if new:
        rows = [
            replace(r, verdict=REGRESSED, note=NEW_SILENT_NOTE, fact=True) if r.metric.kind == "count" else r
            for r in rows
        ]
    return rows, new
