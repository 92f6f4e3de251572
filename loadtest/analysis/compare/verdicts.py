"""A against B, per transport x operation x metric: ratio, interval, p-value and verdict.

The unit of evidence is the run (requests inside one run are not independent):

- **Enough runs** (at least :data:`MIN_RUNS` per side): Welch's t-test on the logarithms of
  the per-run values gives the p-value and the 95% interval of the ratio B/A (of the geometric
  means over runs). Unlike a rank test, its p-value is not floored by the number of runs, which
  a verdict controlled over a hundred figures needs.
- **Fewer runs** (down to one per side): a bootstrap over each run's per-second intervals
  (circular blocks of seconds, inside a resampling of the runs when there are several) gives
  the interval and a p-value, and the row is marked *thin*: it cannot see how much a whole run
  varies from the next, so it never decides a verdict (at most *inconclusive*).
- **Errors and silent failures**: Fisher's exact test on the pooled counts.

**The report's verdict controls for the number of figures it gates.** A figure is a candidate
when its own p-value is below ``alpha``, its interval excludes 1 and its effect is at least
``min_effect``. The p-values of every gated figure that has one form the family, adjusted by
Benjamini-Hochberg: a candidate is *regressed* or *improved* only when its adjusted p-value
(q) is below ``alpha`` and it rests on enough runs; otherwise it is *inconclusive*, with about
how many runs per side would settle it, and it never fails the exit code. In an A/A comparison
(every figure unchanged) this keeps a false alarm anywhere in the report at most ``alpha``
likely, however many figures it has (bench/compare_calibration.py measures it on real runs).
A silent-failure kind that B has and A did not is a regression whatever its p-value: it is a
fact about B, not an estimate.

Latency of a side whose calls mostly failed (:data:`MOSTLY_FAILED`) measures failures, not
service: those rows are *not comparable*, with the failure share, instead of a verdict.
"""

from __future__ import annotations

import math
import random
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from loadtest.analysis.compare.health import HEALTH_OP, health_rows
from loadtest.analysis.compare.intervals import percentile_of_buckets
from loadtest.analysis.compare.model import Side, comparability_problems
from loadtest.analysis.compare.rows import (
    DEFAULT_ALPHA,
    DEFAULT_MIN_EFFECT,
    IMPROVED,
    INCONCLUSIVE,
    METHOD,
    METRICS,
    MIN_RUNS,
    MOSTLY_FAILED,
    NOT_COMPARABLE,
    NOT_ENOUGH,
    REGRESSED,
    RUN_RESAMPLES,
    SCHEMA,
    UNCHANGED,
    Metric,
    Row,
    num,
)
from loadtest.analysis.compare.stats import (
    benjamini_hochberg,
    block_bootstrap,
    fisher_exact,
    median,
    normal_quantile,
    quantile,
    ratio_ci_katz,
    welch,
)
from loadtest.core.errors import LoadtestError

#: The power the "runs that would settle it" figure plans for.
_PLANNED_POWER = 0.8
_NEW_SILENT_NOTE = "new silent-failure kind in B"
_CONTINUOUS = tuple(m for m in METRICS if m.kind in ("rate", "latency"))

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_MIN_EFFECT",
    "IMPROVED",
    "INCONCLUSIVE",
    "METHOD",
    "METRICS",
    "MIN_RUNS",
    "MOSTLY_FAILED",
    "NOT_COMPARABLE",
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

    @property
    def health_changes(self) -> list[Row]:
        """Server-health figures that changed (decided), worst first: they lead the headline."""
        changed = [
            row
            for row in self.rows
            if row.op == HEALTH_OP and row.metric.gated and row.verdict in (REGRESSED, IMPROVED)
        ]
        return sorted(changed, key=lambda row: row.verdict != REGRESSED)

    @property
    def inconclusive(self) -> list[Row]:
        return [row for row in self.rows if row.verdict == INCONCLUSIVE and row.metric.gated]

    def counts(self) -> dict[str, int]:
        out = {IMPROVED: 0, REGRESSED: 0, INCONCLUSIVE: 0, UNCHANGED: 0, NOT_COMPARABLE: 0, NOT_ENOUGH: 0}
        for row in self.rows:
            if row.metric.gated:
                out[row.verdict] += 1
        return out

    def evidence(self) -> dict[str, Any]:
        """How much the verdict rests on: runs per side, figures in the family, the method."""
        needed = [row.runs_needed for row in self.inconclusive if row.runs_needed]
        return {
            "runs": [len(self.a.runs), len(self.b.runs)],
            "min_runs": MIN_RUNS,
            "thin": min(len(self.a.runs), len(self.b.runs)) < MIN_RUNS,
            "gated_figures": sum(1 for row in self.rows if row.metric.gated and row.q is not None),
            "method": METHOD,
            "runs_to_settle": max(needed) if needed else None,
        }

    def evidence_line(self) -> str:
        """``4 vs 4 runs, 14 gated figures, Benjamini-Hochberg ...``: said next to the verdict."""
        e = self.evidence()
        runs = f"{e['runs'][0]} vs {e['runs'][1]} run{'s' if max(e['runs']) != 1 else ''}"
        if e["thin"]:
            runs += f" (thin: fewer than {MIN_RUNS} a side, no figure can be called)"
        return f"evidence: {runs}, {e['gated_figures']} gated figures, {METHOD} at {self.alpha:g}"

    def headline(self) -> str:
        """One line: the overall verdict, then how much evidence it rests on."""
        c = self.counts()
        parts = []
        if self.health_changes:
            parts.append("SERVER HEALTH " + ", ".join(_health_change(row) for row in self.health_changes))
        if self.new_silent:
            parts.append(f"NEW SILENT FAILURES ({len(self.new_silent)})")
        counts = f"{c[REGRESSED]} regressed, {c[IMPROVED]} improved, {c[INCONCLUSIVE]} inconclusive"
        settle = self.evidence()["runs_to_settle"]
        if c[INCONCLUSIVE] and settle:
            counts += f" (about {settle} runs a side would settle them)"
        counts += f", {c[UNCHANGED]} unchanged"
        if c[NOT_COMPARABLE]:
            counts += f", {c[NOT_COMPARABLE]} not comparable"
        counts += f", {c[NOT_ENOUGH]} not enough data"
        parts.append(counts)
        parts.append(self.evidence_line())
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
            "settings": {
                "min_effect": num(self.min_effect),
                "alpha": num(self.alpha),
                "confidence": 0.95,
                "method": METHOD,
            },
            "evidence": self.evidence(),
            "a": self.side_dict(self.a),
            "b": self.side_dict(self.b),
            "counts": self.counts(),
            "new_silent_failures": [item.to_dict() for item in self.new_silent],
            "forced": list(self.forced),
            "warnings": list(self.warnings),
            "rows": [row.to_dict() for row in self.rows],
            "checks": {"note": self.checks_note, "differences": list(self.check_diffs)},
        }


