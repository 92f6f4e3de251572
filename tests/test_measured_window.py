"""The measured window starts when the planned sessions are open, and rates are calls over it.

The known-bad target here is a stdio server whose sessions after the first take seconds to
start (a wrapper that sleeps, then runs the reference server): set-up time must be reported on
its own and never land in the measured latencies.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from loadtest.run.execute import execute
from loadtest.run.targets.reference import reference_command
from loadtest.scenario import Scenario, load_scenario

pytestmark = pytest.mark.anyio

#: How long every session after the first takes to start.
SLOW_START_S = 3.0

_WRAPPER = """
import fcntl, os, sys, time
count_file, delay, argv = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
with open(count_file, "a+") as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    f.seek(0)
    n = len(f.read())
    f.write("x")
if n:
    time.sleep(delay)
os.execv(argv[0], argv)
"""


def slow_start_scenario(tmp_path: Path, workload: str, delay_s: float = SLOW_START_S) -> Scenario:
    wrapper = tmp_path / "slow_start.py"
    wrapper.write_text(_WRAPPER)
    server = reference_command("stdio", delay_ms=10)
    command = [sys.executable, str(wrapper), str(tmp_path / "sessions.count"), str(delay_s), *server]
    path = tmp_path / "scenario.toml"
    path.write_text(
        f"""
        transports = ["stdio"]
        [target]
        command = {json.dumps(command)}
        [workload]
        {workload}
        [[ops]]
        tool = "echo"
        arguments = {{ text = "{{nonce}}" }}
        expect = {{ text = "{{nonce}}" }}
        """
    )
    return load_scenario(path)


async def run(s: Scenario, tmp_path: Path) -> dict[str, Any]:
    directory = tmp_path / "run"
    directory.mkdir()
    outcome = await execute(s, directory)
    assert outcome.failure is None
    section: dict[str, Any] = outcome.document["transports"]["stdio"]
    return section


async def test_open_model_calls_due_during_setup_do_not_leak_into_latency(tmp_path: Path) -> None:
    s = slow_start_scenario(
        tmp_path,
        'model = "open"\nrate = "50/s"\nsessions = 4\nduration = "2s"\nwarmup = "0.5s"\nconnect_timeout = "20s"',
    )
    section = await run(s, tmp_path)
    setup = section["setup"]
    # Set-up is reported on its own: every planned session opened, after the slow start.
    assert setup["planned_sessions"] == setup["open_at_start"] == 4
    assert setup["late"] == 0
    assert setup["setup_s"] >= SLOW_START_S
    assert section["sessions"]["setup_latency_us"]["max"] >= SLOW_START_S * 1e6
    echo = section["ops"]["echo"]
    # Exactly the planned calls (50/s for 2 s), all of them measured after set-up: none
    # queued on the first session while the others were starting (that gave p99 of seconds).
    assert echo["count"] == echo["ok"] == 100
    assert echo["latency_us"]["max"] < SLOW_START_S * 1e6 / 2


async def test_closed_model_measures_only_once_every_session_is_open(tmp_path: Path) -> None:
    s = slow_start_scenario(tmp_path, 'sessions = 3\nduration = "1s"\nwarmup = "0s"\nconnect_timeout = "20s"')
    section = await run(s, tmp_path)
    assert section["setup"]["open_at_start"] == 3
    # All three sessions sent from the first measured instant (before, one session sent
    # alone for seconds, and its calls were the run's).
    assert section["generator"]["in_flight_max"] == 3
    assert section["setup"]["setup_s"] >= SLOW_START_S


async def test_a_setup_deadline_starts_the_clock_and_reports_the_late_sessions(tmp_path: Path) -> None:
    # connect_timeout is the set-up deadline: the slow sessions miss it (and fail, retried).
    s = slow_start_scenario(
        tmp_path, 'sessions = 3\nduration = "1s"\nwarmup = "0s"\nconnect_timeout = "5s"', delay_s=15.0
    )
    section = await run(s, tmp_path)
    setup = section["setup"]
    assert setup["planned_sessions"] == 3
    assert setup["open_at_start"] == 1
    assert setup["late"] == 2
    assert setup["deadline_hit"] is True
    assert setup["deadline_s"] == 5.0
    assert 5.0 <= setup["setup_s"] < 15.0
    echo = section["ops"]["echo"]
    assert echo["count"] == echo["ok"] > 0


def reference_scenario(tmp_path: Path, workload: str) -> Scenario:
    path = tmp_path / "scenario.toml"
    path.write_text(
        f"""
        transports = ["sse"]
        [workload]
        {workload}
        [[ops]]
        tool = "sleep"
        arguments = {{ ms = 1500, nonce = "{{nonce}}" }}
        expect = {{ text = "slept 1500 {{nonce}}" }}
        """
    )
    return load_scenario(path)


async def test_closed_model_rates_are_calls_over_the_window_not_the_drain(tmp_path: Path) -> None:
    # Two sessions of 1.5 s calls for 2 s: the calls sent at 1.5 s end at 3 s, a second after
    # the window. They count, but the draining second is no measured time.
    s = reference_scenario(tmp_path, 'sessions = 2\nduration = "2s"\nwarmup = "0s"')
    directory = tmp_path / "run"
    directory.mkdir()
    outcome = await execute(s, directory)
    section = outcome.document["transports"]["sse"]
    sleep = section["ops"]["sleep"]
    assert sleep["count"] == sleep["ok"] == 4
    assert section["measured_s"] == 2.0
    assert sleep["rate"] == 2.0


async def test_open_model_rates_are_calls_over_the_window_not_the_drain(tmp_path: Path) -> None:
    s = reference_scenario(
        tmp_path,
        'model = "open"\nrate = "10/s"\nsessions = 20\nduration = "1s"\nwarmup = "0s"\nmax_in_flight = 1',
    )
    directory = tmp_path / "run"
    directory.mkdir()
    outcome = await execute(s, directory)
    section = outcome.document["transports"]["sse"]
    sleep = section["ops"]["sleep"]
    assert sleep["count"] == sleep["ok"] == 10
    assert section["measured_s"] == 1.0
    assert sleep["rate"] == 10.0


async def test_sessions_a_later_stage_adds_are_set_up_before_the_clock(tmp_path: Path) -> None:
    # The second stage triples the sessions; their slow start happens before anything is
    # measured, not in the middle of the run as server time.
    s = slow_start_scenario(
        tmp_path,
        'warmup = "0s"\nconnect_timeout = "20s"\n'
        'stages = [{ duration = "1s", sessions = 1 }, { duration = "1s", sessions = 3 }]',
    )
    section = await run(s, tmp_path)
    setup = section["setup"]
    assert setup["planned_sessions"] == setup["open_at_start"] == 3
    assert setup["setup_s"] >= SLOW_START_S
    echo = section["ops"]["echo"]
    assert echo["count"] == echo["ok"] > 0
    assert echo["latency_us"]["max"] < SLOW_START_S * 1e6 / 2
    assert section["measured_s"] == 2.0
