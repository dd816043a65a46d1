"""Rate limits and concurrency caps (``NewJob.limit``), enforced by ``claim`` on every backend."""

from __future__ import annotations

import asyncio
import time

from fastjobs._core import QUEUED
from fastjobs.backends import Ack, AckKind, Backend, Limit, NewJob
from fastjobs.job import error_record, new_job_id
from tests.contract.conftest import MakeBackend, clients

LEASE = 30.0


def job(limit: Limit | None = None, queue: str = "q", priority: int = 0, max_attempts: int = 3) -> NewJob:
    jid = new_job_id()
    return NewJob(jid, queue, priority, 0.0, max_attempts, jid.encode(), None, 0.0, (), 0, limit)


def cap(n: int, key: str = "tenant:42") -> Limit:
    return Limit(key, concurrency=n)


def rate(n: int, per: float, key: str = "send_email") -> Limit:
    return Limit(key, rate=n, per=per)


async def claim_ids(backend: Backend, n: int = 100, queues: tuple[str, ...] = ("q",), lease: float = LEASE) -> list[str]:
    return [c.id for c in await backend.claim(list(queues), n, lease)]


async def succeed(backend: Backend, job_id: str) -> None:
    stored = await backend.get(job_id)
    assert stored is not None
    assert await backend.ack_many([Ack(job_id, stored.token, AckKind.SUCCEED, b"\xc0")]) == [True]


async def test_concurrency_cap_leases_at_most_n_and_frees_a_slot_at_ack(backend: Backend) -> None:
    jobs = [job(cap(3)) for _ in range(10)]
    await backend.enqueue_many(jobs)
    first = await claim_ids(backend)
    assert first == [j.id for j in jobs[:3]]
    assert await claim_ids(backend) == []
    stored = await backend.get(jobs[3].id)
    assert stored is not None and stored.state == QUEUED and stored.limit_key == "tenant:42"
    assert (await backend.stats())["q"]["queued"] == 7
    await succeed(backend, first[0])
    assert await claim_ids(backend) == [jobs[3].id]
    assert await claim_ids(backend) == []


async def test_a_capped_key_does_not_block_other_jobs(backend: Backend) -> None:
    limited = [job(cap(1), priority=5) for _ in range(5)]
    other_key = job(cap(1, "tenant:7"))
    plain = [job() for _ in range(3)]
    await backend.enqueue_many([*limited, other_key, *plain])
    claimed = await claim_ids(backend)
    assert sorted(claimed) == sorted([limited[0].id, other_key.id, *(p.id for p in plain)])
    assert await claim_ids(backend) == []


async def test_rate_limit_is_a_sliding_window(backend: Backend) -> None:
    jobs = [job(rate(3, 0.6)) for _ in range(8)]
    await backend.enqueue_many(jobs)
    start = time.monotonic()
    assert await claim_ids(backend) == [j.id for j in jobs[:3]]
    assert await claim_ids(backend) == []
    # Acking does not give rate back: the window counts leases, not running jobs.
    for j in jobs[:3]:
        await succeed(backend, j.id)
    assert await claim_ids(backend) == []
    await asyncio.sleep(max(0.0, 0.75 - (time.monotonic() - start)))
    assert await claim_ids(backend) == [j.id for j in jobs[3:6]]
    assert await claim_ids(backend) == []


async def test_rate_and_concurrency_together(backend: Backend) -> None:
    both = Limit("api", concurrency=2, rate=3, per=60.0)
    jobs = [job(both) for _ in range(6)]
    await backend.enqueue_many(jobs)
    assert await claim_ids(backend) == [j.id for j in jobs[:2]]
    await succeed(backend, jobs[0].id)
    assert await claim_ids(backend) == [jobs[2].id]  # the third lease in the window
    await succeed(backend, jobs[1].id)
    assert await claim_ids(backend) == []  # a slot is free, the rate is used up


async def test_retries_count_against_the_rate(backend: Backend) -> None:
    j = job(rate(2, 60.0))
    other = job(rate(2, 60.0))
    await backend.enqueue_many([j, other])
    claims = await backend.claim(["q"], 1, LEASE)
    await backend.ack_many([Ack(j.id, claims[0].token, AckKind.RETRY, error_record(1, "X", "again"), 0.0)])
    # The retry's lease was the first of two in the window: one more, and no third.
    assert len(await claim_ids(backend)) == 1
    assert await claim_ids(backend) == []


