"""Limits on Redis: counted per (queue, key) inside the claim script, under concurrent claimers."""

from __future__ import annotations

import asyncio
import collections
from typing import Any

from fastjobs._core import QUEUED
from fastjobs.backends import Ack, AckKind, DependencyMode, Limit, NewJob
from fastjobs.job import new_job_id
from tests.backends import unique_prefix

LEASE = 30.0


def job(limit: Limit | None = None, queue: str = "q", priority: int = 0, parents: tuple[str, ...] = ()) -> NewJob:
    jid = new_job_id()
    return NewJob(jid, queue, priority, 0.0, 3, jid.encode(), None, 0.0, parents, DependencyMode.SUCCEEDED, limit)


async def test_concurrent_claimers_never_exceed_the_cap(redis_url: str, open_backend: Any) -> None:
    prefix = unique_prefix()
    backends = [await open_backend(redis_url, prefix=prefix) for _ in range(4)]
    jobs = [job(Limit("tenant:1", concurrency=3)) for _ in range(60)] + [job() for _ in range(20)]
    await backends[0].enqueue_many(jobs)
    limited = {j.id for j in jobs[:60]}
    active: set[str] = set()
    peak = 0
    done: list[str] = []

    async def worker(b: Any) -> None:
        nonlocal peak
        idle = 0
        while idle < 20:
            claims = await b.claim(["q"], 4, LEASE)
            if not claims:
                idle += 1
                await asyncio.sleep(0.005)
                continue
            idle = 0
            active.update(c.id for c in claims if c.id in limited)
            peak = max(peak, len(active))
            await asyncio.sleep(0.002)
            active.difference_update(c.id for c in claims)
            assert all(await b.ack_many([Ack(c.id, c.token, AckKind.SUCCEED, b"\xc0") for c in claims]))
            done.extend(c.id for c in claims)

    await asyncio.gather(*(worker(b) for b in backends))
    assert sorted(done) == sorted(j.id for j in jobs)  # each exactly once
    assert 1 <= peak <= 3


async def test_concurrent_claimers_never_exceed_the_rate_window(redis_url: str, open_backend: Any) -> None:
    prefix = unique_prefix()
    backends = [await open_backend(redis_url, prefix=prefix) for _ in range(4)]
    per, rate = 0.3, 4
    jobs = [job(Limit("api", rate=rate, per=per)) for _ in range(14)]
    await backends[0].enqueue_many(jobs)
    claimed: list[str] = []

    async def worker(b: Any) -> None:
        while len(claimed) < len(jobs):
            claims = await b.claim(["q"], 3, LEASE)
            claimed.extend(c.id for c in claims)
            if claims:
                await b.ack_many([Ack(c.id, c.token, AckKind.SUCCEED, b"\xc0") for c in claims])
            await asyncio.sleep(0.01)

    await asyncio.wait_for(asyncio.gather(*(worker(b) for b in backends)), 20.0)
    assert sorted(claimed) == sorted(j.id for j in jobs)
    # Lease times are Redis' own (started_at, set by the claim script): no
    # window of `per` seconds holds more than `rate` of them.
    started = sorted([(await backends[0].get(j.id)).started_at for j in jobs])  # type: ignore[union-attr]
    for i in range(len(started) - rate):
        assert started[i + rate] - started[i] >= per - 1e-6, started


async def test_a_saturated_key_does_not_block_the_jobs_behind_it(redis_url: str, open_backend: Any) -> None:
    backend = await open_backend(redis_url)
    # More held jobs than one claim call skips (1000): the claim goes on.
    limited = [job(Limit("bulk", concurrency=1)) for _ in range(2500)]
    plain = [job() for _ in range(5)]
    await backend.enqueue_many([*limited, *plain])
    claims = await backend.claim(["q"], 10, LEASE)
    assert [c.id for c in claims] == [limited[0].id, *(p.id for p in plain)]
    stats = (await backend.stats())["q"]
    assert (stats["queued"], stats["active"]) == (2499, 6)
    queued = await backend.list_jobs(QUEUED, "q", limit=5000)
    assert len(queued) == 2499 and {j.limit_key for j in queued} == {"bulk"}
    # Later claims do not walk the parked jobs again: they answer at once with nothing.
    assert await backend.claim(["q"], 10, LEASE) == []
    # A slot frees: the next in the key's order goes, and only one.
    await backend.ack_many([Ack(limited[0].id, claims[0].token, AckKind.SUCCEED, b"\xc0")])
    assert [c.id for c in await backend.claim(["q"], 10, LEASE)] == [limited[1].id]


