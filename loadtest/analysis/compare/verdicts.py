"""A against B, per transport x operation x metric: ratio, interval, p-value and verdict.

The unit of evidence is the run (requests inside one run are not independent):

- **Enough runs** (both sides large enough that a rank test can reach the significance level,
  e.g. 4 against 4, 3 against 5): the p-value is a Mann-Whitney U test over the per-run values
  and the 95% interval of the ratio (B over A, of the medians over runs) a bootstrap over runs.
- **Fewer runs** (down to one per side): a bootstrap over each run's per-second intervals
  (circular blocks of seconds, inside a resampling of the runs when there are several) gives
  both the interval and the p-value, and the row is marked *thin*: it cannot see how much a
  whole run varies from the next.
- **Errors and silent failures**: Fisher's exact test on the pooled counts.

A verdict needs the p-value below ``alpha``, an interval that excludes 1 and an effect of at
least ``min_effect``; below that nothing is called a regression. A silent-failure kind that B
has and A did not is a regression whatever its p-value.
"""

from __future__ import annotations

import math
import random
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from loadtest.analysis.compare.intervals import percentile_of_buckets
from loadtest.analysis.compare.model import Side, comparability_problems, comparability_warnings
from loadtest.analysis.compare.stats import (
    block_bootstrap,
    bootstrap_runs,
    fisher_exact,
    mann_whitney_u,
    median,
    min_rank_p,
    quantile,
    ratio_ci_katz,
)
from loadtest.core.errors import LoadtestError
from loadtest.scenario.thresholds import UNATTRIBUTED

__all__ = [
    "IMPROVED",
    "METRICS",
    "NOT_ENOUGH",
    "REGRESSED",
    "SCHEMA",
    "UNCHANGED",
    "Comparison",
    "Metric",
    "NewSilent",
    "Row",
    "compare_sides",
]

SCHEMA = "mcp-loadtest/compare/1"
IMPROVED, REGRESSED, UNCHANGED, NOT_ENOUGH = "improved", "regressed", "unchanged", "not enough data"
DEFAULT_MIN_EFFECT = 0.05
DEFAULT_ALPHA = 0.05
RUN_RESAMPLES = 2000
INTERVAL_RESAMPLES = 1000


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    #: "rate" (calls/s, higher is better), "latency" (µs), "fraction" (error rate), "count".
    kind: str
    #: Latency quantile (0..1) for percentiles; None otherwise.
    q: float | None = None
    #: Gated metrics can fail the comparison; ``max`` is one sample, so it is shown, not gated.
    gated: bool = True

    @property
    def higher_is_better(self) -> bool:
        return self.kind == "rate"


METRICS: tuple[Metric, ...] = (
    Metric("throughput", "calls/s", "rate"),
    Metric("p50", "p50", "latency", 0.5),
    Metric("p90", "p90", "latency", 0.9),
    Metric("p99", "p99", "latency", 0.99),
    Metric("p999", "p99.9", "latency", 0.999),
    Metric("max", "max", "latency", 1.0, gated=False),
    # Labels in the thresholds' words: error_rate counts loud failures, silent_failures silent ones.
    Metric("error_rate", "error_rate", "fraction"),
    Metric("silent", "silent_failures", "count"),
)
_CONTINUOUS = tuple(m for m in METRICS if m.kind in ("rate", "latency"))


@dataclass(frozen=True)
class Row:
    """One transport x op x metric."""

    transport: str
    op: str
    metric: Metric
    a: float | None
    b: float | None
    ratio: float | None
    ci: tuple[float, float] | None
    p: float | None
    verdict: str
    method: str
    thin: bool = False
    note: str = ""

    @property
    def key(self) -> str:
        return f"{self.transport}/{self.op} {self.metric.label}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "transport": self.transport,
            "op": self.op,
            "metric": self.metric.key,
            "a": _num(self.a),
            "b": _num(self.b),
            "ratio": _num(self.ratio),
            "ci95": [_num(self.ci[0]), _num(self.ci[1])] if self.ci else None,
            "p": _num(self.p),
            "verdict": self.verdict,
            "gated": self.metric.gated,
            "thin": self.thin,
            "method": self.method,
            "note": self.note,
        }


@dataclass(frozen=True)
class NewSilent:
    """A silent-failure kind that B had on an op and A did not."""

    transport: str
    op: str
    kind: str
    count: int
    examples: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.transport}/{self.op}: {self.kind} x{self.count} in B, none in A"

    def to_dict(self) -> dict[str, Any]:
        return {
            "transport": self.transport,
            "op": self.op,
            "kind": self.kind,
            "count": self.count,
            "examples": list(self.examples),
        }


