"""How enqueue and ack batches travel to their scripts.

Enqueue (connection.pack_jobs): a msgpack stream of the count and each job's fields in a row,
only the fields the batch's features need; enqueue-6.lua reads it in parts that fit Lua's
stack. Ack (connection.pack_rows): the count and the fields in a row while short, the array
itself past ROWS_STREAM_MAX. Every form stores and settles the same."""

from __future__ import annotations

import io

import msgpack
import pytest

from fastjobs._core import QUEUED, SCHEDULED, SUCCEEDED, WAITING
from fastjobs.backends import Ack, AckKind, Limit, NewJob
from fastjobs.backends.redis import RedisBackend
from fastjobs.backends.redis.connection import ROWS_STREAM_MAX, pack_jobs, pack_rows
from fastjobs.errors import DuplicateJobError
from fastjobs.job import new_job_id, new_job_ids
from tests.redis.servers import RedisServer

PART = 7000
"""enqueue-6.lua's PART: values per part of a batch, at most."""


def job(i: int, unique: bool = False, job_id: str | None = None) -> NewJob:
    return NewJob(job_id or new_job_id(), "q", i % 3, 0.0, 3, b"body-%d" % i, f"u{i}" if unique else None,
                  task="t", tags=("a", "b") if i % 2 else ())


def test_pack_jobs_sends_what_the_jobs_share_once_and_the_features_fields_only_when_asked() -> None:
    def unpacked(packed: bytes) -> list[object]:
        return list(msgpack.Unpacker(io.BytesIO(packed), raw=False))

    plain = NewJob("a", "q", 2, 0.5, 3, b"x", task="t")
    same = plain._replace(id="b", body=b"y", max_attempts=1)
    assert unpacked(pack_jobs([plain, same], "")) == [2, 2, 0.5, "t", "a", "x", 3, "b", "y", 1]
    # Priority, delay and meta where they differ: per job, after the rest of the row.
    tagged = NewJob("b", "q", 0, 0.5, 1, b"y", tags=("k", "l"))
    assert unpacked(pack_jobs([plain, tagged], "")) == [
        2, None, 0.5, None, "a", "x", 3, 2, "t", "b", "y", 1, 0, "\tk\tl",
    ]
    full = NewJob("c", "q", 2, 0.0, 3, b"z", "uk", 9.0, ("a",), 1, Limit("k", 2), "t", ("g",))
    assert unpacked(pack_jobs([plain, full], "udl")) == [
        2, 2, None, None,
        "a", "x", 3, None, 0.0, [], 0, None, 0.5, "t",
        "c", "z", 3, "uk", 9.0, ["a"], 1, ["k", 2, 0, 0.0], 0.0, "t\tg",
    ]
    # Past 15 values the array's header is 3 bytes (array 16): the stream cuts all three.
    assert pack_jobs([plain] * 4, "")[0] == 4
    assert unpacked(pack_jobs([], "")) == [0]


ROWS = PART // 7
"""Rows per part of job()'s batches: id, body, max_attempts, unique key and ttl, priority and
meta (they differ between jobs; the delay is shared)."""


