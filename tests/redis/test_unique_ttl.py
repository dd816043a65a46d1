"""unique_ttl on Redis: the window is kept in the queue's slot, ends by Redis time, and leaves nothing behind."""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis

from fastjobs._core import DEAD
from fastjobs.backends import Ack, AckKind, NewJob
from fastjobs.job import error_record, new_job_id
from tests.backends import unique_prefix


def _job(key: str | None, ttl: float = 0.0, max_attempts: int = 3, queue: str = "q") -> NewJob:
    return NewJob(new_job_id(), queue, 0, 0.0, max_attempts, b"x", key, ttl)


async def _succeed(backend: Any, queue: str = "q") -> list[str]:
    claims = await backend.claim([queue], 100, 30.0)
    assert all(await backend.ack_many([Ack(c.id, c.token, AckKind.SUCCEED) for c in claims]))
    return [c.id for c in claims]


async def test_concurrent_enqueues_after_the_window_take_the_key_once(redis_url: str, open_backend: Any) -> None:
    prefix = unique_prefix()
    backends = [await open_backend(redis_url, prefix=prefix) for _ in range(4)]
    first = _job("k", 0.3)
    await backends[0].enqueue_many([first])
    await _succeed(backends[0])
    during = await asyncio.gather(*(b.enqueue_many([_job("k", 0.3)]) for b in backends for _ in range(5)))
    assert {ids[0] for ids in during} == {first.id}
    await asyncio.sleep(0.4)
    after = await asyncio.gather(*(b.enqueue_many([_job("k", 0.3)]) for b in backends for _ in range(5)))
    winners = {ids[0] for ids in after}
    assert len(winners) == 1 and first.id not in winners
    assert len(await backends[0].claim(["q"], 100, 30.0)) == 1


async def test_a_revived_dead_job_keeps_its_window(redis_url: str, open_backend: Any) -> None:
    backend = await open_backend(redis_url)
    j = _job("k", 60.0, max_attempts=1)
    await backend.enqueue_many([j])
    (c,) = await backend.claim(["q"], 1, 30.0)
    await backend.ack_many([Ack(c.id, c.token, AckKind.DEAD, error_record(1, "ValueError", "boom"))])
    assert (await backend.get(j.id)).state == DEAD  # type: ignore[union-attr]
    assert await backend.retry_dead(j.id) is True
    await _succeed(backend)
    assert await backend.enqueue_many([_job("k")]) == [j.id]  # held for its 60 s window
    assert await backend.retry_dead(j.id) is False  # not dead


async def test_retry_dead_takes_a_key_whose_window_ended(redis_url: str, open_backend: Any) -> None:
    backend = await open_backend(redis_url)
    dead = _job("k", max_attempts=1)
    await backend.enqueue_many([dead])
    (c,) = await backend.claim(["q"], 1, 30.0)
    await backend.ack_many([Ack(c.id, c.token, AckKind.DEAD, error_record(1, "ValueError", "boom"))])
    windowed = _job("k", 0.2)
    assert await backend.enqueue_many([windowed]) == [windowed.id]  # dead released it at once
    await _succeed(backend)
    assert await backend.retry_dead(dead.id) is False  # inside the window
    await asyncio.sleep(0.3)
    assert await backend.retry_dead(dead.id) is True
    assert await backend.enqueue_many([_job("k")]) == [dead.id]


async def test_ended_windows_are_forgotten_by_acks_and_cleanup(redis_url: str, open_backend: Any) -> None:
    prefix = unique_prefix()
    backend = await open_backend(redis_url, prefix=prefix)
    await backend.enqueue_many([_job(f"k{i}", 0.1) for i in range(50)])
    await _succeed(backend)
    client = aioredis.from_url(redis_url)
    unique, held = f"{prefix}:{{q}}:unique", f"{prefix}:{{q}}:uniqueheld"
    try:
        assert await client.hlen(unique) == 50 and await client.zcard(held) == 50
        assert not [k async for k in client.scan_iter(match=f"{prefix}:{{q}}:u:*")]  # read at success, gone
        await asyncio.sleep(0.2)
        await backend.enqueue_many([_job("next", 0.1)])
        await _succeed(backend)  # this ack frees the ended windows as it goes
        assert await client.hlen(unique) == 1 and await client.zcard(held) == 1
        await asyncio.sleep(0.2)
        await backend.cleanup()
        assert await client.hlen(unique) == 0 and await client.zcard(held) == 0
    finally:
        await client.aclose()


async def test_unique_ttl_in_cluster_spans_masters(cluster_url: str, open_backend: Any) -> None:
    backend = await open_backend(cluster_url)
    queues = [f"q{i}" for i in range(6)]
    first = [_job("k", 0.3, queue=q) for q in queues]
    assert await backend.enqueue_many(first) == [j.id for j in first]
    for q in queues:
        await _succeed(backend, q)
    assert await backend.enqueue_many([_job("k", queue=q) for q in queues]) == [j.id for j in first]
    await asyncio.sleep(0.4)
    later = [_job("k", queue=q) for q in queues]
    assert await backend.enqueue_many(later) == [j.id for j in later]
