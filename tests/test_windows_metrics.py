"""Window schedules (spec section 2) and the nDCG used by augment and the reward."""

from __future__ import annotations

import math

import pytest

from rearank_cli.metrics import dcg, ndcg
from rearank_cli.rerank.strategies.sliding import fixed_windows, official_windows, schedule


def test_n100_both_schedules_agree():
    expected = [(80, 100), (70, 90), (60, 80), (50, 70), (40, 60), (30, 50), (20, 40), (10, 30), (0, 20)]
    assert fixed_windows(100) == expected
    assert official_windows(100) == expected


def test_n95():
    assert fixed_windows(95)[-2:] == [(5, 25), (0, 20)]
    assert official_windows(95)[-1] == (5, 25)


def test_short_lists():
    assert fixed_windows(15) == [(0, 15)]
    assert fixed_windows(20) == [(0, 20)]
    assert fixed_windows(1) == [] and fixed_windows(0) == []
    assert official_windows(15) == []
    assert official_windows(20) == [(0, 20)]


@pytest.mark.parametrize("n", range(0, 130))
@pytest.mark.parametrize("window,step", [(20, 10), (20, 5), (10, 10), (4, 3)])
def test_fixed_covers_everything(n, window, step):
    windows = fixed_windows(n, window, step)
    covered = {i for start, end in windows for i in range(start, end)}
    assert covered == (set(range(n)) if n >= 2 else set())
    assert all(end - start == min(window, n) for start, end in windows)
    assert windows == sorted(windows, reverse=True)


def test_schedule_names():
    assert schedule("fixed", 30) == fixed_windows(30)
    with pytest.raises(ValueError):
        schedule("nope", 30)
    with pytest.raises(ValueError):
        fixed_windows(30, 20, 30)


def test_ndcg_by_hand():
    assert dcg([3, 0, 1]) == pytest.approx(3 + 1 / 2)
    judged = [3, 2, 1, 0, 0]
    ideal = 3 + 2 / math.log2(3) + 1 / 2
    assert ndcg([0, 3], judged) == pytest.approx((3 / math.log2(3)) / ideal)
    assert ndcg([3, 2, 1], judged) == pytest.approx(1.0)
    assert ndcg([1, 1], [0, 0]) == 0.0
    assert ndcg([1] * 12, [1] * 12) == pytest.approx(1.0)
