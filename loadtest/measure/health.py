"""Is the server's memory still growing after warm-up? Slopes and a verdict from samples.

Pure functions over the sampled rows (no I/O), used at the end of a run and again by
``report`` on the health log of a run that was killed.

* **Warm-up.** Caches fill, modules import, the first sessions allocate: the first
  ``warmup_s`` after each server start (each *segment*: a restarted server, the next stdio
  session's server) are left out.
* **Slopes.** A least-squares line through what remains, pooled within segments (each
  segment's own mean is taken out, so a restart's drop to a fresh process is not read as
  release): RSS per hour, and, where one server holds many sessions, RSS per thousand sessions
  opened. A server that releases what a closed session held reuses that memory for the next
  ones, so its RSS stops following the session count; a leaking one keeps climbing with it.
  Python rarely hands freed memory back to the system, so a drop after an idle period is not
  what tells release apart; the slope is.
* **Enough data.** No figure is given without the data it needs: an hourly slope only from a
  window after warm-up of at least :data:`MIN_SLOPE_WINDOW_S` (15 s of a runtime that is still
  warming its heap extrapolates to thousands of MB/h), a per-1000-sessions figure only from at
  least :data:`MIN_SESSIONS` sessions opened after warm-up (two sessions say nothing about a
  thousand). ``evidence`` says, per figure, what there was and what it needs, so thresholds on
  these figures can say "no data" rather than pass or fail.
* **Verdict.** ``growing`` when the fitted growth (over time, or over sessions opened) exceeds
  a noise floor (:data:`NOISE_FLOOR_BYTES`, or 1% of the RSS) *and* each half grows on its own
  (memory that *keeps* growing, not one step up); ``stable`` when at least one of the two has
  enough data and neither grows; ``unknown`` otherwise, saying how long a run or how many
  sessions would settle it. Open descriptors that keep growing the same way are reported as
  growing too. The reason never contradicts the figures: a stable verdict says whether the
  change stayed within the noise floor or was a step up, not a steady climb.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "GROWING",
    "MIN_POINTS",
    "MIN_SESSIONS",
    "MIN_SLOPE_WINDOW_S",
    "NOISE_FLOOR_BYTES",
    "STABLE",
    "UNKNOWN",
    "Sample",
    "assess",
    "pooled_slope",
]

STABLE, GROWING, UNKNOWN = "stable", "growing", "unknown"
#: Fewest samples after warm-up for a verdict.
MIN_POINTS = 8
#: Fewest sessions opened after warm-up for a per-1000-sessions figure (a tenth of the thousand
#: it is per: the noise floor over fewer would be tens of MB per 1000 sessions).
MIN_SESSIONS = 100
#: Shortest window after warm-up for an hourly slope or a verdict over time: shorter windows of
#: a runtime still growing its heap (Node, the JVM) extrapolate to thousands of MB/h.
MIN_SLOPE_WINDOW_S = 60.0
#: Growth below this is allocator noise, not a trend (RSS moves in pages and arenas).
NOISE_FLOOR_BYTES = 2 * 2**20
#: Descriptors: growth below this is connections coming and going.
FD_NOISE_FLOOR = 16
_MB = 2**20


@dataclass(frozen=True, slots=True)
class Sample:
    """One sample of the target: seconds since the transport began, and what was read."""

    t: float
    rss: int
    fds: int | None
    threads: int | None
    sessions: int | None
    segment: int


def pooled_slope(points: Iterable[tuple[int, float, float]]) -> float | None:
    """Least-squares slope of y on x over ``(group, x, y)`` points, each group's mean removed.

    None when x does not vary within any group.
    """
    groups: dict[int, list[tuple[float, float]]] = {}
    for group, x, y in points:
        groups.setdefault(group, []).append((x, y))
    sxy = sxx = 0.0
    for pts in groups.values():
        if len(pts) < 2:
            continue
        xm = sum(x for x, _ in pts) / len(pts)
        ym = sum(y for _, y in pts) / len(pts)
        sxy += sum((x - xm) * (y - ym) for x, y in pts)
        sxx += sum((x - xm) ** 2 for x, _ in pts)
    return sxy / sxx if sxx > 0 else None


def _span(points: Sequence[tuple[int, float, float]]) -> float:
    """Sum over groups of the x range covered."""
    lo: dict[int, float] = {}
    hi: dict[int, float] = {}
    for group, x, _ in points:
        lo[group] = min(lo.get(group, x), x)
        hi[group] = max(hi.get(group, x), x)
    return sum(hi[g] - lo[g] for g in lo)


@dataclass(frozen=True, slots=True)
class _Trend:
    slope: float | None
    growth: float
    early: float
    late: float

    def keeps_growing(self, floor: float) -> bool:
        # A leak of rate r over span S grows r*S, each half r*S/2; a one-off step up grows
        # only one half, and noise neither by much.
        return self.growth > floor and self.early > floor / 4 and self.late > floor / 4


def _trend(points: Sequence[tuple[int, float, float]]) -> _Trend:
    """Fitted growth over ``points`` (``(group, x, y)``), and over each half of x in turn."""
    slope = pooled_slope(points)
    if slope is None:
        return _Trend(None, 0.0, 0.0, 0.0)
    middle = statistics.median(x for _, x, _ in points)
    halves = [[p for p in points if p[1] <= middle], [p for p in points if p[1] > middle]]
    grown = []
    for half in halves:
        s = pooled_slope(half)
        grown.append((s or 0.0) * _span(half))
    return _Trend(slope, slope * _span(points), grown[0], grown[1])


def _figures(values: Sequence[int | None]) -> dict[str, int | None]:
    known = [v for v in values if v is not None]
    if not known:
        return {"start": None, "end": None, "peak": None}
    return {"start": known[0], "end": known[-1], "peak": max(known)}


def assess(
    samples: Sequence[Sample],
    *,
    warmup_s: float,
    per_session: bool = True,
    until_s: float | None = None,
) -> dict[str, Any]:
    """Slopes, figures and a verdict over ``samples`` (see the module docstring).

    ``until_s`` ends the window (the load stopped then: an idle period follows);
    ``per_session`` is False where one server process never holds more than one session
    (stdio), so memory per session cannot be told from the samples.
    """
    starts: dict[int, float] = {}
    for s in samples:
        starts.setdefault(s.segment, s.t)
    window = [
        s for s in samples if s.t - starts[s.segment] >= warmup_s and (until_s is None or s.t <= until_s)
    ]
    out: dict[str, Any] = {
        "warmup_s": round(warmup_s, 3),
        "samples_in_window": len(window),
        "window_s": round(_span([(s.segment, s.t, 0.0) for s in window]), 3),
        "rss_slope_mb_per_h": None,
        "rss_growth_mb": None,
        "rss_per_1k_sessions_mb": None,
        "sessions_in_window": None,
        "fds": {**_figures([s.fds for s in samples]), "per_1k_sessions": None},
        "threads": _figures([s.threads for s in samples]),
        "verdict": UNKNOWN,
        "reason": "",
        "sessions_released": None,
    }
    window_s = float(out["window_s"])
    with_sessions = [s for s in window if s.sessions is not None] if per_session else []
    opened = int(_span([(s.segment, float(s.sessions or 0), 0.0) for s in with_sessions]))
    if with_sessions:
        out["sessions_in_window"] = opened
    enough_points = len(window) >= MIN_POINTS
    by_time_ok = enough_points and window_s >= MIN_SLOPE_WINDOW_S
    by_session_ok = enough_points and opened >= MIN_SESSIONS
    out["evidence"] = {
        "samples": len(window),
        "needs_samples": MIN_POINTS,
        "rss_slope": {
            "enough_data": by_time_ok,
            "window_s": round(window_s, 3),
            "needs_window_s": MIN_SLOPE_WINDOW_S,
        },
        "rss_per_1k_sessions": {
            "enough_data": by_session_ok,
            "sessions": opened if with_sessions else None,
            "needs_sessions": MIN_SESSIONS if per_session else None,
        },
    }
    if not by_time_ok and not by_session_ok:
        out["reason"] = _to_settle(
            len(window), window_s, warmup_s, opened, per_session and bool(with_sessions)
        )
        return out
    rss_median = statistics.median(s.rss for s in window)
    floor = max(NOISE_FLOOR_BYTES, 0.01 * rss_median)
    reasons: list[str] = []
    calm: list[str] = []
    if by_time_ok:
        by_time = _trend([(s.segment, s.t, float(s.rss)) for s in window])
        if by_time.slope is not None:
            out["rss_slope_mb_per_h"] = round(by_time.slope * 3600 / _MB, 3)
            out["rss_growth_mb"] = round(by_time.growth / _MB, 3)
        if by_time.keeps_growing(floor):
            reasons.append(
                f"RSS grew {by_time.growth / _MB:.1f} MB over {window_s:g}s after warm-up"
                f" ({out['rss_slope_mb_per_h']:+.1f} MB/h), in both halves of that time"
            )
        else:
            calm.append(_calm("RSS", by_time, floor, f"over {window_s:g}s after warm-up"))
    if by_session_ok:
        by_session = _trend([(s.segment, float(s.sessions or 0), float(s.rss)) for s in with_sessions])
        if by_session.slope is not None:
            out["rss_per_1k_sessions_mb"] = round(by_session.slope * 1000 / _MB, 3)
            leaking = by_session.keeps_growing(floor)
            out["sessions_released"] = not leaking
            if leaking:
                reasons.append(
                    f"{out['rss_per_1k_sessions_mb']:.2f} MB per 1000 sessions over {opened} sessions"
                    " after warm-up: what closed sessions held is not reused"
                )
            else:
                calm.append(_calm("RSS", by_session, floor, f"over {opened} sessions after warm-up"))
        fd_points = [
            (s.segment, float(s.sessions or 0), float(s.fds)) for s in with_sessions if s.fds is not None
        ]
        fd_slope = pooled_slope(fd_points)
        if fd_slope is not None:
            out["fds"]["per_1k_sessions"] = round(fd_slope * 1000, 1)
    # Descriptors are counted, not extrapolated: a steady climb over either window is growth.
    fds = _trend([(s.segment, s.t, float(s.fds)) for s in window if s.fds is not None])
    if fds.keeps_growing(FD_NOISE_FLOOR):
        reasons.append(f"open descriptors grew by {fds.growth:.0f} over {window_s:g}s after warm-up")
    if reasons:
        out["verdict"] = GROWING
        out["reason"] = "; ".join(reasons)
    else:
        out["verdict"] = STABLE
        out["reason"] = "; ".join(dict.fromkeys(calm))
    return out


def _calm(what: str, trend: _Trend, floor: float, where: str) -> str:
    """Why a trend is not growth, in words that cannot contradict its figures."""
    grown = trend.growth / _MB
    if trend.growth <= floor:
        return f"{what} changed {grown:+.1f} MB {where}, within the noise floor of {floor / _MB:.1f} MB"
    return (
        f"{what} rose {grown:+.1f} MB {where}, but not in both halves of it (a step up, not a steady climb)"
    )


def _to_settle(samples: int, window_s: float, warmup_s: float, sessions: int, per_session: bool) -> str:
    """Why the verdict is unknown, and what would settle it."""
    if samples < MIN_POINTS:
        return (
            f"{samples} samples after the {warmup_s:g}s warm-up; a verdict needs {MIN_POINTS}"
            " (sample more often with health.sample_every, shorten health.warmup or run longer)"
        )
    have = f"a {window_s:g}s window after the {warmup_s:g}s warm-up"
    ways = [
        f"a window of {MIN_SLOPE_WINDOW_S:g}s after warm-up (a run of at least {warmup_s + MIN_SLOPE_WINDOW_S:g}s)"
    ]
    if per_session:
        have += f" and {sessions} sessions opened in it"
        ways.append(f"{MIN_SESSIONS} sessions opened after warm-up (more load, or workload.churn)")
    return f"{have}: not enough to tell; it would take " + " or ".join(ways)
