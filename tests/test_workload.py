"""When calls are due and which op they are: the workload models on a fake clock (no real time)."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import pytest

from loadtest.run.workload import OpPicker, RateStage, arrivals, rate_stages


def test_a_constant_rate_spaces_calls_evenly() -> None:
    times = list(arrivals(rate_stages([(2.0, 100.0)])))
    assert len(times) == 200
    assert times[0] == 0.0
    gaps = {round(b - a, 9) for a, b in itertools.pairwise(times)}
    assert gaps == {0.01}


def test_a_slow_rate_schedules_as_exactly_as_a_fast_one() -> None:
    # 300 per hour: one call every 12 s, exactly, over ten minutes.
    times = list(arrivals(rate_stages([(600.0, 300 / 3600)])))
    assert len(times) == 50
    assert times[:3] == pytest.approx([0.0, 12.0, 24.0])
    assert times[-1] == pytest.approx(588.0)


def test_a_ramp_places_as_many_calls_as_its_area() -> None:
    # 0 -> 100/s over 10 s: area 500; the rate rises, so the gaps shrink.
    stages = [RateStage(10.0, 0.0, 100.0)]
    times = list(arrivals(stages))
    assert len(times) == 500
    assert all(0.0 <= t < 10.0 for t in times)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(later < earlier for earlier, later in itertools.pairwise(gaps))
    # Arrival k sits where the integral of the rate reaches k: 5 t^2 = k.
    assert times[125] == pytest.approx(math.sqrt(125 / 5))


def test_rate_stages_ramp_from_the_previous_target_and_the_first_holds() -> None:
    stages = rate_stages([(5.0, 10.0), (10.0, 30.0), (5.0, 0.0)])
    assert stages == [RateStage(5.0, 10.0, 10.0), RateStage(10.0, 10.0, 30.0), RateStage(5.0, 30.0, 0.0)]
    times = list(arrivals(stages))
    # 50 + (10+30)/2*10 + 30/2*5 = 50 + 200 + 75
    assert len(times) == 325
    assert times == sorted(times)
    assert sum(1 for t in times if t < 5.0) == 50
    assert sum(1 for t in times if 5.0 <= t < 15.0) == 200


def test_an_idle_stage_schedules_nothing_and_the_next_starts_on_time() -> None:
    times = list(arrivals(rate_stages([(2.0, 0.0), (1.0, 10.0)])))
    # The second stage ramps 0 -> 10/s over 1 s: 5 calls, none before 2 s.
    assert len(times) == 5
    assert min(times) >= 2.0


def test_the_op_picker_keeps_the_weights_and_is_repeatable() -> None:
    picker = OpPicker([4.0, 2.0, 1.0, 1.0], seed=0)
    picks = [picker.pick() for _ in range(80_000)]
    counts = Counter(picks)
    for index, weight in enumerate([4, 2, 1, 1]):
        assert counts[index] == 80_000 * weight // 8
    again = OpPicker([4.0, 2.0, 1.0, 1.0], seed=0)
    assert [again.pick() for _ in range(1000)] == picks[:1000]
    other = OpPicker([4.0, 2.0, 1.0, 1.0], seed=1)
    assert [other.pick() for _ in range(1000)] != picks[:1000]


@pytest.mark.parametrize("weights", [[8, 4, 4, 1, 1, 1, 1], [4, 2, 1, 1], [3, 0.5, 0.25], [1, 1, 1]])
def test_every_window_of_picks_holds_each_op_to_its_share_within_two(weights: list[float]) -> None:
    # The default scenario's 50-call run: an op of weight 1 in 20 gets 2.5 calls, never none.
    picker = OpPicker(weights, seed=5)
    picks = [picker.pick() for _ in range(3000)]
    total = sum(weights)
    for length in (20, 50, 333):
        for start in range(0, len(picks) - length, 7):
            window = Counter(picks[start : start + length])
            for index, weight in enumerate(weights):
                assert abs(window[index] - length * weight / total) < 2, (length, start, index)


def test_an_op_of_weight_zero_is_never_picked() -> None:
    picker = OpPicker([1.0, 0.0, 1.0], seed=3)
    assert 1 not in {picker.pick() for _ in range(10_000)}
