"""History: ``ack_many(..., history=)`` adds run-time rows to the backend's minute and hour; ``history()`` reads them."""

from __future__ import annotations

from collections import defaultdict

import pytest

from fastjobs.backends import Ack, AckKind, Backend
from fastjobs.backends.base import HISTOGRAM_BOUNDS, HistoryPoint, HistoryRow, Outcome
from fastjobs.job import new_job_id
from tests.contract.ops_helpers import claim_all, new

BUCKETS = len(HISTOGRAM_BOUNDS) + 1


def row(queue: str, task: str, outcome: Outcome, runtimes: list[float]) -> HistoryRow:
    """A row counting ``runtimes`` in their histogram buckets (bounds inclusive)."""
    buckets = [0] * BUCKETS
    for runtime in runtimes:
        buckets[next((i for i, bound in enumerate(HISTOGRAM_BOUNDS) if runtime <= bound), BUCKETS - 1)] += 1
    return HistoryRow(queue, task, int(outcome), len(runtimes), sum(runtimes), tuple(buckets))


def totals(points: list[HistoryPoint]) -> dict[tuple[str, str, int], tuple[int, float, tuple[int, ...]]]:
    """Points added up per (queue, task, outcome), whatever minutes they fell in."""
    summed: dict[tuple[str, str, int], list[float]] = defaultdict(lambda: [0.0] * (BUCKETS + 2))
    for point in points:
        r = point.row
        acc = summed[(r.queue, r.task, r.outcome)]
        acc[0] += r.runs
        acc[1] += r.runtime_sum
        for i, count in enumerate(r.buckets, 2):
            acc[i] += count
    return {
        key: (int(acc[0]), round(acc[1], 6), tuple(int(c) for c in acc[2:])) for key, acc in summed.items()
    }


def total(*rows: HistoryRow) -> tuple[int, float, tuple[int, ...]]:
    runs = sum(r.runs for r in rows)
    return runs, round(sum(r.runtime_sum for r in rows), 6), tuple(map(sum, zip(*(r.buckets for r in rows))))


FLUSH_1 = [
    row("emails", "send", Outcome.SUCCEEDED, [0.002, 0.004, 0.3]),
    row("emails", "send", Outcome.RETRIED, [1.5]),
    row("emails", "bounce", Outcome.SUCCEEDED, [0.0005]),
    row("pdf", "render", Outcome.DEAD, [2000.0]),
]
FLUSH_2 = [
    row("emails", "send", Outcome.SUCCEEDED, [0.004, 12.0]),
    row("pdf", "render", Outcome.SUCCEEDED, [0.07]),
]


async def write_two_flushes(backend: Backend) -> tuple[float, float]:
    """Both flushes, riding on real acks; the backend's clock before and after."""
    before = await backend.now()
    jobs = [new(), new()]
    await backend.enqueue_many(jobs)
    tokens = await claim_all(backend, "q", 2)
    first, second = ([Ack(j.id, tokens[j.id], AckKind.SUCCEED)] for j in jobs)
    assert await backend.ack_many(first, FLUSH_1) == [True]
    assert await backend.ack_many(second, history=FLUSH_2) == [True]
    return before, await backend.now()


async def test_rows_add_up_per_minute_and_per_hour(backend: Backend) -> None:
    before, after = await write_two_flushes(backend)
    expected = {
        ("emails", "send", Outcome.SUCCEEDED): total(FLUSH_1[0], FLUSH_2[0]),
        ("emails", "send", Outcome.RETRIED): total(FLUSH_1[1]),
        ("emails", "bounce", Outcome.SUCCEEDED): total(FLUSH_1[2]),
        ("pdf", "render", Outcome.DEAD): total(FLUSH_1[3]),
        ("pdf", "render", Outcome.SUCCEEDED): total(FLUSH_2[1]),
    }
    for step in (60, 3600):
        points = await backend.history(before - 2 * step, after + step, step)
        assert totals(points) == expected, step
        for point in points:
            assert point.at % step == 0 and before - step < point.at <= after
            assert len(point.row.buckets) == BUCKETS and sum(point.row.buckets) == point.row.runs
        order = [(p.at, p.row.queue, p.row.task, p.row.outcome) for p in points]
        assert order == sorted(order) and len(order) == len(set(order))  # merged: one point per key
    hours = await backend.history(before - 7200, after + 3600, 3600)
    assert len({p.at for p in hours}) <= 2  # one hour, or two if an hour began between the flushes


