"""The history's arithmetic: bucketing run times, summing a flush, merging outcomes, percentiles."""

from __future__ import annotations

import pytest

from fastjobs.backends.base import HISTOGRAM_BOUNDS, HistoryPoint, HistoryRow, Outcome
from fastjobs.errors import InvalidOptionError
from fastjobs.history import SLOTS, HistoryBucket, bucket_of, merge_points, parse_step, percentile, tally


def test_buckets_have_inclusive_upper_bounds_and_an_overflow() -> None:
    assert SLOTS == len(HISTOGRAM_BOUNDS) + 1
    assert bucket_of(0.0) == 0
    for i, bound in enumerate(HISTOGRAM_BOUNDS):
        assert bucket_of(bound) == i
        assert bucket_of(bound * 1.0001) == i + 1
    assert bucket_of(HISTOGRAM_BOUNDS[-1] + 1) == SLOTS - 1


def test_tally_makes_one_row_per_queue_task_and_outcome() -> None:
    runs = [
        ("q", "a", Outcome.SUCCEEDED, 0.002), None, ("q", "a", Outcome.SUCCEEDED, 0.2),
        ("q", "a", Outcome.RETRIED, 0.003), ("r", "a", Outcome.SUCCEEDED, 7000.0), ("q", "b", Outcome.DEAD, 0.0),
    ]
    rows = {(r.queue, r.task, r.outcome): r for r in tally(runs)}
    assert sorted(rows) == [("q", "a", 0), ("q", "a", 1), ("q", "b", 2), ("r", "a", 0)]
    ok = rows[("q", "a", Outcome.SUCCEEDED)]
    assert ok.runs == 2 and ok.runtime_sum == pytest.approx(0.202)
    assert len(ok.buckets) == SLOTS and sum(ok.buckets) == 2
    assert ok.buckets[bucket_of(0.002)] == 1 and ok.buckets[bucket_of(0.2)] == 1
    assert rows[("r", "a", 0)].buckets[-1] == 1
    assert rows[("q", "b", 2)].buckets[0] == 1
    assert all(isinstance(n, int) for r in rows.values() for n in r.buckets)
    assert tally([None, None]) == []


def test_percentile_interpolates_inside_the_bucket() -> None:
    counts = [0] * SLOTS
    assert percentile(counts, 0.5) is None
    counts[0] = 10  # ten runs in [0, 1 ms]
    assert percentile(counts, 0.5) == pytest.approx(0.0005)
    assert percentile(counts, 1.0) == pytest.approx(0.001)
    counts = [0] * SLOTS
    counts[bucket_of(0.3)] = 1
    counts[bucket_of(3.0)] = 1  # (2.5, 5]
    assert percentile(counts, 0.5) == pytest.approx(0.5)  # the top of the lower run's bucket
    assert percentile(counts, 0.95) == pytest.approx(2.5 + 2.5 * 0.9)
    counts = [0] * SLOTS
    counts[-1] = 3  # longer than the last bound: reported as at least it
    assert percentile(counts, 0.5) == HISTOGRAM_BOUNDS[-1]


def test_a_bucket_merges_outcomes_and_keeps_the_histogram() -> None:
    rows = tally([("q", "a", Outcome.SUCCEEDED, 0.03)] * 18 + [("q", "a", Outcome.RETRIED, 2.0)] * 1
                 + [("q", "a", Outcome.DEAD, 4.0)] * 1)
    b = HistoryBucket.from_rows(120.0, "q", "a", rows)
    assert (b.at, b.queue, b.task) == (120.0, "q", "a")
    assert (b.succeeded, b.retried, b.dead, b.runs) == (18, 1, 1, 20)
    assert b.runtime_sum == pytest.approx(18 * 0.03 + 6.0)
    assert b.mean == pytest.approx(b.runtime_sum / 20)
    assert b.p50 is not None and 0.025 < b.p50 <= 0.05
    assert b.p95 is not None and 1.0 < b.p95 <= 2.5  # rank 19 of 20: the 2 s run
    assert sum(b.buckets) == 20
    empty = HistoryBucket.from_rows(0.0, "q", "a", [])
    assert (empty.runs, empty.mean, empty.p50, empty.p95) == (0, None, None, None)


def test_points_merge_per_minute_queue_and_task() -> None:
    def row(queue: str, task: str, outcome: int, runs: int) -> HistoryRow:
        buckets = [0] * SLOTS
        buckets[3] = runs
        return HistoryRow(queue, task, outcome, runs, 0.01 * runs, tuple(buckets))

    points = [
        HistoryPoint(60.0, row("q", "a", 0, 5)), HistoryPoint(60.0, row("q", "a", 1, 2)),
        HistoryPoint(0.0, row("q", "a", 0, 1)), HistoryPoint(60.0, row("q", "b", 2, 1)),
    ]
    merged = merge_points(points)
    assert [(b.at, b.task, b.succeeded, b.retried, b.dead) for b in merged] == [
        (0.0, "a", 1, 0, 0), (60.0, "a", 5, 2, 0), (60.0, "b", 0, 0, 1),
    ]


def test_steps() -> None:
    assert parse_step("1m") == 60 and parse_step("1h") == 3600 and parse_step(3600) == 3600
    for bad in ("1s", "60", 61, True, None, 60.5):
        with pytest.raises(InvalidOptionError, match="step"):
            parse_step(bad)
