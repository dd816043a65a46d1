"""memory://: the successes of one ack_many are filed in the search index once per call.

Jobs are enqueued in several batches over several queues, claimed, and acked in
random groups and orders with a mix of outcomes; after every step a search of
every state must list exactly the stored jobs, newest first by the key each one
is filed under (enqueued_at while live, finished_at once finished), and
``stats()`` is checked against a count of every job (tests/conftest.py turns on
``CHECK_STATS``). Then cleanup must remove every success once its retention is
over, including those filed in one entry per call.
"""

from __future__ import annotations

import asyncio
from hypothesis import given, settings, strategies as st

from fastjobs._core import SUCCEEDED
from fastjobs.backends.base import Ack, AckKind, BackendOptions, JobFilter, NewJob, StoredJob
from fastjobs.backends.memory import MemoryBackend
from fastjobs.job import new_job_ids

QUEUES = ("a", "b", "c")


def _new(job_id: str, queue: str, unique_key: str | None = None) -> NewJob:
    return NewJob(job_id, queue, 0, 0.0, 3, b"body", unique_key, task="t")


def _key(job: StoredJob) -> tuple[int, str]:
    at = job.finished_at if job.finished_at is not None else job.enqueued_at
    return (round(at * 1e6), job.id)


async def _search_all(backend: MemoryBackend) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    after = None
    while True:
        page, after = await backend.search(JobFilter(), 7, after)
        found += [_key(job) for job in page]
        if after is None:
            return found


async def _check(backend: MemoryBackend, ids: list[str]) -> None:
    stored = [job for job in [await backend.get(job_id) for job_id in ids] if job is not None]
    assert await _search_all(backend) == sorted((_key(job) for job in stored), reverse=True)
    for queue in QUEUES:
        for state in (SUCCEEDED,):
            page, _ = await backend.search(JobFilter(states=(state,), queue=queue), 1000)
            assert sorted(job.id for job in page) == sorted(
                job.id for job in stored if job.queue == queue and job.state == state)
    await backend.stats()  # checked against a count of every job (CHECK_STATS)
    # No time is left behind with no ids (the store would grow with every batch).
    indexes = [*backend._live_keys.values(), *backend._done_keys.values()]
    assert all(ids for index in indexes for ids in index.ids.values())


@settings(max_examples=40, deadline=None)
@given(
    batches=st.lists(st.lists(st.tuples(st.sampled_from(QUEUES), st.booleans()), min_size=1, max_size=12),
                     min_size=1, max_size=4),
    groups=st.lists(st.tuples(st.integers(1, 9), st.sampled_from(["succeed", "retry", "dead", "stale"])),
                    min_size=1, max_size=8),
    order=st.randoms(use_true_random=False),
)
def test_successes_filed_per_call(batches: list[list[tuple[str, bool]]], groups: list[tuple[int, str]],
                                  order: object) -> None:
    async def run() -> None:
        backend = MemoryBackend("memory://", BackendOptions(result_ttl=0.05))
        ids: list[str] = []
        for n, batch in enumerate(batches):
            made = new_job_ids(len(batch))
            # A unique key sends that job down the per-job path beside the plain ones.
            await backend.enqueue_many([_new(i, q, f"k{n}-{k}" if u else None)
                                        for k, (i, (q, u)) in enumerate(zip(made, batch))])
            ids += made
            await asyncio.sleep(0.001)  # the next batch gets a later enqueue time
        claims = await backend.claim(list(QUEUES), len(ids), 30.0)
        assert len(claims) == len(ids)
        order.shuffle(claims)  # type: ignore[attr-defined]
        await _check(backend, ids)
        for size, outcome in groups:
            group, claims = claims[:size], claims[size:]
            if not group:
                break
            kind = {"succeed": AckKind.SUCCEED, "retry": AckKind.RETRY, "dead": AckKind.DEAD,
                    "stale": AckKind.SUCCEED}[outcome]
            token = 0 if outcome == "stale" else None
            acks = [Ack(c.id, c.token if token is None else token, int(kind), b"r", 100.0) for c in group]
            assert await backend.ack_many(acks) == [outcome != "stale"] * len(group)
            await _check(backend, ids)
            await asyncio.sleep(0.001)
        succeeded = [j for j in [await backend.get(i) for i in ids] if j is not None and j.state == SUCCEEDED]
        await asyncio.sleep(0.06)
        assert await backend.cleanup() >= len(succeeded)
        assert [await backend.get(job.id) for job in succeeded] == [None] * len(succeeded)
        await _check(backend, ids)

    asyncio.run(run())


def test_cleanup_skips_a_job_deleted_since() -> None:
    """An id in a per-call retention entry whose job is gone is not counted again."""
    async def run() -> None:
        backend = MemoryBackend("memory://", BackendOptions(result_ttl=0.05))
        ids = new_job_ids(3)
        await backend.enqueue_many([_new(i, "a") for i in ids])
        claims = await backend.claim(["a"], 3, 30.0)
        await backend.ack_many([Ack(c.id, c.token, int(AckKind.SUCCEED), b"r") for c in claims])
        assert await backend.cleanup() == 0
        assert await backend.delete_jobs([ids[1]]) == [True]
        await _check(backend, ids)
        await asyncio.sleep(0.06)
        assert await backend.cleanup() == 2
        assert [await backend.get(i) for i in ids] == [None] * 3
        await _check(backend, ids)

    asyncio.run(run())
