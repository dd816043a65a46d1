"""Pause and resume on Redis: the flag lives in the queue's slot, the registry finds it, idle workers wake on resume."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastjobs.backends import NewJob
from fastjobs.job import new_job_id
from tests.backends import unique_prefix


def _job(queue: str) -> NewJob:
    return NewJob(new_job_id(), queue, 0, 0.0, 3, b"x")


async def test_pause_in_cluster_spans_masters(cluster_url: str, open_backend: Any) -> None:
    """Queues whose slots are on all three masters: paused() finds every one, claims skip them."""
    prefix = unique_prefix()
    first = await open_backend(cluster_url, prefix=prefix)
    second = await open_backend(cluster_url, prefix=prefix)
    assert first.cluster
    client = await first._redis()
    queues = [f"q{i}" for i in range(9)]
    nodes = {client.get_node_from_key(first._queue(q).paused).name for q in queues}
    assert len(nodes) == 3
    jobs = {q: _job(q) for q in queues}
    await first.enqueue_many(list(jobs.values()))
    paused = queues[::2]
    for q in paused:
        await first.pause(q)
    # A queue paused before anything was enqueued to it is listed too.
    await first.pause("empty")
    assert await second.paused() == sorted([*paused, "empty"])
    claimed = [c.id for c in await second.claim(queues, 100, 30.0)]
    assert claimed == [jobs[q].id for q in queues if q not in paused]
    for q in paused:
        await second.resume(q)
    assert await first.paused() == ["empty"]
    assert [c.id for c in await first.claim(queues, 100, 30.0)] == [jobs[q].id for q in paused]


async def test_an_idle_wait_ignores_a_paused_queue_and_resume_ends_it(redis_url: str, open_backend: Any) -> None:
    backend = await open_backend(redis_url)
    await backend.enqueue_many([_job("p")])
    await backend.pause("p")
    assert await backend.claim(["p"], 10, 30.0) == []
    started = time.monotonic()
    await backend.wait(["p"], 0.3)  # a ready job of a paused queue does not end the wait
    assert time.monotonic() - started >= 0.25

    async def resume_soon() -> None:
        await asyncio.sleep(0.1)
        await backend.resume("p")

    resumer = asyncio.ensure_future(resume_soon())
    started = time.monotonic()
    await backend.wait(["p"], 10.0)
    assert time.monotonic() - started < 2.0
    await resumer
    assert len(await backend.claim(["p"], 10, 30.0)) == 1


async def test_a_paused_queue_still_recovers_expired_leases(redis_url: str, open_backend: Any) -> None:
    backend = await open_backend(redis_url)
    j = _job("p")
    await backend.enqueue_many([j])
    (c,) = await backend.claim(["p"], 1, 0.05)
    await backend.pause("p")
    await asyncio.sleep(0.1)
    assert await backend.claim(["p"], 1, 30.0) == []
    stored = await backend.get(j.id)
    assert stored is not None and stored.state == 1 and stored.attempt == 1  # queued again, not leased
    await backend.resume("p")
    (c2,) = await backend.claim(["p"], 1, 30.0)
    assert (c2.id, c2.token) == (j.id, c.token + 1)
