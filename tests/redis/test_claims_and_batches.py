"""Claims that skip leftovers and refill, batches naming a job twice, and what goes with them:
unique keys of dead-lettered jobs, the Cluster queue registry."""

from __future__ import annotations

import asyncio
import os

import pytest
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

import fastjobs
from fastjobs._core import DEAD
from fastjobs.backends import Ack, AckKind, Backend, NewJob
from fastjobs.backends.redis import SCRIPTS, RedisBackend
from fastjobs.backends.redis.connection import pack_acks
from fastjobs.job import LEASE_EXPIRED_MESSAGE, new_job_id
from tests.backends import unique_prefix
from tests.redis.conftest import counts
from tests.redis.servers import RedisServer

LEASE = 30.0


async def cancel_all(backend: Backend, ids: list[str]) -> None:
    for i in range(0, len(ids), 50):  # within the connection pool
        assert all(await asyncio.gather(*(backend.cancel(j) for j in ids[i : i + 50])))


def new(queue: str = "q", unique_key: str | None = None) -> NewJob:
    return NewJob(new_job_id(), queue, 0, 0.0, 3, b"x", unique_key)


async def test_a_claim_refills_the_slots_of_skipped_entries(server: RedisServer, open_backend) -> None:  # type: ignore[no-untyped-def]
    """Cancelled jobs' leftovers and stray entries for a job (one of them named twice) are
    skipped, and the claim takes the next entries in their place; no job is leased twice."""
    backend: RedisBackend = await open_backend(server.url)
    cancelled = [new() for _ in range(4)]
    a, b = new(), new()
    await backend.enqueue_many([*cancelled, a, b])
    for j in cancelled:
        assert await backend.cancel(j.id)
    admin = server.client()
    try:
        # Stray entries for `a` ahead of everything (the `ready` ZSET merges in by seq).
        base = f"{backend.prefix}:{{q}}:"
        admin.zadd(base + "ready", {f"{n:016d}{a.id}".encode(): 0 for n in range(3)})
    finally:
        admin.close()
    claims = await backend.claim(["q"], 2, LEASE)
    assert [c.id for c in claims] == [a.id, b.id]
    assert await backend.claim(["q"], 10, LEASE) == []
    assert await backend.ack_many([Ack(c.id, c.token, AckKind.SUCCEED) for c in claims]) == [True, True]
    stats = (await backend.stats())["q"]
    assert (stats["succeeded"], stats["active"], stats["queued"]) == (2, 0, 0)


async def test_a_burst_worker_gets_past_a_pile_of_cancelled_jobs(server: RedisServer) -> None:
    """More leftovers than one claim call skips (MAINTENANCE_LIMIT, 1000): the backend calls
    again, so the claim never comes back empty while jobs are ready and the burst finishes them."""
    app = fastjobs.App(server.url, prefix=unique_prefix())
    done: list[int] = []

    @app.task()
    async def work(n: int) -> None:
        done.append(n)

    try:
        doomed = await app.enqueue_many([work.call(-1) for _ in range(1200)])
        await work.enqueue(1)
        await work.enqueue(2)
        backend = await app.backend()
        await cancel_all(backend, [h.id for h in doomed])
        worker = app.worker(["default"], burst=True, handle_signals=False)
        await asyncio.wait_for(worker.run(), 30)
        assert sorted(done) == [1, 2]
        c = await counts(app)
        assert (c["succeeded"], c["queued"], c["cancelled"]) == (2, 0, 1200)
    finally:
        await app.close()


async def test_one_claim_call_skips_at_most_its_budget_and_says_so(server: RedisServer, open_backend) -> None:  # type: ignore[no-untyped-def]
    backend: RedisBackend = await open_backend(server.url)
    doomed = [new() for _ in range(1001)]
    last = new()
    await backend.enqueue_many([*doomed, last])
    await cancel_all(backend, [j.id for j in doomed])
    keys = backend._queue("q").claim
    args = (5, LEASE, 0, LEASE_EXPIRED_MESSAGE)
    first = await backend._eval(SCRIPTS["claim"], keys, args)
    assert first == [1, 0]  # 1000 leftovers skipped: call again
    second = await backend._eval(SCRIPTS["claim"], keys, args)
    assert second[:3] == [0, 1, last.id.encode()]


async def test_a_replayed_ack_batch_naming_a_job_twice_answers_as_the_first_time(server: RedisServer, open_backend) -> None:  # type: ignore[no-untyped-def]
    """A retried call (lost reply, same nonce) reports what the first one did: the repeat stale."""
    backend: RedisBackend = await open_backend(server.url)
    x, y = new(), new()
    await backend.enqueue_many([x, y])
    cx, cy = await backend.claim(["q"], 2, 0.4)
    acks = [Ack(cx.id, cx.token, AckKind.SUCCEED), Ack(cx.id, cx.token, AckKind.SUCCEED)]
    args = (os.urandom(8).hex(), 60.0, 60.0, b"", b"", pack_acks(acks))
    keys = backend._queue("q").ack
    assert await backend._eval(SCRIPTS["ack"], keys, args) == [1, 0]
    assert await backend._eval(SCRIPTS["ack"], keys, args) == [1, 0]
    await asyncio.sleep(0.6)
    assert [(c.id, c.attempt) for c in await backend.claim(["q"], 10, LEASE)] == [(y.id, 2)]


async def test_a_job_dead_lettered_for_a_missing_body_gives_up_its_unique_key(server: RedisServer, open_backend) -> None:  # type: ignore[no-untyped-def]
    for dead_ttl in (60.0, 0.0):
        backend: RedisBackend = await open_backend(server.url, dead_ttl=dead_ttl)
        bad = new(unique_key="report:7")
        assert await backend.enqueue_many([bad]) == [bad.id]
        admin = server.client()
        try:
            admin.delete(f"{backend.prefix}:{{q}}:b:{bad.id}")
        finally:
            admin.close()
        assert await backend.claim(["q"], 10, LEASE) == []
        stored = await backend.get(bad.id)
        assert (stored.state if stored else None) == (DEAD if dead_ttl else None)
        again = new(unique_key="report:7")
        assert await backend.enqueue_many([again]) == [again.id], dead_ttl
        assert [c.id for c in await backend.claim(["q"], 10, LEASE)] == [again.id]


async def test_cluster_registry_is_added_to_once_then_again_after_a_failure_or_a_while(cluster_url: str, open_backend) -> None:  # type: ignore[no-untyped-def]
    backend: RedisBackend = await open_backend(cluster_url)
    assert backend.cluster
    admin = RedisCluster.from_url(cluster_url)
    registry = backend._registry
    try:
        await backend.enqueue_many([new("a")])
        assert await admin.smembers(registry) == {b"a"}
        # Known now: not sent again (a registry lost meanwhile stays lost for a while).
        await admin.delete(registry)
        await backend.enqueue_many([new("a")])
        assert await admin.exists(registry) == 0
        # A failed SADD is not remembered: the next enqueue sends it again.
        await admin.set(registry, b"not a set")
        with pytest.raises(fastjobs.BackendError) as refused:
            await backend.enqueue_many([new("b")])
        assert isinstance(refused.value.__cause__, ResponseError)
        await admin.delete(registry)
        await backend.enqueue_many([new("b")])
        assert await admin.smembers(registry) == {b"b"}
        # After _REGISTRY_REFRESH seconds a known queue is added again.
        backend._registered["a"] -= 3600
        await backend.enqueue_many([new("a")])
        assert await admin.smembers(registry) == {b"a", b"b"}
    finally:
        await admin.aclose()