@pytest.mark.parametrize("count", [1, 17, ROWS, ROWS + 1, 5000])
async def test_enqueue_batches_of_one_part_or_several_store_every_field(
    server: RedisServer, open_backend, count: int  # type: ignore[no-untyped-def]
) -> None:
    backend: RedisBackend = await open_backend(server.url)
    jobs = [job(i, unique=i % 5 == 0, job_id=job_id) for i, job_id in enumerate(new_job_ids(count))]
    assert await backend.enqueue_many(jobs) == [j.id for j in jobs]
    for j in (jobs[0], jobs[len(jobs) // 2], jobs[-1]):
        stored = await backend.get(j.id)
        assert stored is not None and stored.state == QUEUED
        assert (stored.body, stored.priority, stored.max_attempts, stored.unique_key, stored.task, stored.tags) == (
            j.body, j.priority, 3, j.unique_key, "t", j.tags)
    # A job with a unique key held by a stored one is answered with the holder, at its place.
    fresh, again = job(1), job(0)._replace(unique_key="u0")
    assert await backend.enqueue_many([fresh, again]) == [fresh.id, jobs[0].id]


async def test_plain_and_featured_jobs_in_one_batch_each_get_their_own_fields(
    server: RedisServer, open_backend  # type: ignore[no-untyped-def]
) -> None:
    backend: RedisBackend = await open_backend(server.url)
    parent = NewJob(new_job_id(), "q", 1, 0.0, 2, b"p", task="parent")
    plain = NewJob(new_job_id(), "q", 0, 0.0, 3, b"plain")
    delayed = NewJob(new_job_id(), "q", 0, 60.0, 4, b"later", task="t", tags=("x",))
    unique = NewJob(new_job_id(), "q", 5, 0.0, 3, b"u", "key", 30.0)
    child = NewJob(new_job_id(), "q", 0, 0.0, 3, b"c", depends_on=(parent.id,), task="child")
    limited = NewJob(new_job_id(), "q", 0, 0.0, 3, b"l", limit=Limit("lk", 1))
    batch = [parent, plain, delayed, unique, child, limited]
    assert await backend.enqueue_many(batch) == [j.id for j in batch]
    got = {j.id: await backend.get(j.id) for j in batch}
    assert all(s is not None for s in got.values())
    assert [(s.state, s.priority, s.max_attempts, s.body, s.task, s.tags) for s in got.values() if s] == [
        (QUEUED, 1, 2, b"p", "parent", ()),
        (QUEUED, 0, 3, b"plain", "", ()),
        (SCHEDULED, 0, 4, b"later", "t", ("x",)),
        (QUEUED, 5, 3, b"u", "", ()),
        (WAITING, 0, 3, b"c", "child", ()),
        (QUEUED, 0, 3, b"l", "", ()),
    ]
    s_unique, s_child, s_limited = got[unique.id], got[child.id], got[limited.id]
    assert s_unique is not None and s_unique.unique_key == "key"
    assert s_child is not None and s_child.parents == (parent.id,) and s_child.pending_parents == 1
    assert s_limited is not None and s_limited.limit_key == "lk"
    assert got[plain.id].unique_key is None and got[plain.id].limit_key is None  # type: ignore[union-attr]


@pytest.mark.parametrize("taken", ["in the batch", "stored"])
async def test_a_duplicate_id_in_the_last_part_of_a_long_batch_stores_nothing(
    server: RedisServer, open_backend, taken: str  # type: ignore[no-untyped-def]
) -> None:
    backend: RedisBackend = await open_backend(server.url)
    jobs = [job(i) for i in range(5000)]
    if taken == "stored":
        old = job(0)
        await backend.enqueue_many([old])
        jobs[-1] = jobs[-1]._replace(id=old.id)
    else:
        jobs[-1] = jobs[-1]._replace(id=jobs[3].id)
    with pytest.raises(DuplicateJobError):
        await backend.enqueue_many(jobs)
    assert await backend.get(jobs[0].id) is None and await backend.get(jobs[4000].id) is None
    assert (await backend.stats()).get("q", {}).get("queued", 0) == (1 if taken == "stored" else 0)


def test_pack_rows_streams_short_batches_and_sends_long_ones_as_an_array() -> None:
    short = [(f"id{i}", i, 0, None, 0.0) for i in range(3)]
    assert list(msgpack.Unpacker(io.BytesIO(pack_rows(short)), raw=False)) == [
        3, "id0", 0, 0, None, 0.0, "id1", 1, 0, None, 0.0, "id2", 2, 0, None, 0.0,
    ]
    n = ROWS_STREAM_MAX // 5  # 1 + 5n values: one more than the stream's limit
    long = [(f"id{i}", i, 0, None, 0.0) for i in range(n)]
    unpacked = msgpack.unpackb(pack_rows(long), raw=False)
    assert unpacked[0] == n and len(unpacked) == 1 + 5 * n
    # Past 15 values the array's header is 3 bytes (array 16): the stream cuts all three.
    sixteen = [(f"id{i}", i, 0, None, 0.0) for i in range(4)]
    assert pack_rows(sixteen)[0] == 4


@pytest.mark.parametrize("count", [1, ROWS_STREAM_MAX // 5 - 1, ROWS_STREAM_MAX // 5 + 1])
async def test_ack_batches_on_either_side_of_the_stream_limit_apply_each_ack(
    server: RedisServer, open_backend, count: int  # type: ignore[no-untyped-def]
) -> None:
    backend: RedisBackend = await open_backend(server.url)
    jobs = [job(i) for i in range(count)]
    for k in range(0, count, 400):
        await backend.enqueue_many(jobs[k:k + 400])
    claims = []
    while len(claims) < count:
        claims += await backend.claim(["q"], 1000, 30.0)
    stale = Ack(claims[0].id, claims[0].token + 1, AckKind.SUCCEED)
    acks = [Ack(c.id, c.token, AckKind.SUCCEED, b"r" if i % 2 else None) for i, c in enumerate(claims)]
    assert await backend.ack_many([stale, *acks]) == [False] + [True] * count
    for c, a in ((claims[0], acks[0]), (claims[-1], acks[-1])):
        stored = await backend.get(c.id)
        assert stored is not None and stored.state == SUCCEEDED and stored.result == a.payload
