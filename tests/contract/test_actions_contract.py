"""Acting on jobs by id: ``retry_jobs`` (and edit), ``cancel_jobs``, ``delete_jobs``, and the base ``purge``."""

from __future__ import annotations

from typing import Any

import pytest

from fastjobs._core import ACTIVE, CANCELLED, DEAD, QUEUED, RETRY_PENDING, SCHEDULED, SUCCEEDED, WAITING
from fastjobs.backends import Ack, AckKind, Backend, DependencyMode
from fastjobs.backends.base import MAX_IDS, JobEdit, JobFilter
from fastjobs.job import new_job_id
from tests.contract.ops_helpers import FAR, LEASE, claim_all, finish, new, search_all


async def dead_and_cancelled(backend: Backend, **options: Any) -> tuple[str, str]:
    """A dead job (two failed attempts, errors b"e1" and b"e2") and a cancelled one, in queue "q"."""
    dead, cancelled = new(max_attempts=2, **options), new()
    await backend.enqueue_many([dead, cancelled])
    assert await backend.cancel_jobs([cancelled.id]) == [True]
    (c,) = await backend.claim(["q"], 1, LEASE)
    assert await backend.ack_many([Ack(c.id, c.token, AckKind.RETRY, b"e1", 0.0)]) == [True]
    (c,) = await backend.claim(["q"], 1, LEASE)
    assert await backend.ack_many([Ack(c.id, c.token, AckKind.DEAD, b"e2")]) == [True]
    got = await backend.get(dead.id)
    assert got is not None and got.state == DEAD and got.attempt == 2
    return dead.id, cancelled.id


async def test_retry_puts_dead_and_cancelled_jobs_back_with_fresh_attempts(backend: Backend) -> None:
    dead, cancelled = await dead_and_cancelled(backend)
    assert await backend.retry_jobs([dead, cancelled]) == [True, True]
    for job_id in (dead, cancelled):
        got = await backend.get(job_id)
        assert got is not None and got.state == QUEUED and got.attempt == 0 and got.finished_at is None
    got = await backend.get(dead)
    assert got is not None and got.errors == [b"e1", b"e2"]  # what went wrong is kept
    claims = await backend.claim(["q"], 10, LEASE)
    assert sorted(c.id for c in claims) == sorted([dead, cancelled])
    assert all(c.attempt == 1 for c in claims)
    # Two more attempts again (max_attempts 2): a retry, then dead.
    c = next(c for c in claims if c.id == dead)
    assert await backend.ack_many([Ack(dead, c.token, AckKind.RETRY, b"e3", 0.0)]) == [True]
    (again,) = await backend.claim(["q"], 1, LEASE)
    assert (again.id, again.attempt) == (dead, 2)


async def test_retry_refuses_jobs_that_are_not_dead_or_cancelled(backend: Backend) -> None:
    queued, scheduled, active, done = new(), new(delay=FAR), new(queue="a"), new(queue="s")
    await backend.enqueue_many([queued, scheduled, active, done])
    await claim_all(backend, "a", 1)
    await finish(backend, "s", 1)
    ids = [queued.id, scheduled.id, active.id, done.id, new_job_id()]
    assert await backend.retry_jobs(ids) == [False] * 5
    states = [(await backend.get(i)).state for i in ids[:4]]  # type: ignore[union-attr]
    assert states == [QUEUED, SCHEDULED, ACTIVE, SUCCEEDED]
    assert await backend.retry_jobs([]) == []


async def test_a_retry_in_a_paused_queue_stays_queued(backend: Backend) -> None:
    dead, _ = await dead_and_cancelled(backend)
    await backend.pause("q")
    assert await backend.retry_jobs([dead]) == [True]
    assert await backend.claim(["q"], 10, LEASE) == []
    await backend.resume("q")
    assert [c.id for c in await backend.claim(["q"], 10, LEASE)] == [dead]


async def test_a_retried_job_takes_its_unique_key_again(backend: Backend) -> None:
    dead, _ = await dead_and_cancelled(backend, unique_key="k")
    assert await backend.retry_jobs([dead]) == [True]
    twin = new(unique_key="k")
    assert await backend.enqueue_many([twin]) == [dead]  # held by the retried job
    assert await backend.get(twin.id) is None


async def test_a_retry_whose_unique_key_is_held_changes_nothing(backend: Backend) -> None:
    dead, _ = await dead_and_cancelled(backend, unique_key="k")
    holder = new(unique_key="k")
    assert await backend.enqueue_many([holder]) == [holder.id]  # a dead job released its key
    assert await backend.retry_jobs([dead]) == [False]
    got = await backend.get(dead)
    assert got is not None and got.state == DEAD and got.attempt == 2
    # Once the holder is gone, the retry goes through.
    assert await backend.delete_jobs([holder.id]) == [True]
    assert await backend.retry_jobs([dead]) == [True]


