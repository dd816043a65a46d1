"""The retention trim deletes every key of a finished job, naming only those its record says exist.

The ack script trims the succeeded and dead indexes as it goes (trim_zset in _common.lua). It
reads each trimmed job's record for its state, flags and unique key and names only the keys
those say may exist: j:, b:, r:, t: always; e: and p: when flagged; u: with a unique key; the
dependency and limit keys when flagged. A key it failed to name would stay in Redis forever,
so these tests give the finished jobs every kind of key, let their retention pass, have one
more ack trim them, and then look for any key left that names them.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis

from fastjobs.backends import Ack, AckKind, Limit, NewJob
from fastjobs.job import error_record, new_job_id
from tests.backends import unique_prefix

TTL = 0.2


def _job(**fields: Any) -> NewJob:
    return NewJob(new_job_id(), "q", 0, 0.0, 3, b"x", task="t", **fields)


async def _keys_of(url: str, prefix: str, ids: list[str]) -> list[bytes]:
    """Every key of the namespace whose name ends with one of ``ids``, and the index entries naming them."""
    client = aioredis.from_url(url)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}:*")]
        found = [k for k in keys if any(k.endswith(i.encode()) for i in ids)]
        for index in (b"done", b"dead", b"live"):
            key = f"{prefix}:{{q}}:".encode() + index
            if await client.exists(key):
                found += [key + b" " + m for m in await client.zrange(key, 0, -1) if m.decode() in ids]
        return sorted(found)
    finally:
        await client.aclose()


async def _trim(backend: Any) -> None:
    """One succeeded and one dead ack, past everyone's retention: each trims its own index."""
    await asyncio.sleep(TTL + 0.1)
    ok, dead = _job(), _job()
    await backend.enqueue_many([ok, dead])
    claims = {c.id: c for c in await backend.claim(["q"], 2, 30.0)}
    assert await backend.ack_many([
        Ack(ok.id, claims[ok.id].token, AckKind.SUCCEED),
        Ack(dead.id, claims[dead.id].token, AckKind.DEAD, error_record(1, "ValueError", "last")),
    ]) == [True, True]


async def test_the_trim_leaves_no_key_of_a_finished_job(redis_url: str, open_backend: Any) -> None:
    prefix = unique_prefix()
    backend = await open_backend(redis_url, prefix=prefix, result_ttl=TTL, dead_ttl=TTL)
    plain, result, errors, progress, unique, tagged, dead = jobs = [
        _job(), _job(), _job(), _job(), _job(unique_key="u-1", unique_ttl=0.05), _job(tags=("a", "b")), _job(),
    ]
    limited = _job(limit=Limit("k", concurrency=10))
    parent = _job()
    child = _job(depends_on=(parent.id,))
    jobs += [limited, parent, child]
    await backend.enqueue_many(jobs)
    err = error_record(1, "ValueError", "boom")
    # One job fails once first: its error list exists when it succeeds.
    claims = {c.id: c for c in await backend.claim(["q"], 20, 30.0)}
    assert child.id not in claims  # waits on its parent
    assert await backend.set_progress(progress.id, claims[progress.id].token, b"half")
    first = [Ack(errors.id, claims[errors.id].token, AckKind.RETRY, err, 0.0)]
    assert await backend.ack_many(first) == [True]
    (again,) = await backend.claim(["q"], 1, 30.0)
    assert again.id == errors.id
    claims[errors.id] = again
    acks = [Ack(j.id, claims[j.id].token, AckKind.SUCCEED, b"value" if j is result else None)
            for j in (plain, result, errors, progress, tagged, limited, parent)]
    # A unique job's u: (its window) goes at success; one that goes dead keeps it until trimmed.
    acks += [Ack(j.id, claims[j.id].token, AckKind.DEAD, err) for j in (dead, unique)]
    assert await backend.ack_many(acks) == [True] * len(acks)
    (c,) = await backend.claim(["q"], 1, 30.0)  # the child, released by its parent
    assert c.id == child.id
    assert await backend.ack_many([Ack(c.id, c.token, AckKind.SUCCEED)]) == [True]

    ids = [j.id for j in jobs]
    before = await _keys_of(redis_url, prefix, ids)
    # Each kind of key is there before the trim (else this test would prove nothing).
    for kind, job in (("j", plain), ("b", plain), ("t", tagged), ("r", result), ("e", errors), ("p", progress),
                      ("u", unique), ("e", dead), ("l", limited), ("d", child), ("dp", child)):
        assert f"{prefix}:{{q}}:{kind}:{job.id}".encode() in before, (kind, before)
    await _trim(backend)
    assert await _keys_of(redis_url, prefix, ids) == []


async def test_the_trim_deletes_text_records_keys_too(redis_url: str, open_backend: Any) -> None:
    """A finished job whose record an older fastjobs wrote (the text layout) is trimmed whole."""
    prefix = unique_prefix()
    backend = await open_backend(redis_url, prefix=prefix, result_ttl=TTL, dead_ttl=TTL)
    job = _job()
    await backend.enqueue_many([job])
    (c,) = await backend.claim(["q"], 1, 30.0)
    assert await backend.set_progress(c.id, c.token, b"half")
    assert await backend.ack_many([Ack(c.id, c.token, AckKind.SUCCEED, b"value")]) == [True]
    client = aioredis.from_url(redis_url)
    try:
        # The same job as the text layout held it (succeeded, flagged 'p'), finished long ago.
        await client.set(f"{prefix}:{{q}}:j:{job.id}",
                         "3|1|3|1|0|0000000000000001|1.000000||2.000000|3.000000|ab||||p|")
        await client.zadd(f"{prefix}:{{q}}:done", {job.id: 3.0})
    finally:
        await client.aclose()
    assert len(await _keys_of(redis_url, prefix, [job.id])) >= 5  # j, b, t, r, p, and its index entry
    await _trim(backend)
    assert await _keys_of(redis_url, prefix, [job.id]) == []