async def test_limits_are_counted_per_queue_and_key(backend: Backend) -> None:
    a = [job(cap(1), queue="q") for _ in range(2)]
    b = [job(cap(1), queue="r") for _ in range(2)]
    await backend.enqueue_many([*a, *b])
    assert sorted(await claim_ids(backend, queues=("q", "r"))) == sorted([a[0].id, b[0].id])


async def test_priority_then_fifo_within_a_key(backend: Backend) -> None:
    low1, high, low2 = job(cap(1), priority=0), job(cap(1), priority=9), job(cap(1), priority=0)
    await backend.enqueue_many([low1, high, low2])
    order = []
    for _ in range(3):
        [got] = await claim_ids(backend)
        order.append(got)
        await succeed(backend, got)
    assert order == [high.id, low1.id, low2.id]


async def test_cancel_and_lease_recovery_free_a_slot(backend: Backend) -> None:
    jobs = [job(cap(1), max_attempts=5) for _ in range(3)]
    await backend.enqueue_many(jobs)
    assert await claim_ids(backend) == [jobs[0].id]
    assert await backend.cancel(jobs[0].id) is True
    assert await claim_ids(backend, lease=0.2) == [jobs[1].id]
    assert await claim_ids(backend) == []
    await asyncio.sleep(0.35)
    await backend.recover()
    # The expired lease freed its slot: one more job (the recovered one or jobs[2]), not two.
    assert len(await claim_ids(backend)) == 1
    assert await claim_ids(backend) == []


async def test_a_batch_claim_counts_its_own_leases(backend: Backend) -> None:
    jobs = [job(cap(2)) for _ in range(5)] + [job(rate(2, 60.0)) for _ in range(5)]
    await backend.enqueue_many(jobs)
    claimed = await claim_ids(backend, 100)
    assert sorted(claimed) == sorted([jobs[0].id, jobs[1].id, jobs[5].id, jobs[6].id])


async def test_wait_does_not_spin_on_jobs_held_by_a_limit(backend: Backend) -> None:
    await backend.enqueue_many([job(cap(1)) for _ in range(3)])
    assert len(await claim_ids(backend)) == 1
    started = time.monotonic()
    for _ in range(4):
        await backend.wait(["q"], 0.1)
    # Spurious wake-ups are allowed, an immediate return every time is not.
    assert time.monotonic() - started >= 0.2


async def test_a_cap_holds_across_concurrent_claimers(make_backend: MakeBackend, backend_kind: str) -> None:
    backends = await clients(make_backend, backend_kind, 4)
    await backends[0].enqueue_many([job(cap(2)) for _ in range(40)] + [job(rate(5, 60.0)) for _ in range(40)])
    running: dict[str, Backend] = {}
    leased_by_rate = leased_capped = 0
    for _ in range(6):
        batches = await asyncio.gather(*(b.claim(["q"], 10, LEASE) for b in backends))
        for b, claims in zip(backends, batches):
            for c in claims:
                stored = await b.get(c.id)
                assert stored is not None
                if stored.limit_key == "send_email":
                    leased_by_rate += 1
                else:
                    running[c.id] = b
                    leased_capped += 1
        assert len(running) <= 2
        # Finish the capped jobs so the next round may lease more.
        for job_id, b in list(running.items()):
            await succeed(b, job_id)
            del running[job_id]
    assert leased_by_rate == 5
    assert leased_capped == 12  # two per round: the cap is reached, not just respected


async def test_a_delayed_limited_job_wakes_an_idle_wait_when_due(backend: Backend) -> None:
    j = NewJob(new_job_id(), "q", 0, 0.3, 3, b"x", None, 0.0, (), 0, cap(1))
    await backend.enqueue_many([j])
    started = time.monotonic()
    await backend.wait(["q"], 3.0)
    assert time.monotonic() - started < 1.5, "wait() ignored the limited job falling due"
    await asyncio.sleep(max(0.0, 0.35 - (time.monotonic() - started)))
    assert await claim_ids(backend) == [j.id]


async def test_priority_holds_across_limited_and_plain_jobs(backend: Backend) -> None:
    plain = [job() for _ in range(3)]
    urgent = job(cap(5), priority=10)
    await backend.enqueue_many([*plain, urgent])
    # An uncapped priority-10 job must not wait behind priority-0 jobs (with a steady
    # stream of plain jobs it would never run).
    assert await claim_ids(backend, 1) == [urgent.id]