async def test_edit_and_retry_moves_the_job_with_its_id(backend: Backend) -> None:
    dead, _ = await dead_and_cancelled(backend)
    edit = JobEdit(body=b"new body", queue="elsewhere", priority=7, max_attempts=5)
    assert await backend.retry_jobs([dead], edit) == [True]
    got = await backend.get(dead)
    assert got is not None
    assert (got.state, got.queue, got.priority, got.max_attempts, got.body) == (QUEUED, "elsewhere", 7, 5, b"new body")
    assert got.errors == [b"e1", b"e2"]
    assert await backend.claim(["q"], 10, LEASE) == []
    (c,) = await backend.claim(["elsewhere"], 10, LEASE)
    assert (c.id, c.body, c.attempt) == (dead, b"new body", 1)
    assert await backend.ack_many([Ack(dead, c.token, AckKind.SUCCEED, b"\xc0")]) == [True]
    (found,), _ = await backend.search(JobFilter(queue="elsewhere", states=(SUCCEEDED,)), 10)
    assert found.id == dead
    assert await backend.search(JobFilter(queue="q", states=(SUCCEEDED, DEAD, QUEUED)), 10) == ([], None)


async def test_edit_keeps_the_queue_and_changes_the_rest(backend: Backend) -> None:
    _, cancelled = await dead_and_cancelled(backend)
    assert await backend.retry_jobs([cancelled], JobEdit(b"v2", "q", -1, 1)) == [True]
    (c,) = await backend.claim(["q"], 10, LEASE)
    assert (c.id, c.body) == (cancelled, b"v2")
    assert await backend.ack_many([Ack(c.id, c.token, AckKind.RETRY, b"e", 0.0)]) == [True]
    got = await backend.get(cancelled)  # max_attempts 1: a RETRY ack is the worker's call, not ours
    assert got is not None and got.max_attempts == 1 and got.priority == -1


async def test_edit_of_a_job_that_is_not_dead_or_cancelled_changes_nothing(backend: Backend) -> None:
    queued = new()
    await backend.enqueue_many([queued])
    assert await backend.retry_jobs([queued.id], JobEdit(b"x", "other", 1, 1)) == [False]
    got = await backend.get(queued.id)
    assert got is not None and (got.queue, got.body) == ("q", queued.body)


async def test_edit_takes_exactly_one_id(backend: Backend) -> None:
    dead, cancelled = await dead_and_cancelled(backend)
    with pytest.raises(ValueError):
        await backend.retry_jobs([dead, cancelled], JobEdit(b"x", "q", 0, 1))
    assert (await backend.get(dead)).state == DEAD  # type: ignore[union-attr]


async def test_cancel_many(backend: Backend) -> None:
    queued, scheduled, active, retrying, done = new(), new(delay=FAR), new(queue="a"), new(queue="r"), new(queue="s")
    await backend.enqueue_many([queued, scheduled, active, retrying, done])
    tokens = await claim_all(backend, "a", 1)
    await finish(backend, "r", 1, AckKind.RETRY, FAR)
    await finish(backend, "s", 1)
    ids = [queued.id, scheduled.id, active.id, retrying.id, done.id, new_job_id()]
    assert await backend.cancel_jobs(ids) == [True, True, True, True, False, False]
    for job_id in ids[:4]:
        got = await backend.get(job_id)
        assert got is not None and got.state == CANCELLED and got.finished_at is not None
    assert (await backend.get(done.id)).state == SUCCEEDED  # type: ignore[union-attr]
    assert await backend.ack_many([Ack(active.id, tokens[active.id], AckKind.SUCCEED)]) == [False]
    assert await backend.claim(["q", "a", "r"], 10, LEASE) == []
    assert await backend.cancel_jobs(ids[:4]) == [False] * 4


@pytest.mark.parametrize("state", [QUEUED, SCHEDULED, RETRY_PENDING, WAITING, SUCCEEDED, DEAD, CANCELLED])
async def test_delete_removes_a_job_in_any_state_but_active(backend: Backend, state: int) -> None:
    parent = new(delay=FAR)  # never claimed; on Redis a parent shares its child's queue
    j = new(delay=FAR if state == SCHEDULED else 0.0, depends_on=(parent.id,) if state == WAITING else ())
    await backend.enqueue_many([parent, j])
    if state == RETRY_PENDING:
        await finish(backend, "q", 1, AckKind.RETRY, FAR)
    elif state == SUCCEEDED:
        await finish(backend, "q", 1)
    elif state == DEAD:
        await finish(backend, "q", 1, AckKind.DEAD)
    elif state == CANCELLED:
        assert await backend.cancel_jobs([j.id]) == [True]
    got = await backend.get(j.id)
    assert got is not None and got.state == state
    assert await backend.delete_jobs([j.id]) == [True]
    assert await backend.get(j.id) is None
    assert [found.id for found in await search_all(backend, JobFilter(queue="q"), 10)] == [parent.id]
    assert await backend.delete_jobs([j.id]) == [False]
    assert await backend.claim(["q"], 10, LEASE) == []
    stats = await backend.stats()
    assert sum(n for n in stats.get("q", {}).values() if isinstance(n, int)) == 1  # the parent
    if state == WAITING:  # its parent finishing later finds nothing to cancel
        assert await backend.cancel_jobs([parent.id]) == [True]
        assert await backend.get(j.id) is None


