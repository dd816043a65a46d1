"""Dependencies (``NewJob.depends_on`` / ``after``), the mechanism under chains and batches, on every backend."""

from __future__ import annotations

import asyncio
import time

import pytest

from fastjobs._core import ACTIVE, CANCELLED, DEAD, QUEUED, SCHEDULED, SUCCEEDED, WAITING
from fastjobs.backends import Ack, AckKind, Backend, DependencyMode, NewJob
from fastjobs.errors import DependencyError
from fastjobs.job import error_record, new_job_id
from tests.contract.conftest import MakeBackend, clients

LEASE = 30.0


def job(*parents: NewJob | str, after: int = DependencyMode.SUCCEEDED, queue: str = "q", priority: int = 0,
        delay: float = 0.0, max_attempts: int = 3) -> NewJob:
    jid = new_job_id()
    ids = tuple(p if isinstance(p, str) else p.id for p in parents)
    return NewJob(jid, queue, priority, delay, max_attempts, jid.encode(), None, 0.0, ids, int(after), None)


async def run(backend: Backend, j: NewJob, kind: AckKind = AckKind.SUCCEED, queues: tuple[str, ...] = ("q",)) -> None:
    """Claim ``j`` (it must be the next ready job) and ack it with ``kind``."""
    claims = await backend.claim(list(queues), 1, LEASE)
    assert [c.id for c in claims] == [j.id]
    payload = b"\xc0" if kind == AckKind.SUCCEED else error_record(claims[0].attempt, "Boom", "failed")
    assert await backend.ack_many([Ack(j.id, claims[0].token, int(kind), payload)]) == [True]


async def state(backend: Backend, j: NewJob) -> int:
    stored = await backend.get(j.id)
    assert stored is not None
    return stored.state


async def test_child_waits_for_its_parent_then_runs(backend: Backend) -> None:
    parent = job()
    child = job(parent)
    assert await backend.enqueue_many([parent, child]) == [parent.id, child.id]
    stored = await backend.get(child.id)
    assert stored is not None
    assert (stored.state, stored.parents, stored.pending_parents, stored.failed_parents) == (
        WAITING, (parent.id,), 1, 0
    )
    assert (await backend.stats())["q"]["waiting"] == 1
    assert [s.id for s in await backend.list_jobs(WAITING, "q")] == [child.id]
    # Only the parent is claimable while the child waits.
    claims = await backend.claim(["q"], 10, LEASE)
    assert [c.id for c in claims] == [parent.id]
    assert await backend.claim(["q"], 10, LEASE) == []
    await backend.ack_many([Ack(parent.id, claims[0].token, AckKind.SUCCEED, b"\x01")])
    stored = await backend.get(child.id)
    assert stored is not None and (stored.state, stored.pending_parents) == (QUEUED, 0)
    await run(backend, child)
    assert await state(backend, child) == SUCCEEDED


async def test_child_of_two_parents_waits_for_both(backend: Backend) -> None:
    a, b = job(), job()
    child = job(a, b)
    await backend.enqueue_many([a, b, child])
    await run(backend, a)
    stored = await backend.get(child.id)
    assert stored is not None and (stored.state, stored.pending_parents) == (WAITING, 1)
    await run(backend, b)
    assert await state(backend, child) == QUEUED


async def test_a_dead_parent_cancels_the_chain_below_it(backend: Backend) -> None:
    a = job()
    b = job(a)
    c = job(b)
    unrelated = job()
    await backend.enqueue_many([a, b, c, unrelated])
    await run(backend, a, AckKind.DEAD)
    for j in (b, c):
        stored = await backend.get(j.id)
        assert stored is not None and stored.state == CANCELLED, j
        assert stored.finished_at is not None
    stored = await backend.get(b.id)
    assert stored is not None and stored.failed_parents == 1
    assert await state(backend, a) == DEAD
    # Nothing of the chain is left to claim; the unrelated job is.
    assert [x.id for x in await backend.claim(["q"], 10, LEASE)] == [unrelated.id]
    assert (await backend.stats())["q"]["waiting"] == 0


async def test_cancelling_a_parent_cancels_its_dependants(backend: Backend) -> None:
    a = job()
    b = job(a)
    await backend.enqueue_many([a, b])
    assert await backend.cancel(a.id) is True
    assert await state(backend, b) == CANCELLED


async def test_cancelling_a_waiting_job_cancels_its_own_dependants(backend: Backend) -> None:
    a = job()
    b = job(a)
    c = job(b)
    await backend.enqueue_many([a, b, c])
    assert await backend.cancel(b.id) is True
    assert await state(backend, c) == CANCELLED
    # The parent still runs; finishing it touches nothing that was cancelled.
    await run(backend, a)
    assert (await state(backend, b), await state(backend, c)) == (CANCELLED, CANCELLED)


