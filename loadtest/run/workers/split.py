"""How one transport's workload is shared between generator workers."""

from __future__ import annotations

from dataclasses import replace

from loadtest.core.errors import UsageError
from loadtest.scenario import Scenario

#: More worker processes than this is a typo, not a plan.
MAX_WORKERS = 64


def check_workers(scenario: Scenario, count: int) -> None:
    """Raise :class:`UsageError` unless ``scenario`` can be split over ``count`` workers."""
    if count < 1:
        raise UsageError(f"--workers {count}: must be at least 1")
    if count > MAX_WORKERS:
        raise UsageError(f"--workers {count}: at most {MAX_WORKERS}")
    if count == 1:
        return
    if scenario.target.restart:
        raise UsageError(
            f"--workers {count}: target.restart relaunches a target one process watches; use one worker"
        )
    workload = scenario.workload
    if count > workload.sessions:
        raise UsageError(
            f"--workers {count}: more workers than the {workload.sessions} sessions"
            " (each worker drives at least one session); raise --sessions or lower --workers"
        )
    if workload.requests and count > workload.requests:
        raise UsageError(f"--workers {count}: more workers than the {workload.requests} requests")


def split(total: int, index: int, count: int) -> int:
    """Worker ``index``'s part of ``total`` when ``count`` workers share it as evenly as can be."""
    return total // count + (1 if index < total % count else 0)


def share_scenario(scenario: Scenario, index: int, count: int) -> Scenario:
    """``scenario`` with worker ``index``'s share of the sessions and requests.

    The rates stay whole: an open-model worker takes every ``count``-th arrival of the whole
    schedule (see :class:`~loadtest.run.control.WorkerShare`), not a schedule of its own.
    """
    workload = scenario.workload
    stages = tuple(
        replace(stage, sessions=split(stage.sessions, index, count)) if stage.sessions is not None else stage
        for stage in workload.stages
    )
    shared = replace(
        workload,
        sessions=split(workload.sessions, index, count),
        requests=split(workload.requests, index, count),
        stages=stages,
    )
    return replace(scenario, workload=shared)


__all__ = ["MAX_WORKERS", "check_workers", "share_scenario", "split"]
