"""Dependencies on Redis: parents share their dependant's queue (one Cluster slot), and a
finished parent updates its dependants inside the script that finishes it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from fastjobs._core import CANCELLED, DEAD, QUEUED, SUCCEEDED, WAITING
from fastjobs.backends import Ack, AckKind, DependencyMode, NewJob
from fastjobs.errors import DependencyError
from fastjobs.job import new_job_id

LEASE = 30.0


def job(*parents: NewJob | str, queue: str = "q", after: int = DependencyMode.SUCCEEDED, max_attempts: int = 3) -> NewJob:
    jid = new_job_id()
    ids = tuple(p if isinstance(p, str) else p.id for p in parents)
    return NewJob(jid, queue, 0, 0.0, max_attempts, jid.encode(), None, 0.0, ids, after, None)


async def states(backend: Any, *jobs: NewJob) -> list[int | None]:
    found = [await backend.get(j.id) for j in jobs]
    return [s.state if s is not None else None for s in found]


async def test_a_parent_in_another_queue_is_refused_with_reason_queue(redis_url: str, open_backend: Any) -> None:
    backend = await open_backend(redis_url)
    parent = job(queue="a")
    await backend.enqueue_many([parent])
    child, bystander = job(parent, queue="b"), job(queue="b")
    with pytest.raises(DependencyError) as raised:
        await backend.enqueue_many([bystander, child])
    assert (raised.value.job_id, raised.value.parent, raised.value.reason) == (child.id, parent.id, "queue")
    assert await states(backend, bystander, child) == [None, None]  # all or none
    # Same batch, other queue: refused too, before anything is sent.
    p2 = job(queue="a")
    c2 = job(p2, queue="b")
    with pytest.raises(DependencyError) as raised:
        await backend.enqueue_many([p2, c2])
    assert (raised.value.job_id, raised.value.parent, raised.value.reason) == (c2.id, p2.id, "queue")
    assert await states(backend, p2, c2) == [None, None]
    # Nowhere at all: "unknown".
    c3 = job("no-such-job", queue="b")
    with pytest.raises(DependencyError) as raised:
        await backend.enqueue_many([c3])
    assert raised.value.reason == "unknown" and raised.value.parent == "no-such-job"


async def test_a_three_level_chain_is_cancelled_when_its_root_dies_at_lease_expiry(
    redis_url: str, open_backend: Any
) -> None:
    backend = await open_backend(redis_url)
    root = job(max_attempts=1)
    child = job(root)
    grandchild = job(child)
    finally_ = job(grandchild, after=DependencyMode.FINISHED)
    await backend.enqueue_many([grandchild, finally_, child, root])  # parents later in the batch count too
    assert await states(backend, root, child, grandchild, finally_) == [QUEUED, WAITING, WAITING, WAITING]
    assert [c.id for c in await backend.claim(["q"], 10, 0.05)] == [root.id]
    await asyncio.sleep(0.1)
    # The next claim recovers the expired lease: attempts used up, so dead; the
    # chain below is cancelled in that same script, and FINISHED runs anyway.
    assert [c.id for c in await backend.claim(["q"], 10, LEASE)] == [finally_.id]
    assert await states(backend, root, child, grandchild) == [DEAD, CANCELLED, CANCELLED]
    stored = await backend.get(grandchild.id)
    assert stored is not None and stored.parents == (child.id,) and stored.failed_parents == 1
    stored = await backend.get(finally_.id)
    assert stored is not None and stored.failed_parents == 1 and stored.pending_parents == 0
    stats = (await backend.stats())["q"]
    assert (stats["waiting"], stats["cancelled"], stats["dead"], stats["active"]) == (0, 2, 1, 1)


async def test_the_recover_script_cascades_too(redis_url: str, open_backend: Any) -> None:
    backend = await open_backend(redis_url)
    root = job(max_attempts=1)
    child = job(root)
    await backend.enqueue_many([root, child])
    await backend.claim(["q"], 1, 0.05)
    await asyncio.sleep(0.1)
    assert await backend.recover() == 1
    assert await states(backend, root, child) == [DEAD, CANCELLED]


async def test_waiting_jobs_are_listed_counted_and_never_claimed(redis_url: str, open_backend: Any) -> None:
    backend = await open_backend(redis_url)
    parent = job()
    children = [job(parent) for _ in range(3)]
    await backend.enqueue_many([parent, *children])
    assert sorted(j.id for j in await backend.list_jobs(WAITING, "q")) == sorted(c.id for c in children)
    assert (await backend.stats())["q"]["waiting"] == 3
    claims = await backend.claim(["q"], 10, LEASE)
    assert [c.id for c in claims] == [parent.id]
    assert await backend.cancel(children[1].id) is True
    assert await backend.ack_many([Ack(parent.id, claims[0].token, AckKind.SUCCEED, b"\xc0")]) == [True]
    assert [c.id for c in await backend.claim(["q"], 10, LEASE)] == [children[0].id, children[2].id]
    assert await states(backend, *children) == [2, CANCELLED, 2]  # active, cancelled, active
    assert (await backend.stats())["q"]["waiting"] == 0


async def test_cleanup_drops_a_finished_parents_keys(redis_url: str, open_backend: Any) -> None:
    import redis.asyncio as aioredis

    backend = await open_backend(redis_url, result_ttl=0.0)
    parent = job()
    child = job(parent)
    await backend.enqueue_many([parent, child])
    claims = await backend.claim(["q"], 1, LEASE)
    await backend.ack_many([Ack(parent.id, claims[0].token, AckKind.SUCCEED, b"\xc0")])
    claims = await backend.claim(["q"], 1, LEASE)
    await backend.ack_many([Ack(child.id, claims[0].token, AckKind.SUCCEED, b"\xc0")])
    assert await states(backend, parent, child) == [None, None]  # result_ttl=0: deleted at ack
    client = aioredis.Redis.from_url(redis_url)
    try:
        left = [k async for k in client.scan_iter(match=f"{backend.prefix}:*:[jbrepdlcu]:*")]
    finally:
        await client.aclose()
    assert left == []
    _ = SUCCEEDED
