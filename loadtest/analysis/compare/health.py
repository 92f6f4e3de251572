"""Server health, A against B, per transport: memory, descriptors, threads, crashes, hangs.

Each run of a launched target carries ``server.health`` (see :mod:`loadtest.measure.health`).
Its figures are compared with the same rules of evidence as latency:

- **Figures** (RSS per 1000 sessions, RSS slope, descriptors per 1000 sessions, peak threads):
  one value per run, and only from runs that had enough data for it (the health section says
  which; a run without enough is left out, never read as zero). They are compared as a
  difference B - A (A may be near zero, so a ratio would mean nothing): with at least
  :data:`~loadtest.analysis.compare.rows.MIN_RUNS` runs a side, Welch's t over the per-run
  values; a candidate needs p < alpha, an interval that excludes 0 and a difference of at
  least the figure's absolute minimum (and ``min_effect`` of A). The p-values join the
  report's family (Benjamini-Hochberg) with the latency figures. With fewer runs, a side whose
  every run said ``growing`` against one whose every run said ``stable`` is a thin candidate:
  inconclusive, never a verdict.
- **Crashes and hangs**: a kind of event B had and A never had is a regression, as a new
  silent-failure kind is: a fact about B, not an estimate. Otherwise Fisher's exact test on the
  runs with the event. Restarts follow crashes and hangs: shown, not gated.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from loadtest.analysis.compare.model import Side
from loadtest.analysis.compare.rows import (
    IMPROVED,
    MIN_RUNS,
    NOT_ENOUGH,
    REGRESSED,
    UNCHANGED,
    Metric,
    Row,
)
from loadtest.analysis.compare.stats import fisher_exact, median, welch

__all__ = ["HEALTH_METRICS", "HEALTH_OP", "health_rows"]

#: The op name health rows carry (they are about the server, not one operation); the
#: parentheses keep it apart from any op a scenario can name.
HEALTH_OP = "(server)"

_RSS_1K = Metric("rss_per_1k_sessions", "RSS per 1k sessions", "health", unit="MB", absolute_min=1.0)
_SLOPE = Metric("rss_slope", "RSS slope", "health", unit="MB/h", absolute_min=10.0)
_FDS_1K = Metric("fds_per_1k_sessions", "descriptors per 1k sessions", "health", unit="fds", absolute_min=5.0)
_THREADS = Metric("threads_peak", "peak threads", "health", unit="threads", absolute_min=2.0)
_CRASHES = Metric("crashes", "crashes", "events")
_HANGS = Metric("hangs", "hangs", "events")
_RESTARTS = Metric("restarts", "restarts", "events", gated=False)

HEALTH_METRICS: tuple[Metric, ...] = (_RSS_1K, _SLOPE, _FDS_1K, _THREADS, _CRASHES, _HANGS, _RESTARTS)


def _health(run_transports: Mapping[str, Any], transport: str) -> Mapping[str, Any] | None:
    server = (run_transports.get(transport) or {}).get("server")
    health = server.get("health") if isinstance(server, Mapping) else None
    return health if isinstance(health, Mapping) and health else None


def _enough(health: Mapping[str, Any], figure: str) -> bool:
    # Runs from before the evidence section: their figure is there only when it was computed.
    evidence = (health.get("evidence") or {}).get(figure)
    return True if not isinstance(evidence, Mapping) else bool(evidence.get("enough_data"))


def _figure(metric: Metric) -> Callable[[Mapping[str, Any]], float | None]:
    def rss_1k(h: Mapping[str, Any]) -> float | None:
        value = h.get("rss_per_1k_sessions_mb")
        return float(value) if value is not None and _enough(h, "rss_per_1k_sessions") else None

    def slope(h: Mapping[str, Any]) -> float | None:
        value = h.get("rss_slope_mb_per_h")
        return float(value) if value is not None and _enough(h, "rss_slope") else None

    def fds_1k(h: Mapping[str, Any]) -> float | None:
        value = (h.get("fds") or {}).get("per_1k_sessions")
        return float(value) if value is not None and _enough(h, "rss_per_1k_sessions") else None

    def threads(h: Mapping[str, Any]) -> float | None:
        value = (h.get("threads") or {}).get("peak")
        return float(value) if value is not None else None

    return {
        "rss_per_1k_sessions": rss_1k,
        "rss_slope": slope,
        "fds_per_1k_sessions": fds_1k,
        "threads_peak": threads,
    }[metric.key]


def _transports(sides: Sequence[Side]) -> list[str]:
    seen: dict[str, None] = {}
    for side in sides:
        for run in side.runs:
            for transport in run.transports:
                if _health(run.transports, transport) is not None:
                    seen[transport] = None
    return list(seen)


def _verdicts(healths: Sequence[Mapping[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for h in healths:
        counts[str(h.get("verdict", "unknown"))] = counts.get(str(h.get("verdict", "unknown")), 0) + 1
    return ", ".join(f"{verdict} in {n} of {len(healths)}" for verdict, n in sorted(counts.items()))


def _figure_row(
    transport: str,
    metric: Metric,
    ha: Sequence[Mapping[str, Any]],
    hb: Sequence[Mapping[str, Any]],
    min_effect: float,
    alpha: float,
) -> Row:
    read = _figure(metric)
    xa = [v for h in ha if (v := read(h)) is not None]
    xb = [v for h in hb if (v := read(h)) is not None]
    runs = (len(xa), len(xb))
    va = median(xa) if xa else None
    vb = median(xb) if xb else None
    thin = min(runs) < MIN_RUNS
    base = Row(transport, HEALTH_OP, metric, va, vb, None, None, None, NOT_ENOUGH, "", thin, runs=runs)
    if not xa or not xb:
        missing = [label for label, x in (("A", xa), ("B", xb)) if not x]
        return _with(
            base,
            note=f"no run with enough data for it on {' and '.join(missing)} (see server.health.evidence)",
        )
    va, vb = median(xa), median(xb)
    diff = vb - va
    big_enough = abs(diff) >= max(metric.absolute_min, min_effect * abs(va)) - 1e-12
    worse = REGRESSED if diff > 0 else IMPROVED
    if thin:
        # One run's own health verdict is evidence within that run, not across runs: at most a
        # thin candidate (inconclusive), when the per-run verdicts disagree throughout.
        leak_b = all(h.get("verdict") == "growing" for h in hb) and all(
            h.get("verdict") == "stable" for h in ha
        )
        leak_a = all(h.get("verdict") == "growing" for h in ha) and all(
            h.get("verdict") == "stable" for h in hb
        )
        memory = metric.key in ("rss_per_1k_sessions", "rss_slope")
        candidate = memory and big_enough and ((leak_b and diff > 0) or (leak_a and diff < 0))
        note = f"A: {_verdicts(ha)} runs; B: {_verdicts(hb)} runs" if memory else ""
        return _with(
            base,
            diff=diff,
            verdict=worse if candidate else UNCHANGED,
            method=f"per-run server health ({runs[0]} vs {runs[1]} runs; thin evidence)",
            note=note,
        )
    test = welch(xa, xb)
    assert test is not None
    lo, hi = test.interval()
    verdict = UNCHANGED
    if test.p < alpha and not lo <= 0.0 <= hi and big_enough:
        verdict = worse
    return _with(
        base,
        diff=test.diff,
        ci=(lo, hi),
        p=test.p,
        verdict=verdict,
        method=f"Welch t on per-run values ({runs[0]} vs {runs[1]} runs)",
    )


def _event_row(
    transport: str,
    metric: Metric,
    ha: Sequence[Mapping[str, Any]],
    hb: Sequence[Mapping[str, Any]],
    alpha: float,
) -> Row:
    na = [int(h.get(metric.key, 0) or 0) for h in ha]
    nb = [int(h.get(metric.key, 0) or 0) for h in hb]
    runs = (len(na), len(nb))
    a, b = float(sum(na)), float(sum(nb))
    base = Row(transport, HEALTH_OP, metric, a, b, None, None, None, UNCHANGED, "", runs=runs, diff=b - a)
    if not metric.gated:
        return base
    if a == 0 and b > 0:
        return _with(
            base,
            verdict=REGRESSED,
            fact=True,
            method="a kind of event B had and A never had",
            note=f"{metric.label} in {sum(1 for n in nb if n)} of {len(nb)} runs of B, none in A",
        )
    # Runs with the event, A against B: the run is the unit (one bad run crashes often).
    ka, kb = sum(1 for n in na if n), sum(1 for n in nb if n)
    p = fisher_exact(ka, len(na) - ka, kb, len(nb) - kb)
    verdict = UNCHANGED
    if p < alpha and ka != kb:
        verdict = REGRESSED if kb / len(nb) > ka / len(na) else IMPROVED
    return _with(
        base,
        p=p,
        verdict=verdict,
        method=f"Fisher exact on runs with {metric.label} ({ka}/{len(na)} vs {kb}/{len(nb)})",
    )


def _with(row: Row, **changes: Any) -> Row:
    return replace(row, **changes)


def health_rows(a: Side, b: Side, *, min_effect: float, alpha: float) -> list[Row]:
    """Health rows per transport where both sides watched a launched server (else none)."""
    rows: list[Row] = []
    for transport in _transports([a, b]):
        ha = [h for run in a.runs if (h := _health(run.transports, transport)) is not None]
        hb = [h for run in b.runs if (h := _health(run.transports, transport)) is not None]
        if not ha or not hb:
            continue
        for metric in HEALTH_METRICS:
            if metric.kind == "events":
                rows.append(_event_row(transport, metric, ha, hb, alpha))
            else:
                rows.append(_figure_row(transport, metric, ha, hb, min_effect, alpha))
    return rows