async def test_a_parent_dying_at_lease_recovery_cascades(backend: Backend) -> None:
    a = job(max_attempts=1)
    b = job(a)
    c = job(b)
    await backend.enqueue_many([a, b, c])
    assert [x.id for x in await backend.claim(["q"], 1, 0.2)] == [a.id]
    await asyncio.sleep(0.35)
    assert await backend.recover() == 1
    assert await state(backend, a) == DEAD
    assert (await state(backend, b), await state(backend, c)) == (CANCELLED, CANCELLED)


async def test_a_retried_parent_keeps_its_child_waiting(backend: Backend) -> None:
    a = job()
    b = job(a)
    await backend.enqueue_many([a, b])
    claims = await backend.claim(["q"], 1, LEASE)
    await backend.ack_many([Ack(a.id, claims[0].token, AckKind.RETRY, error_record(1, "X", "again"), 0.0)])
    assert await state(backend, b) == WAITING
    await run(backend, a)
    assert await state(backend, b) == QUEUED


async def test_finished_mode_runs_after_any_outcome_and_counts_failures(backend: Backend) -> None:
    ok, bad = job(), job()
    always = job(ok, bad, after=DependencyMode.FINISHED)
    await backend.enqueue_many([ok, bad, always])
    await run(backend, ok)
    await run(backend, bad, AckKind.DEAD)
    stored = await backend.get(always.id)
    assert stored is not None
    assert (stored.state, stored.pending_parents, stored.failed_parents) == (QUEUED, 0, 1)


async def test_failed_mode_runs_only_if_a_parent_failed(backend: Backend) -> None:
    a, b = job(), job()
    on_failure = job(a, b, after=DependencyMode.FAILED)
    on_success = job(a, b)
    await backend.enqueue_many([a, b, on_failure, on_success])
    await run(backend, a)
    assert await state(backend, on_failure) == WAITING  # b may still fail
    await run(backend, b)
    assert await state(backend, on_failure) == CANCELLED
    assert await state(backend, on_success) == QUEUED

    c = job()
    catch = job(c, after=DependencyMode.FAILED)
    then = job(c)
    await backend.enqueue_many([c, catch, then])
    await run(backend, on_success)
    await run(backend, c, AckKind.DEAD)
    stored = await backend.get(catch.id)
    assert stored is not None and (stored.state, stored.failed_parents) == (QUEUED, 1)
    assert await state(backend, then) == CANCELLED


async def test_parents_already_finished_resolve_the_child_at_enqueue(backend: Backend) -> None:
    done, dead = job(), job()
    await backend.enqueue_many([done, dead])
    await run(backend, done)
    await run(backend, dead, AckKind.DEAD)
    after_done = job(done)
    after_dead = job(dead)
    finally_dead = job(done, dead, after=DependencyMode.FINISHED)
    catch_done = job(done, after=DependencyMode.FAILED)
    await backend.enqueue_many([after_done, after_dead, finally_dead, catch_done])
    assert await state(backend, after_done) == QUEUED
    assert await state(backend, after_dead) == CANCELLED
    assert await state(backend, finally_dead) == QUEUED
    assert await state(backend, catch_done) == CANCELLED
    stored = await backend.get(finally_dead.id)
    assert stored is not None and (stored.pending_parents, stored.failed_parents) == (0, 1)


async def test_unknown_parent_is_refused_and_nothing_is_stored(backend: Backend) -> None:
    ok = job()
    orphan = job("no-such-job")
    with pytest.raises(DependencyError) as caught:
        await backend.enqueue_many([ok, orphan])
    assert caught.value.parent == "no-such-job" and caught.value.job_id == orphan.id
    assert "does not exist" in str(caught.value)
    assert await backend.get(ok.id) is None and await backend.get(orphan.id) is None
    assert await backend.claim(["q"], 10, LEASE) == []


async def test_a_parent_later_in_the_same_batch_counts(backend: Backend) -> None:
    parent = job()
    child = job(parent)
    await backend.enqueue_many([child, parent])
    assert await state(backend, child) == WAITING
    await run(backend, parent)
    assert await state(backend, child) == QUEUED


async def test_a_released_childs_delay_counts_from_its_release(backend: Backend) -> None:
    parent = job()
    child = job(parent, delay=0.6)
    await backend.enqueue_many([parent, child])
    await asyncio.sleep(0.4)
    await run(backend, parent)
    assert await state(backend, child) == SCHEDULED
    await asyncio.sleep(0.4)  # 0.8 s after the enqueue, 0.4 s after the release
    assert await backend.claim(["q"], 10, LEASE) == []
    await asyncio.sleep(0.35)
    assert [c.id for c in await backend.claim(["q"], 10, LEASE)] == [child.id]


async def test_released_children_keep_priority_order(backend: Backend) -> None:
    parent = job()
    low = job(parent, priority=0)
    high = job(parent, priority=9)
    plain = job(priority=5)
    await backend.enqueue_many([parent, low, high])
    await run(backend, parent)
    await backend.enqueue_many([plain])
    assert [c.id for c in await backend.claim(["q"], 10, LEASE)] == [high.id, plain.id, low.id]


