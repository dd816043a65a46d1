"""Progress on Redis: one key per job, flagged in the record, deleted with the job on every path."""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis

from fastjobs.backends import Ack, AckKind, NewJob
from fastjobs.job import error_record, new_job_id
from tests.backends import unique_prefix


def _job(queue: str = "q", max_attempts: int = 3) -> NewJob:
    return NewJob(new_job_id(), queue, 0, 0.0, max_attempts, b"x")


async def _keys(url: str, prefix: str) -> list[bytes]:
    client = aioredis.from_url(url)
    try:
        return sorted([k async for k in client.scan_iter(match=f"{prefix}:*")])
    finally:
        await client.aclose()


async def test_progress_keys_go_with_their_jobs(redis_url: str, open_backend: Any) -> None:
    """Succeeded (retention trim in the ack script), dead, cancelled, result_ttl=0 and purge all delete p:<id>."""
    prefix = unique_prefix()
    backend = await open_backend(redis_url, prefix=prefix, result_ttl=0.2, dead_ttl=0.2)
    jobs = [_job() for _ in range(4)]
    await backend.enqueue_many(jobs)
    claims = {c.id: c for c in await backend.claim(["q"], 4, 30.0)}
    for c in claims.values():
        assert await backend.set_progress(c.id, c.token, b"half") is True
    ok, retried, dead, cancelled = (claims[j.id] for j in jobs)
    err = error_record(1, "ValueError", "boom")
    assert await backend.ack_many([
        Ack(ok.id, ok.token, AckKind.SUCCEED, b"r"),
        Ack(retried.id, retried.token, AckKind.RETRY, err, 0.0),
        Ack(dead.id, dead.token, AckKind.DEAD, err),
    ]) == [True, True, True]
    assert await backend.cancel(cancelled.id)
    # The retried job kept its progress flag through the error flag: it succeeds later.
    (again,) = await backend.claim(["q"], 1, 30.0)
    assert again.id == retried.id
    assert (await backend.get(retried.id)).progress == b"half"  # type: ignore[union-attr]
    assert await backend.ack_many([Ack(again.id, again.token, AckKind.SUCCEED, b"r")]) == [True]
    await asyncio.sleep(0.3)
    assert await backend.cleanup() >= 2
    # One more succeeded ack trims the succeeded list as it goes.
    last = _job()
    await backend.enqueue_many([last])
    (c,) = await backend.claim(["q"], 1, 30.0)
    assert await backend.ack_many([Ack(c.id, c.token, AckKind.SUCCEED)]) == [True]
    leftovers = [k for k in await _keys(redis_url, prefix) if b":p:" in k or b":e:" in k or b":j:" in k]
    assert leftovers == [f"{prefix}:{{q}}:j:{last.id}".encode()]


async def test_progress_of_a_job_claimed_elsewhere_is_found_by_id(redis_url: str, open_backend: Any) -> None:
    """The claiming instance knows the queue (one call); another instance looks the job up."""
    prefix = unique_prefix()
    first = await open_backend(redis_url, prefix=prefix)
    second = await open_backend(redis_url, prefix=prefix)
    j = _job("elsewhere")
    await first.enqueue_many([_job("a"), j])
    (c,) = await first.claim(["elsewhere"], 1, 30.0)
    assert await second.set_progress(c.id, c.token, b"from afar") is True
    assert await second.set_progress(c.id, c.token + 1, b"stale") is False
    assert (await first.get(j.id)).progress == b"from afar"  # type: ignore[union-attr]
    listed = await first.list_jobs(2, "elsewhere")
    assert [s.progress for s in listed] == [b"from afar"]


async def test_progress_in_cluster(cluster_url: str, open_backend: Any) -> None:
    backend = await open_backend(cluster_url)
    other = await open_backend(cluster_url, prefix=backend.prefix)
    queues = [f"q{i}" for i in range(6)]
    jobs = [_job(q) for q in queues]
    await backend.enqueue_many(jobs)
    claims = await backend.claim(queues, 10, 30.0)
    assert len(claims) == 6
    for c in claims:
        assert await other.set_progress(c.id, c.token, c.id.encode()) is True
    for j in jobs:
        assert (await other.get(j.id)).progress == j.id.encode()  # type: ignore[union-attr]
