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
from dataclasses import dataclass, field, replace
from typing import Any

from loadtest.analysis.compare.figures import continuous_rows, count_rows, ops
from loadtest.analysis.compare.health import HEALTH_OP, health_rows
from loadtest.analysis.compare.model import Side, comparability_problems, comparability_warnings
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
    NewSilent,
    Row,
    num,
)
from loadtest.analysis.compare.stats import (
    benjamini_hochberg,
    normal_quantile,
)
from loadtest.core.errors import LoadtestError

#: The power the "runs that would settle it" figure plans for.
_PLANNED_POWER = 0.8

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
    for transport, op in ops([a, b]):
        rows.extend(continuous_rows(a, b, transport, op, min_effect, alpha, resamples))
        counted, new = count_rows(a, b, transport, op, min_effect, alpha)
        rows.extend(counted)
        new_silent.extend(new)
    # Server health joins the same family: one report, one bar for every figure it gates.
    rows.extend(health_rows(a, b, min_effect=min_effect, alpha=alpha))
    rows = _settle(rows, alpha)
    diffs, note = _checks(a, b)
    warnings = comparability_warnings(a, b) + _warnings(a, b)
    if problems:
        warnings.insert(0, "compared with --force despite " + "; ".join(problems))
    return Comparison(a, b, rows, new_silent, diffs, note, warnings, min_effect, alpha, forced=problems)