async def test_cancelling_parked_and_unparked_jobs_keeps_the_key_moving(redis_url: str, open_backend: Any) -> None:
    backend = await open_backend(redis_url)
    jobs = [job(Limit("k", concurrency=1)) for _ in range(4)]
    await backend.enqueue_many(jobs)
    first = await backend.claim(["q"], 10, LEASE)
    assert [c.id for c in first] == [jobs[0].id]
    assert await backend.cancel(jobs[2].id) is True  # parked
    assert (await backend.stats())["q"]["queued"] == 2
    assert await backend.cancel(jobs[0].id) is True  # active: frees the slot
    assert [c.id for c in await backend.claim(["q"], 10, LEASE)] == [jobs[1].id]
    assert await backend.claim(["q"], 10, LEASE) == []


async def test_every_key_shares_the_queue_hash_tag(redis_url: str, open_backend: Any) -> None:
    """Cluster safety: whatever the features touch lives under the queue's tag."""
    await _exercise_and_check_keys(redis_url, open_backend)


async def test_features_on_a_real_cluster(cluster_url: str, open_backend: Any) -> None:
    await _exercise_and_check_keys(cluster_url, open_backend)


async def _exercise_and_check_keys(url: str, open_backend: Any) -> None:
    import redis.asyncio as aioredis
    from redis.asyncio.cluster import RedisCluster

    backend = await open_backend(url)
    for queue in ("q", "other"):
        parent = job(queue=queue)
        limited = [job(Limit("t:{x}|y", concurrency=1, rate=5, per=60.0), queue=queue) for _ in range(3)]
        child = job(queue=queue, parents=(parent.id,))
        dying = NewJob(new_job_id(), queue, 0, 0.0, 1, b"x", None, 0.0, (), 0, None)
        grandchild = job(queue=queue, parents=(dying.id,))
        await backend.enqueue_many([parent, *limited, child, dying, grandchild])
        claims = await backend.claim([queue], 10, 0.05)
        assert {c.id for c in claims} == {parent.id, limited[0].id, dying.id}
        await asyncio.sleep(0.1)
        claims = await backend.claim([queue], 10, LEASE)  # recovers: dying is dead, grandchild cancelled
        assert {c.id for c in claims} == {parent.id, limited[1].id}
        await backend.ack_many([Ack(c.id, c.token, AckKind.SUCCEED, b"\xc0") for c in claims])
        await backend.cancel(limited[2].id)
        # limited[0] came back from its expired lease behind limited[1]; its slot is free now.
        assert {c.id for c in await backend.claim([queue], 10, LEASE)} == {child.id, limited[0].id}
        await backend.wait([queue], 0.05)
        await backend.stats()
        assert (await backend.get(grandchild.id)).state == 6  # type: ignore[union-attr]
    if backend.cluster:
        client: Any = RedisCluster.from_url(url)
    else:
        client = aioredis.Redis.from_url(url)
    try:
        keys = [k.decode() async for k in client.scan_iter(match=f"{backend.prefix}:*")]
    finally:
        await client.aclose()
    assert any(":lq:" in k or ":lr:" in k for k in keys) and any(":d:" in k for k in keys)
    for k in keys:
        if k == f"{backend.prefix}:queues":
            continue
        assert k.startswith((f"{backend.prefix}:{{q}}:", f"{backend.prefix}:{{other}}:")), k


async def test_limit_counts_per_queue_and_key_with_parked_dependants(redis_url: str, open_backend: Any) -> None:
    backend = await open_backend(redis_url)
    parent = job()
    children = [job(Limit("t", concurrency=1), parents=(parent.id,)) for _ in range(3)]
    await backend.enqueue_many([parent, *children])
    claims = await backend.claim(["q"], 10, LEASE)
    await backend.ack_many([Ack(parent.id, claims[0].token, AckKind.SUCCEED, b"\xc0")])
    # Released children keep their order and their limit.
    assert [c.id for c in await backend.claim(["q"], 10, LEASE)] == [children[0].id]
    counts = collections.Counter({k: v for k, v in (await backend.stats())["q"].items() if v})
    assert counts == {"queued": 2, "active": 1, "succeeded": 1}
