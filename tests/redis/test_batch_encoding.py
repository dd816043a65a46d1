"""How enqueue and ack batches travel to their scripts.

Enqueue (connection.pack_jobs): a msgpack stream of the count and each job's fields in a row,
only the fields the batch's features need; enqueue-6.lua reads it in parts that fit Lua's
stack. Ack (connection.pack_acks): the count, the width of a row and each ack's row, 2 values
(plain successes), 3 (successes with payloads) or 5 (any other), read in parts the same way.
Every form stores and settles the same."""

from __future__ import annotations

import io

import msgpack
import pytest

from fastjobs._core import DEAD, QUEUED, RETRY_PENDING, SCHEDULED, SUCCEEDED, WAITING
from fastjobs.backends import Ack, AckKind, Claim, Limit, NewJob
from fastjobs.backends.redis import RedisBackend
from fastjobs.backends.redis import SCRIPTS
from fastjobs.backends.redis.connection import pack_acks, pack_jobs
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


def test_pack_acks_sends_two_values_per_plain_success_three_with_payloads_five_otherwise() -> None:
    def unpacked(packed: bytes) -> list[object]:
        return list(msgpack.Unpacker(io.BytesIO(packed), raw=False))

    plain = [Ack("a", 1, AckKind.SUCCEED), Ack("b", 2, AckKind.SUCCEED)]
    assert unpacked(pack_acks(plain)) == [2, 2, 0, "a", 1, "b", 2]
    results = [plain[0], Ack("b", 2, AckKind.SUCCEED, b"r")]
    assert unpacked(pack_acks(results)) == [2, 3, 0, "a", 1, None, "b", 2, "r"]
    mixed = [plain[0], Ack("b", 2, AckKind.RETRY, b"e", 5.0)]
    assert unpacked(pack_acks(mixed)) == [2, 5, 0, "a", 1, 0, None, 0.0, "b", 2, 1, "e", 5.0]
    # A job named twice: the script then keeps a table of the ids (the repeat is answered 0).
    assert unpacked(pack_acks([plain[0], plain[1], plain[0]]))[:3] == [3, 2, 1]
    # Past 15 values the array's header is 3 bytes (array 16): the stream cuts all three.
    assert pack_acks(plain * 4)[0] == 8
    assert unpacked(pack_acks([])) == [0, 2, 0]


def mixed_ack(i: int, claim: Claim) -> Ack:
    """Of every kind, with and without payloads and delays: i % 8 0 and 4 SUCCEED (4 with a
    result), 1 and 5 RETRY (1 in 30 s, 5 now), 2 and 6 DEAD, 3 and 7 RELEASE."""
    kind = (AckKind.SUCCEED, AckKind.RETRY, AckKind.DEAD, AckKind.RELEASE)[i % 4]
    payload = None if kind == AckKind.RELEASE or i % 8 == 0 else b"p%d" % i
    return Ack(claim.id, claim.token, kind, payload, 30.0 if i % 8 == 1 else 0.0)


@pytest.mark.parametrize(("width", "count"), [
    (2, 1), (2, PART // 2), (3, PART // 3), (5, 7), (5, PART // 5),  # one more (the stale ack): two parts
])
async def test_ack_batches_of_each_width_and_of_several_parts_apply_each_ack_and_replay_alike(
    server: RedisServer, open_backend, width: int, count: int  # type: ignore[no-untyped-def]
) -> None:
    """A stale ack first (of another job: the ids are distinct), then count acks of the width's
    form: each applied once; the same call retried (a lost reply: same nonce) answers the same,
    and a new call finds them all stale."""
    backend: RedisBackend = await open_backend(server.url, dead_ttl=60.0)
    jobs = [job(i) for i in range(count + 1)]
    for k in range(0, count + 1, 1000):
        await backend.enqueue_many(jobs[k:k + 1000])
    claims: list[Claim] = []
    while len(claims) < count + 1:
        claims += await backend.claim(["q"], 1000, 30.0)
    other = claims.pop()
    if width == 2:
        acks = [Ack(c.id, c.token, AckKind.SUCCEED) for c in claims]
    elif width == 3:
        acks = [Ack(c.id, c.token, AckKind.SUCCEED, b"r%d" % i if i % 2 else None) for i, c in enumerate(claims)]
    else:
        acks = [mixed_ack(i, c) for i, c in enumerate(claims)]
    batch = [Ack(other.id, other.token + 1, AckKind.SUCCEED), *acks]
    packed = pack_acks(batch)
    assert list(msgpack.Unpacker(io.BytesIO(packed), raw=False))[:3] == [count + 1, width, 0]
    args = ("ab12cd34ef567890", 60.0, 60.0, b"", b"", packed)
    keys = backend._queue("q").ack
    assert await backend._eval(SCRIPTS["ack"], keys, args) == [0] + [1] * count
    assert await backend._eval(SCRIPTS["ack"], keys, args) == [0] + [1] * count  # the retry
    assert await backend.ack_many(batch[-3:]) == [False] * min(3, count + 1)
    for i in sorted(set(range(min(count, 8))) | {count // 2, count - 1}):
        stored = await backend.get(claims[i].id)
        assert stored is not None, i
        ack = acks[i]
        if ack.kind == AckKind.SUCCEED:
            assert (stored.state, stored.result, stored.errors) == (SUCCEEDED, ack.payload, []), i
        elif ack.kind == AckKind.RETRY:
            assert (stored.state, stored.errors) == (RETRY_PENDING if ack.delay else QUEUED, [ack.payload]), i
        elif ack.kind == AckKind.DEAD:
            assert (stored.state, stored.errors) == (DEAD, [ack.payload]), i
        else:
            assert (stored.state, stored.attempt, stored.errors) == (QUEUED, claims[i].attempt - 1, []), i
