"""Backend.shift_due on every backend: priorities, limited jobs, paused queues, unique
jobs and dependants, beside what tests/contract/test_testing_contract.py covers."""

from __future__ import annotations

from fastjobs._core import QUEUED, SCHEDULED, WAITING
from fastjobs.backends import Backend, Limit
from tests.contract.test_backend_contract import claim_ids, job


async def test_jobs_that_fall_due_are_served_by_priority_then_enqueue_order(backend: Backend) -> None:
    low_early, high_late, low_late, ready = job(delay=50.0), job(priority=5, delay=90.0), job(delay=80.0), job()
    await backend.enqueue_many([low_early, high_late, low_late, ready])
    assert await backend.shift_due(100.0) == 3
    assert await claim_ids(backend, ["q"]) == [high_late.id, low_early.id, low_late.id, ready.id]


async def test_a_delayed_limited_job_falls_due_and_keeps_its_limit(backend: Backend) -> None:
    limit = Limit("k", concurrency=1)
    first, second = job(delay=100.0)._replace(limit=limit), job(delay=100.0)._replace(limit=limit)
    await backend.enqueue_many([first, second])
    assert await claim_ids(backend, ["q"]) == []
    assert await backend.shift_due(100.0) == 2
    assert await claim_ids(backend, ["q"]) == [first.id]  # concurrency 1: the other waits for it
    assert await claim_ids(backend, ["q"]) == []


async def test_a_paused_queue_keeps_its_shifted_jobs_until_resumed(backend: Backend) -> None:
    later = job(delay=100.0)
    await backend.enqueue_many([later])
    await backend.pause("q")
    assert await backend.shift_due(200.0) == 1
    assert await claim_ids(backend, ["q"]) == []
    await backend.resume("q")
    assert await claim_ids(backend, ["q"]) == [later.id]


async def test_a_unique_delayed_job_still_holds_its_key_and_a_waiting_job_is_not_moved(backend: Backend) -> None:
    unique = job(delay=100.0, unique_key="u")
    parent = job(delay=1000.0)
    child = job(delay=100.0)._replace(depends_on=(parent.id,))
    await backend.enqueue_many([unique, parent, child])
    assert await backend.shift_due(100.0) == 2  # the child waits on its parent: its delay counts from then
    again = job(unique_key="u")
    assert await backend.enqueue_many([again]) == [unique.id]
    stored = {j.id: await backend.get(j.id) for j in (unique, parent, child)}
    assert {i: s.state for i, s in stored.items() if s is not None} == {
        unique.id: QUEUED, parent.id: SCHEDULED, child.id: WAITING}


async def test_more_jobs_than_one_script_chunk_all_move(backend: Backend) -> None:
    jobs = [job(delay=100.0 + n / 1000) for n in range(4100)]  # Redis sends 4,000 values per command
    await backend.enqueue_many(jobs)
    assert await backend.shift_due(105.0) == 4100
    for probe in (jobs[0], jobs[2500], jobs[-1]):
        stored = await backend.get(probe.id)
        assert stored is not None and stored.run_at <= stored.enqueued_at - 0.8
    claimed: list[str] = []
    while batch := await claim_ids(backend, ["q"], 5000):  # Redis promotes 1,000 a call
        claimed += batch
    assert len(claimed) == 4100
