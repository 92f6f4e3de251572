"""The load plan, the measured window and the call budget, on a fake clock (no real time)."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest.run.plan import Budget, LoadPlan, Window
from loadtest.run.workers import share_scenario
from loadtest.scenario import Scenario, load_scenario

S = 1_000_000_000


def scenario(tmp_path: Path, workload: str) -> Scenario:
    path = tmp_path / "s.toml"
    path.write_text("[workload]\n" + workload + '\n[[ops]]\nmethod = "ping"\n')
    return load_scenario(path)


def test_the_plan_takes_the_scenario_models_own_figures(tmp_path: Path) -> None:
    s = scenario(
        tmp_path,
        'warmup = "2s"\nstages = [{ duration = "3s", sessions = 2 }, { duration = "5s", sessions = 6 }]',
    )
    plan = LoadPlan.of(s.workload)
    assert plan.max_sessions == s.workload.max_sessions == 6
    assert plan.planned_s == s.workload.total_duration == 8.0
    assert plan.warmup_s == 2.0


def test_closed_stages_say_how_many_sessions_send_when(tmp_path: Path) -> None:
    s = scenario(tmp_path, 'stages = [{ duration = "3s", sessions = 2 }, { duration = "5s", sessions = 6 }]')
    plan = LoadPlan.of(s.workload)
    # Warm-up runs the first stage; after the last, the last stage's count holds.
    assert [plan.sessions_at(t) for t in (-1.0, 0.0, 2.9, 3.0, 7.9, 8.0, 100.0)] == [2, 2, 2, 6, 6, 6, 6]


def test_without_stages_every_session_sends(tmp_path: Path) -> None:
    plan = LoadPlan.of(scenario(tmp_path, 'sessions = 4\nduration = "10s"').workload)
    assert plan.max_sessions == 4
    assert {plan.sessions_at(t) for t in (0.0, 5.0, 50.0)} == {4}


def test_open_arrivals_include_warmup_at_the_first_rate(tmp_path: Path) -> None:
    plan = LoadPlan.of(
        scenario(tmp_path, 'model = "open"\nrate = "10/s"\nduration = "2s"\nwarmup = "1s"').workload
    )
    times = list(plan.arrivals())
    assert len(times) == 30
    assert times[10] == pytest.approx(1.0)


def test_worker_shares_of_the_arrivals_are_exactly_the_one_schedule(tmp_path: Path) -> None:
    plan = LoadPlan.of(
        scenario(tmp_path, 'model = "open"\nrate = "100/s"\nduration = "1s"\nwarmup = "0s"').workload
    )
    whole = list(plan.arrivals())
    parts = [list(plan.arrivals(i, 3)) for i in range(3)]
    assert sorted(t for part in parts for t in part) == whole
    assert [len(part) for part in parts] == [34, 33, 33]


def test_a_worker_share_keeps_the_plans_shape(tmp_path: Path) -> None:
    s = scenario(tmp_path, 'stages = [{ duration = "1s", sessions = 3 }, { duration = "1s", sessions = 7 }]')
    shares = [LoadPlan.of(share_scenario(s, i, 3).workload) for i in range(3)]
    assert sum(p.max_sessions for p in shares) == 7
    assert all(p.planned_s == 2.0 for p in shares)


def test_the_window_starts_after_warmup_and_ends_after_the_planned_time(tmp_path: Path) -> None:
    plan = LoadPlan.of(scenario(tmp_path, 'duration = "10s"\nwarmup = "2s"').workload)
    window = Window.starting(5 * S, plan)
    assert (window.t0_ns, window.measure_start_ns, window.end_ns) == (5 * S, 7 * S, 17 * S)
    assert not window.measuring(7 * S - 1)
    assert window.measuring(7 * S)
    assert not window.over(17 * S - 1)
    assert window.over(17 * S)


def test_a_run_bounded_by_requests_has_no_planned_end(tmp_path: Path) -> None:
    plan = LoadPlan.of(scenario(tmp_path, 'requests = 5\nwarmup = "0s"').workload)
    assert plan.planned_s is None
    window = Window.starting(0, plan)
    assert window.end_ns is None
    assert not window.over(10**18)


def test_the_budget_lets_warmup_calls_out_and_counts_measured_ones(tmp_path: Path) -> None:
    plan = LoadPlan.of(scenario(tmp_path, 'requests = 3\nwarmup = "1s"').workload)
    budget = Budget(Window.starting(0, plan), plan.request_limit)
    # Warm-up calls do not count against the limit.
    assert all(budget.ticket(t) for t in (0, S // 2, S - 1))
    assert [budget.ticket(S + k) for k in range(4)] == [True, True, True, False]
    assert budget.spent
    assert not budget.ticket(0)


def test_the_budget_refuses_calls_due_at_or_after_the_end(tmp_path: Path) -> None:
    plan = LoadPlan.of(scenario(tmp_path, 'duration = "1s"\nwarmup = "0s"').workload)
    budget = Budget(Window.starting(10 * S, plan), plan.request_limit)
    assert budget.ticket(11 * S - 1)
    assert not budget.ticket(11 * S)
    assert budget.spent