async def test_retrying_a_dead_parent_does_not_revive_its_dependants(backend: Backend) -> None:
    a = job()
    b = job(a)
    await backend.enqueue_many([a, b])
    await run(backend, a, AckKind.DEAD)
    assert await backend.retry_dead(a.id) is True
    await run(backend, a)
    assert await state(backend, b) == CANCELLED


async def test_a_release_wakes_an_idle_waiter(backend: Backend) -> None:
    parent = job()
    child = job(parent)
    await backend.enqueue_many([parent, child])
    claims = await backend.claim(["q"], 1, LEASE)
    waiter = asyncio.ensure_future(backend.wait(["q"], 5.0))
    await asyncio.sleep(0.2)
    assert not waiter.done(), "wait returned although only a waiting job was left"
    started = time.monotonic()
    await backend.ack_many([Ack(parent.id, claims[0].token, AckKind.SUCCEED, b"\xc0")])
    await asyncio.wait_for(waiter, 2.0)
    assert time.monotonic() - started < 1.0


async def test_concurrent_parent_acks_release_the_child_once(make_backend: MakeBackend, backend_kind: str) -> None:
    backends = await clients(make_backend, backend_kind, 4)
    parents = [job() for _ in range(4)]
    child = job(*parents)
    await backends[0].enqueue_many([*parents, child])
    claims = [await b.claim(["q"], 1, LEASE) for b in backends]
    assert sorted(c[0].id for c in claims) == sorted(p.id for p in parents)
    await asyncio.gather(*(
        b.ack_many([Ack(c[0].id, c[0].token, AckKind.SUCCEED, b"\xc0")]) for b, c in zip(backends, claims)
    ))
    stored = await backends[0].get(child.id)
    assert stored is not None and (stored.state, stored.pending_parents) == (QUEUED, 0)
    assert [c.id for c in await backends[1].claim(["q"], 10, LEASE)] == [child.id]
    assert await backends[2].claim(["q"], 10, LEASE) == []


async def test_many_children_of_one_parent(backend: Backend) -> None:
    parent = job()
    children = [job(parent) for _ in range(300)]
    await backend.enqueue_many([parent, *children])
    await run(backend, parent)
    claimed = [c.id for c in await backend.claim(["q"], 1000, LEASE)]
    assert sorted(claimed) == sorted(c.id for c in children)
    stored = await backend.get(children[-1].id)
    assert stored is not None and stored.state == ACTIVE


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_random_graphs_end_as_the_rules_say(backend: Backend, seed: int) -> None:
    """Random DAGs, modes and outcomes, run to the end, against a model of the rules."""
    import random

    rng = random.Random(seed)
    jobs: list[NewJob] = []
    for i in range(40):
        parents = rng.sample(jobs, k=min(len(jobs), rng.choice([0, 0, 1, 2, 3])))
        after = rng.choice([DependencyMode.SUCCEEDED, DependencyMode.SUCCEEDED, DependencyMode.FINISHED, DependencyMode.FAILED])
        jobs.append(job(*parents, after=after, priority=rng.randint(0, 3)))
    outcome = {j.id: rng.choice([AckKind.SUCCEED, AckKind.SUCCEED, AckKind.DEAD]) for j in jobs}
    # Enqueue in a few batches, each a prefix-closed slice, shuffled inside (parents may come later in a batch).
    cut = sorted(rng.sample(range(1, len(jobs)), 3))
    for start, end in zip([0, *cut], [*cut, len(jobs)]):
        part = jobs[start:end]
        rng.shuffle(part)
        await backend.enqueue_many(part)

    expected: dict[str, int] = {}
    for j in jobs:  # parents come before children in ``jobs``
        failed = sum(expected[p] != SUCCEEDED for p in j.depends_on)
        if (j.after == DependencyMode.SUCCEEDED and failed) or (j.after == DependencyMode.FAILED and not failed and j.depends_on):
            expected[j.id] = CANCELLED
        else:
            expected[j.id] = SUCCEEDED if outcome[j.id] == AckKind.SUCCEED else DEAD

    finished: dict[str, int] = {}
    for _ in range(100):
        claims = await backend.claim(["q"], rng.randint(1, 5), LEASE)
        if not claims:
            break
        for c in claims:
            parents = next(j for j in jobs if j.id == c.id).depends_on
            assert all(p in finished for p in parents), "a job ran before its parents finished"
        acks = [Ack(c.id, c.token, int(outcome[c.id]), b"\xc0" if outcome[c.id] == AckKind.SUCCEED
                    else error_record(c.attempt, "Boom", "x")) for c in claims]
        assert await backend.ack_many(acks) == [True] * len(acks)
        for c in claims:
            finished[c.id] = SUCCEEDED if outcome[c.id] == AckKind.SUCCEED else DEAD
        for j in jobs:
            if j.id not in finished and await state(backend, j) == CANCELLED:
                finished[j.id] = CANCELLED
    actual = {j.id: await state(backend, j) for j in jobs}
    assert actual == expected