@dataclass
class Comparison:
    """Everything a report shows; built by :func:`compare_sides`."""

    a: Side
    b: Side
    rows: list[Row]
    new_silent: list[NewSilent]
    check_diffs: list[dict[str, Any]]
    checks_note: str
    warnings: list[str]
    min_effect: float
    alpha: float
    forced: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[Row]:
        return [row for row in self.rows if row.verdict == REGRESSED and row.metric.gated]

    @property
    def improvements(self) -> list[Row]:
        return [row for row in self.rows if row.verdict == IMPROVED and row.metric.gated]

    @property
    def regressed(self) -> bool:
        """True when B regressed on a gated metric or has new silent failures (exit code 1)."""
        return bool(self.regressions or self.new_silent)

    def counts(self) -> dict[str, int]:
        out = {IMPROVED: 0, REGRESSED: 0, UNCHANGED: 0, NOT_ENOUGH: 0}
        for row in self.rows:
            if row.metric.gated:
                out[row.verdict] += 1
        return out

    def headline(self) -> str:
        """One line: the overall verdict."""
        c = self.counts()
        parts = []
        if self.new_silent:
            parts.append(f"NEW SILENT FAILURES ({len(self.new_silent)})")
        parts.append(
            f"{c[REGRESSED]} regressed, {c[IMPROVED]} improved, {c[UNCHANGED]} unchanged, {c[NOT_ENOUGH]} not enough data"
        )
        return ("REGRESSION: " if self.regressed else "no regression: ") + "; ".join(parts)

    def side_dict(self, side: Side) -> dict[str, Any]:
        first = side.runs[0]
        return {
            "label": side.label,
            "runs": [run.name for run in side.runs],
            "skipped": list(side.skipped),
            "sdk": side.sdks,
            **({"client": side.clients} if side.clients else {}),
            "scenario": (first.document.get("scenario") or {}).get("name"),
            "scenario_hash": first.meta("scenario_hash"),
            "machine_fingerprint": first.meta("machine_fingerprint"),
        }

    def to_dict(self) -> dict[str, Any]:
        """The JSON report (schema ``mcp-loadtest/compare/1``)."""
        return {
            "schema": SCHEMA,
            "verdict": "regressed" if self.regressed else "ok",
            "headline": self.headline(),
            "settings": {"min_effect": _num(self.min_effect), "alpha": _num(self.alpha), "confidence": 0.95},
            "a": self.side_dict(self.a),
            "b": self.side_dict(self.b),
            "counts": self.counts(),
            "new_silent_failures": [item.to_dict() for item in self.new_silent],
            "forced": list(self.forced),
            "warnings": list(self.warnings),
            "rows": [row.to_dict() for row in self.rows],
            "checks": {"note": self.checks_note, "differences": list(self.check_diffs)},
        }


def _num(value: float | None) -> float | None:
    """Six significant digits: enough for a report, and stable across platforms."""
    if value is None or not math.isfinite(value):
        return None
    return float(f"{value:.6g}")


def _ops(sides: Sequence[Side]) -> list[tuple[str, str]]:
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


