"""How enqueue and ack batches travel to their scripts (connection.pack_rows): a msgpack stream
of the count and the fields in a row while short, the array itself past ROWS_STREAM_MAX; both
forms store and settle the same."""

from __future__ import annotations

import io

import msgpack
import pytest

from fastjobs._core import QUEUED, SUCCEEDED
from fastjobs.backends import Ack, AckKind, NewJob
from fastjobs.backends.redis import RedisBackend
from fastjobs.backends.redis.connection import ROWS_STREAM_MAX, pack_rows
from fastjobs.job import new_job_id
from tests.redis.servers import RedisServer

WIDTH = len(NewJob._fields)


def job(i: int, unique: bool = False) -> NewJob:
    return NewJob(new_job_id(), "q", i % 3, 0.0, 3, b"body-%d" % i, f"u{i}" if unique else None, task="t",
                  tags=("a", "b") if i % 2 else ())


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


@pytest.mark.parametrize("count", [1, 17, ROWS_STREAM_MAX // WIDTH, ROWS_STREAM_MAX // WIDTH + 1])
async def test_enqueue_batches_on_either_side_of_the_stream_limit_store_every_field(
    server: RedisServer, open_backend, count: int  # type: ignore[no-untyped-def]
) -> None:
    backend: RedisBackend = await open_backend(server.url)
    jobs = [job(i, unique=i % 5 == 0) for i in range(count)]
    assert await backend.enqueue_many(jobs) == [j.id for j in jobs]
    for j in (jobs[0], jobs[-1]):
        stored = await backend.get(j.id)
        assert stored is not None and stored.state == QUEUED
        assert (stored.body, stored.priority, stored.max_attempts, stored.unique_key, stored.task, stored.tags) == (
            j.body, j.priority, 3, j.unique_key, "t", j.tags)
    # A job with a unique key held by a stored one is answered with the holder, at its place.
    fresh, again = job(1), job(0)._replace(unique_key="u0")
    assert await backend.enqueue_many([fresh, again]) == [fresh.id, jobs[0].id]


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