async def test_one_flush_in_one_minute_is_one_point_per_row(backend: Backend) -> None:
    for _ in range(3):
        before = await backend.now()
        assert await backend.ack_many([], FLUSH_1) == []
        after = await backend.now()
        if before // 60 == after // 60:
            break
    points = await backend.history(before - 60, after + 60, 60)
    assert [p.at for p in points] == [before // 60 * 60] * len(FLUSH_1)
    assert sorted(p.row for p in points) == sorted(r._replace(outcome=int(r.outcome)) for r in FLUSH_1)


async def test_history_filters_by_queue_and_task(backend: Backend) -> None:
    before, after = await write_two_flushes(backend)
    window = (before - 120, after + 60)
    emails = await backend.history(*window, queue="emails")
    assert {(p.row.queue, p.row.task) for p in emails} == {("emails", "send"), ("emails", "bounce")}
    send = await backend.history(*window, task="send")
    assert {(p.row.queue, p.row.task) for p in send} == {("emails", "send")}
    render = await backend.history(*window, queue="pdf", task="render")
    assert totals(render) == {
        ("pdf", "render", Outcome.DEAD): total(FLUSH_1[3]),
        ("pdf", "render", Outcome.SUCCEEDED): total(FLUSH_2[1]),
    }
    assert await backend.history(*window, queue="pdf", task="send") == []
    assert await backend.history(*window, queue="nowhere") == []


@pytest.mark.parametrize("step", [60, 3600])
async def test_since_is_inclusive_and_until_exclusive(backend: Backend, step: int) -> None:
    await backend.ack_many([], FLUSH_2)
    now = await backend.now()
    points = await backend.history(now - 3 * step, now + step, step)
    assert points
    at = points[0].at
    assert all(p.at == at for p in points) or step == 60  # a minute may have turned meanwhile
    assert await backend.history(at, at + 1, step) == [p for p in points if p.at == at]
    assert await backend.history(at - step, at, step) == [p for p in points if p.at < at]
    assert await backend.history(at + 1, at + step, step) == [p for p in points if at < p.at < at + step]
    assert await backend.history(at, at, step) == []


async def test_history_is_written_whatever_the_acks_did(backend: Backend) -> None:
    # Stale acks (unknown job, wrong token) still ran their handlers: their run time counts.
    before = await backend.now()
    stale = [Ack(new_job_id(), 1, AckKind.SUCCEED), Ack(new_job_id(), 5, AckKind.DEAD, b"e")]
    assert await backend.ack_many(stale, FLUSH_2) == [False, False]
    points = await backend.history(before - 60, await backend.now() + 60, 60)
    assert totals(points) == {
        ("emails", "send", Outcome.SUCCEEDED): total(FLUSH_2[0]),
        ("pdf", "render", Outcome.SUCCEEDED): total(FLUSH_2[1]),
    }


async def test_no_history_without_rows(backend: Backend) -> None:
    before = await backend.now()
    j = new()
    await backend.enqueue_many([j])
    tokens = await claim_all(backend, "q", 1)
    assert await backend.ack_many([Ack(j.id, tokens[j.id], AckKind.SUCCEED)]) == [True]
    assert await backend.history(before - 3600, before + 3600, 60) == []
    assert await backend.history(before - 86400, before + 86400, 3600) == []