async def test_delete_refuses_an_active_job(backend: Backend) -> None:
    active = new()
    await backend.enqueue_many([active])
    tokens = await claim_all(backend, "q", 1)
    assert await backend.delete_jobs([active.id, new_job_id()]) == [False, False]
    assert await backend.ack_many([Ack(active.id, tokens[active.id], AckKind.SUCCEED)]) == [True]
    assert await backend.delete_jobs([active.id]) == [True]


async def test_delete_frees_a_unique_key(backend: Backend) -> None:
    held = new(unique_key="k")
    await backend.enqueue_many([held])
    assert await backend.delete_jobs([held.id]) == [True]
    fresh = new(unique_key="k")
    assert await backend.enqueue_many([fresh]) == [fresh.id]


async def test_delete_frees_a_unique_key_within_its_window(backend: Backend) -> None:
    first = new(unique_key="k", unique_ttl=FAR)
    await backend.enqueue_many([first])
    await finish(backend, "q", 1)
    twin = new(unique_key="k", unique_ttl=FAR)
    assert await backend.enqueue_many([twin]) == [first.id]  # held after success
    assert await backend.delete_jobs([first.id]) == [True]
    assert await backend.enqueue_many([twin]) == [twin.id]


@pytest.mark.parametrize("parent_state", [QUEUED, SCHEDULED])
async def test_deleting_a_parent_settles_its_dependants_as_a_cancel_would(backend: Backend, parent_state: int) -> None:
    parent = new(delay=FAR if parent_state == SCHEDULED else 0.0)
    strict = new(depends_on=(parent.id,), after=int(DependencyMode.SUCCEEDED))
    lenient = new(depends_on=(parent.id,), after=int(DependencyMode.FINISHED))
    on_failure = new(depends_on=(parent.id,), after=int(DependencyMode.FAILED))
    grandchild = new(depends_on=(strict.id,), after=int(DependencyMode.SUCCEEDED))
    await backend.enqueue_many([parent, strict, lenient, on_failure, grandchild])
    assert await backend.delete_jobs([parent.id]) == [True]
    states = {j.id: (await backend.get(j.id)).state for j in (strict, lenient, on_failure, grandchild)}  # type: ignore[union-attr]
    assert states == {strict.id: CANCELLED, lenient.id: QUEUED, on_failure.id: QUEUED, grandchild.id: CANCELLED}
    got = await backend.get(lenient.id)
    assert got is not None and (got.pending_parents, got.failed_parents) == (0, 1)
    assert sorted(c.id for c in await backend.claim(["q"], 10, LEASE)) == sorted([lenient.id, on_failure.id])


async def test_more_than_max_ids_is_a_value_error(backend: Backend) -> None:
    too_many = [new_job_id() for _ in range(MAX_IDS + 1)]
    for action in (backend.retry_jobs, backend.cancel_jobs, backend.delete_jobs):
        with pytest.raises(ValueError):
            await action(too_many)
    assert await backend.cancel_jobs(too_many[:MAX_IDS]) == [False] * MAX_IDS


async def test_purge_deletes_past_max_ids_in_bounded_batches(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    dead = [new(max_attempts=1) for _ in range(2500)]
    await backend.enqueue_many(dead)
    await finish(backend, "q", 2500, AckKind.DEAD)
    keep = [new(queue="other", max_attempts=1), new()]
    await backend.enqueue_many(keep)
    await finish(backend, "other", 1, AckKind.DEAD)
    calls: list[int] = []
    delete_jobs = backend.delete_jobs

    async def counted(job_ids: list[str]) -> list[bool]:
        calls.append(len(job_ids))
        return await delete_jobs(job_ids)

    monkeypatch.setattr(backend, "delete_jobs", counted)
    assert await backend.purge(DEAD, "q") == 2500
    assert len(calls) >= 3 and max(calls) <= MAX_IDS
    assert await search_all(backend, JobFilter(states=(DEAD,), queue="q"), 100) == []
    assert [(await backend.get(j.id)).state for j in keep] == [DEAD, QUEUED]  # type: ignore[union-attr]
    assert await backend.purge(DEAD) == 1
    with pytest.raises(ValueError):
        await backend.purge(QUEUED)


async def test_the_single_id_defaults_ride_on_the_batch_operations(backend: Backend) -> None:
    dead, cancelled = await dead_and_cancelled(backend)
    assert await backend.retry_dead(cancelled) is False  # retry_dead: dead jobs only
    assert await backend.retry_dead(dead) is True
    assert await backend.retry_dead(dead) is False
    assert await backend.cancel(dead) is True
    assert await backend.cancel(dead) is False
    assert await backend.cancel(new_job_id()) is False