def _health_change(row: Row) -> str:
    """``http RSS per 1k sessions regressed (+61.9 MB)``."""
    change = f" ({row.diff:+.3g} {row.metric.unit})" if row.diff is not None and row.metric.unit else ""
    if row.metric.kind == "events":
        change = f" ({row.a:g} -> {row.b:g})" if row.a is not None and row.b is not None else ""
    return f"{row.transport} {row.metric.label} {row.verdict}{change}"


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


def _count_rows(
    a: Side, b: Side, transport: str, op: str, min_effect: float, alpha: float
) -> tuple[list[Row], list[NewSilent]]:
    stats_a = [s for _, s in _op_stats(a, transport, op)]
    stats_b = [s for _, s in _op_stats(b, transport, op)]
    na = sum(int(s.get("count", 0)) for s in stats_a)
    nb = sum(int(s.get("count", 0)) for s in stats_b)
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
            replace(r, verdict=REGRESSED, note=_NEW_SILENT_NOTE, fact=True) if r.metric.kind == "count" else r
            for r in rows
        ]
    return rows, new


def _runs_to_settle(row: Row, family: int, alpha: float) -> int:
    """About how many runs a side would make this figure's change clear the report's bar.

    The test statistic grows with the square root of the runs; the bar is the strictest
    Benjamini-Hochberg level (alpha / figures, a lone change) at 80% power. For a thin figure
    the within-run spread stands in for the unseen run-to-run one, so this is a lower bound.
    """
    if row.p is None:
        return MIN_RUNS  # a thin figure with no p-value of its own (one run's health verdict)
    p = max(row.p, 1e-300)
    z_seen = normal_quantile(1 - p / 2)
    z_bar = normal_quantile(1 - alpha / (2 * max(family, 1))) + normal_quantile(_PLANNED_POWER)
    now = max(1, min(row.runs))
    return max(MIN_RUNS, math.ceil(now * (z_bar / max(z_seen, 1e-9)) ** 2))


def _settle(rows: list[Row], alpha: float) -> list[Row]:
    """The report-level verdicts: Benjamini-Hochberg over the gated figures that have a p-value.

    A figure's own candidate verdict stands only when its adjusted p-value is below ``alpha``
    and it is not thin; otherwise it is inconclusive. New silent-failure kinds stand as they are.
    """
    family = [i for i, row in enumerate(rows) if row.metric.gated and row.p is not None]
    adjusted = benjamini_hochberg([p for i in family if (p := rows[i].p) is not None])
    q_of = dict(zip(family, adjusted, strict=True))
    out: list[Row] = []
    for i, row in enumerate(rows):
        q = q_of.get(i)
        candidate = row.verdict in (REGRESSED, IMPROVED) and not row.fact
        if not candidate:
            out.append(replace(row, q=q))
        elif not row.metric.gated:
            out.append(replace(row, verdict=INCONCLUSIVE, q=q))
        elif row.thin or q is None or q >= alpha:
            why = (
                "thin evidence"
                if row.thin
                else f"q = {q:.3g} after {METHOD.split(' over')[0]} over {len(family)} figures"
            )
            needed = _runs_to_settle(row, len(family), alpha)
            bound = "at least " if row.thin else "about "
            note = f"{row.verdict}? {why}; {bound}{needed} runs a side would settle it"
            note += f" ({row.note})" if row.note else ""
            out.append(replace(row, verdict=INCONCLUSIVE, q=q, runs_needed=needed, note=note))
        else:
            out.append(replace(row, q=q))
    return out


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

    Raises :class:`LoadtestError` (exit 3) when the runs are not comparable (different scenario
    hashes or machine fingerprints), unless ``force``: then the reasons become warnings.
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
    # Server health joins the same family: one report, one bar for every figure it gates.
    rows.extend(health_rows(a, b, min_effect=min_effect, alpha=alpha))
    rows = _settle(rows, alpha)
    diffs, note = _checks(a, b)
    warnings = _warnings(a, b)
    if problems:
        warnings.insert(0, "compared with --force despite " + "; ".join(problems))
    return Comparison(a, b, rows, new_silent, diffs, note, warnings, min_effect, alpha, forced=problems)
