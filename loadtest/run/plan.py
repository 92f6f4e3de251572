"""The load plan: what a transport's run should do and when, free of I/O.

Everything here is computed from the scenario's :class:`~loadtest.scenario.model.Workload`
and plain nanosecond instants, so it can be checked on a fake clock: how many sessions are
planned, how many should be sending at a given moment, when open-model calls are due, when
the measured window starts and ends, and whether one more call may go out.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from loadtest.run.workload import RateStage, arrivals, rate_stages
from loadtest.scenario import Stage, Workload


@dataclass(frozen=True, slots=True)
class LoadPlan:
    """One transport's workload, as the engine reads it. Build it with :meth:`of`."""

    model: Literal["closed", "open"]
    #: Sessions of the open model, and of the closed model without stages.
    sessions: int
    #: The most sessions open at once: every one of them is opened before measuring starts.
    max_sessions: int
    warmup_s: float
    #: The measured part's length (None: until the request limit, or an interrupt).
    planned_s: float | None
    #: Measured calls to make (0: no limit).
    request_limit: int
    stages: tuple[Stage, ...]
    rate: float | None

    @classmethod
    def of(cls, workload: Workload) -> LoadPlan:
        """The plan of ``workload`` (its own ``max_sessions`` and ``total_duration``)."""
        return cls(
            model=workload.model,
            sessions=workload.sessions,
            max_sessions=workload.max_sessions,
            warmup_s=workload.warmup,
            planned_s=workload.total_duration or None,
            request_limit=workload.requests or 0,
            stages=workload.stages,
            rate=workload.rate,
        )

    def sessions_at(self, since_measure_s: float) -> int:
        """Closed model: how many sessions should be sending ``since_measure_s`` after the
        measured window began (negative: during warm-up, which runs the first stage)."""
        if not self.stages:
            return self.sessions
        t = max(0.0, since_measure_s)
        for stage in self.stages:
            if t < stage.duration:
                return self._stage_sessions(stage)
            t -= stage.duration
        return self._stage_sessions(self.stages[-1])

    def _stage_sessions(self, stage: Stage) -> int:
        # A stage of 0 sessions is idle (and a worker's share of a small stage may be 0).
        return int(stage.sessions) if stage.sessions is not None else self.sessions

    def rate_stages(self) -> list[RateStage]:
        """Open model: the rate over time from the start of warm-up (warm-up at the first rate)."""
        if self.stages:
            stages = [(stage.duration, stage.rate or 0.0) for stage in self.stages]
        else:
            stages = [(self.planned_s or math.inf, self.rate or 0.0)]
        warmup = [(self.warmup_s, stages[0][1])] if self.warmup_s else []
        return rate_stages(warmup + stages)

    def arrivals(self, index: int = 0, count: int = 1) -> Iterator[float]:
        """Open model: intended send times, seconds from the start of warm-up.

        Worker ``index`` of ``count`` takes arrivals ``index, index+count, ...``: together the
        workers send exactly the one schedule.
        """
        schedule: Iterator[float] = arrivals(self.rate_stages())
        if count > 1:
            schedule = itertools.islice(schedule, index, None, count)
        return schedule


@dataclass(frozen=True, slots=True)
class Window:
    """When a transport's warm-up starts (``t0_ns``), its measurement starts and ends."""

    t0_ns: int
    measure_start_ns: int
    #: The planned end of measurement (None: no planned duration).
    end_ns: int | None

    @classmethod
    def starting(cls, t0_ns: int, plan: LoadPlan) -> Window:
        measure = t0_ns + int(plan.warmup_s * 1e9)
        end = measure + int(plan.planned_s * 1e9) if plan.planned_s is not None else None
        return cls(t0_ns, measure, end)

    def measuring(self, now_ns: int) -> bool:
        return now_ns >= self.measure_start_ns

    def over(self, now_ns: int) -> bool:
        return self.end_ns is not None and now_ns >= self.end_ns


class Budget:
    """Which calls may go out: none after the window's end, at most the request limit.

    ``ticket`` is asked before every call with its intended time; the first refusal for the
    end or the limit marks the budget ``spent`` (the run then stops).
    """

    __slots__ = ("limit", "measured", "spent", "window")

    def __init__(self, window: Window, limit: int) -> None:
        self.window = window
        self.limit = limit
        #: Measured calls let out so far.
        self.measured = 0
        self.spent = False

    def ticket(self, intended_ns: int) -> bool:
        """May a call intended at ``intended_ns`` go out? Warm-up calls always may."""
        if self.spent:
            return False
        if intended_ns >= self.window.measure_start_ns:
            if self.window.over(intended_ns):
                self.spent = True
                return False
            if self.limit:
                if self.measured >= self.limit:
                    self.spent = True
                    return False
                self.measured += 1
        return True


__all__ = ["Budget", "LoadPlan", "Window"]