def _continuous_rows(
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
    thin = min_rank_p(len(stats_a), len(stats_b)) >= alpha
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
        if not xa or not xb:
            note = "no answered calls on " + ("A" if not xa else "B")
        elif few:
            note = f"{metric.label} needs >= {need} calls per run"
        elif thin and metric.key == "max":
            note = "a maximum has no interval from so few runs"
        if note:
            rows.append(Row(transport, op, metric, va, vb, ratio, None, None, NOT_ENOUGH, "", thin, note))
            continue
        ready.append((metric, xa, xb))
        rows.append(Row(transport, op, metric, va, vb, ratio, None, None, NOT_ENOUGH, "", thin))
    if not ready:
        return rows
    results: dict[str, tuple[tuple[float, float] | None, float | None, str, str]] = {}
    if not thin:
        rng = random.Random(seed)
        for metric, xa, xb in ready:
            if min_rank_p(len(xa), len(xb)) >= alpha:
                results[metric.key] = (None, None, "", "too few runs with a value")
                continue
            _, p_value = mann_whitney_u(xa, xb)
            (ratios,) = bootstrap_runs(
                [[x] for x in xa], [[x] for x in xb], median, rng=rng, resamples=resamples
            )
            method = f"Mann-Whitney U + bootstrap over runs ({len(xa)} vs {len(xb)})"
            results[metric.key] = (_ci(ratios), p_value, method, "")
    else:
        runs_a = [a.runs[i].intervals(transport).get(_tag(s, op), []) for i, s in stats_a]
        runs_b = [b.runs[i].intervals(transport).get(_tag(s, op), []) for i, s in stats_b]
        if not any(runs_a) or not any(runs_b):
            note = "too few runs for a rank test and no interval log (.hlog) to bootstrap"
            for metric, _, _ in ready:
                results[metric.key] = (None, None, "", note)
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
                results[metric.key] = (_ci(ratios), _bootstrap_p(ratios) if ratios else None, method, "")
    out = []
    for row in rows:
        if row.metric.key in results and not row.note:
            ci, p, method, note = results[row.metric.key]
            verdict = _verdict(row.metric, row.ratio, ci, p, min_effect, alpha)
            out.append(
                Row(transport, op, row.metric, row.a, row.b, row.ratio, ci, p, verdict, method, thin, note)
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


def _count_rows(
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
        rows.append(Row(transport, op, metric, a_value, b_value, ratio, ci, p, verdict, method))
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
            Row(
                r.transport,
                r.op,
                r.metric,
                r.a,
                r.b,
                r.ratio,
                r.ci,
                r.p,
                REGRESSED,
                r.method,
                r.thin,
                "new silent-failure kind in B",
            )
            if r.metric.kind == "count"
            else r
            for r in rows
        ]
    return rows, new


def _warnings(a: Side, b: Side) -> list[str]:
    out: list[str] = []
    clients = [sorted({run.client or "?" for run in side.runs}) for side in (a, b)]
    if clients[0] != clients[1] and "?" not in clients[0] + clients[1]:
        out.append(
            f"the calls were made by different clients (A: {', '.join(clients[0])}; B: {', '.join(clients[1])}): "
            "the differences include the clients' own"
        )
    for label, side in (("A", a), ("B", b)):
        out.extend(f"{label}: skipped {item}" for item in side.skipped)
        saturated: dict[str, int] = {}
        for run in side.runs:
            for transport, section in run.transports.items():
                if (section.get("generator") or {}).get("saturated"):
                    saturated[transport] = saturated.get(transport, 0) + 1
        out.extend(
            f"{label}: on {transport} the load generator may have been the bottleneck in {n} of {len(side.runs)} runs "
            "(latencies include its own delays)"
            for transport, n in saturated.items()
        )
    return out


def _checks(a: Side, b: Side) -> tuple[list[dict[str, Any]], str]:
    ca, cb = a.checks, b.checks
    if ca is None and cb is None:
        return [], "no conformance checks in either side"
    if ca is None or cb is None:
        return [], f"conformance checks only in {'B' if ca is None else 'A'}; nothing to diff"
    from loadtest.conformance import diff_checks

    diffs = [diff.to_dict() for diff in diff_checks(ca, cb)]
    return diffs, f"{len(diffs)} of {len({str(c.get('id')) for c in [*ca, *cb]})} checks differ"


def compare_sides(
    a: Side,
    b: Side,
    *,
    min_effect: float = DEFAULT_MIN_EFFECT,
    alpha: float = DEFAULT_ALPHA,
    force: bool = False,
    resamples: int = RUN_RESAMPLES,
) -> Comparison:
    """Compare side A (before) with side B (after).

    Raises :class:`LoadtestError` (exit 3) when the runs are not comparable (different workloads
    or machines, naming the keys), unless ``force``: then the reasons become warnings.
    """
    problems = comparability_problems(a, b)
    if problems and not force:
        raise LoadtestError(
            "refusing to compare: " + "; ".join(problems) + " (use --force to compare anyway)"
        )
    rows: list[Row] = []
    new_silent: list[NewSilent] = []
    for transport, op in _ops([a, b]):
        rows.extend(_continuous_rows(a, b, transport, op, min_effect, alpha, resamples))
        count_rows, new = _count_rows(a, b, transport, op, min_effect, alpha)
        rows.extend(count_rows)
        new_silent.extend(new)
    diffs, note = _checks(a, b)
    warnings = comparability_warnings(a, b) + _warnings(a, b)
    if problems:
        warnings.insert(0, "compared with --force despite " + "; ".join(problems))
    return Comparison(a, b, rows, new_silent, diffs, note, warnings, min_effect, alpha, forced=problems)
