"""When calls are due: the arrival schedule of the open model, and the op mix.

Kept free of I/O so it can be checked on a fake clock: "300 calls per hour" must schedule as
exactly as "2,000 per second".
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RateStage:
    """``duration_s`` seconds ending at ``rate`` calls/s, ramping linearly from ``start_rate``."""

    duration_s: float
    start_rate: float
    rate: float


def rate_stages(stages: Sequence[tuple[float, float]]) -> list[RateStage]:
    """k6-style stages ``(duration_s, target_rate)``: each ramps from the previous target.

    The first stage holds its own rate (a load test that starts from 0/s wastes its first
    stage on nothing); give a short first stage with a low rate to ramp from there.
    """
    out: list[RateStage] = []
    previous = stages[0][1] if stages else 0.0
    for duration, rate in stages:
        out.append(RateStage(duration, previous, rate))
        previous = rate
    return out


def arrivals(stages: Sequence[RateStage]) -> Iterator[float]:
    """Intended send times (seconds from the start) for a piecewise-linear rate.

    Arrival k (from 0) is placed where the integral of the rate reaches k, solved exactly per
    stage, so the count over any stretch equals its area whatever the rate: constant spacing,
    not Poisson, as in wrk2 and k6's arrival-rate executors.
    """
    start = 0.0
    area_before = 0.0
    k = 0
    for stage in stages:
        r0, r1, d = stage.start_rate, stage.rate, stage.duration_s
        area = (r0 + r1) / 2 * d
        if area > 0:
            while k < area_before + area - 1e-6:
                yield start + _time_for_area(r0, r1, d, k - area_before)
                k += 1
        area_before += area
        start += d


def _time_for_area(r0: float, r1: float, d: float, area: float) -> float:
    # Solve r0*t + (r1-r0)/(2d)*t^2 = area for t in [0, d].
    slope = (r1 - r0) / d if d > 0 else 0.0
    if abs(slope) < 1e-15:
        return area / r0
    disc = r0 * r0 + 2 * slope * area
    root: float = math.sqrt(max(disc, 0.0))
    return (-r0 + root) / slope


class OpPicker:
    """The op mix, as a smooth weighted round robin: deterministic and exact in any window.

    A random weighted choice keeps the mix only on average: in a 50-call run of the default
    scenario an op of weight 1 in 16 got no call at all about one run in twenty, and a gate
    then failed for "no data" by chance. Here every op gets its share of any N consecutive
    picks to within two calls (the interleaving nginx uses for weighted upstreams), so a short
    run measures every op it can, and runs are repeatable. ``seed`` starts the round at another
    phase (worker processes each take their own).
    """

    __slots__ = ("_current", "_total", "_weights")

    def __init__(self, weights: Sequence[float], seed: int = 0) -> None:
        self._weights = [float(w) for w in weights]
        self._total = sum(self._weights)
        self._current = [0.0] * len(self._weights)
        for _ in range(seed):
            self.pick()

    def pick(self) -> int:
        current = self._current
        best = 0
        for index, weight in enumerate(self._weights):
            current[index] += weight
            if current[index] > current[best]:
                best = index
        current[best] -= self._total
        return best
