"""The two layouts of a job record (lua/_common.lua): layout 1 (binary), which every script
writes, and the text layout of fastjobs before it, which a live Redis may still hold.

Layout 1 carries every field through a Lua write and a Python read unchanged; a text record
stored by an older version is claimed, acked, retried, renewed, cancelled, searched and shown
as it always was, and is in layout 1 after its first rewrite; a record neither layout reads is
dead-lettered with a reason, as an unreadable text record always was.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import struct

import msgpack

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastjobs._core import ACTIVE, CANCELLED, DEAD, QUEUED, SCHEDULED, SUCCEEDED
from fastjobs.backends import Ack, AckKind, NewJob
from fastjobs.backends.values import JobFilter
from fastjobs.backends.redis.records import Record, stored_job
from fastjobs.backends.redis.scripts import state_prelude
from fastjobs.job import new_job_id, new_job_ids
from tests.redis.servers import RedisServer

FOLDER = importlib.resources.files("fastjobs") / "lua"


def common_source(tail: str) -> str:
    common = (FOLDER / "_common.lua").read_text("utf-8")
    common = common.replace("-- @include _events", (FOLDER / "_events.lua").read_text("utf-8"))
    return state_prelude() + common + tail


# record() of the 16 text fields in ARGV, what parse() and Python read back, and what
# parse() reads of the text record in ARGV[17] rewritten by record().
ROUND_TRIP = common_source("""
local rec = record(unpack(ARGV, 1, 16))
local again = record(parse(ARGV[17]))
return {rec, {parse(rec)}, again, {parse(again)}, state_of(rec), state_of(ARGV[17])}
""")


def text(fields: Record) -> bytes:
    """The text layout of fastjobs before layout 1."""
    return b"|".join(fields)


def digits(lo: int, hi: int) -> st.SearchStrategy[bytes]:
    return st.integers(lo, hi).map(lambda n: str(n).encode())


times = st.one_of(
    st.just(b""),
    st.integers(1_000_000_000_000_000, 4_000_000_000_000_000).map(lambda us: b"%d.%06d" % divmod(us, 1_000_000)),
)
nonces = st.one_of(
    st.just(b""),
    st.binary(min_size=1, max_size=64).map(lambda b: b.hex().encode()),  # as the clients make them
    st.text("0123456789abcdefABCDEF", min_size=1, max_size=31).map(str.encode),  # odd or upper case: kept raw
    st.binary(min_size=1, max_size=255).filter(lambda b: b"|" not in b),
)
unique_keys = st.one_of(
    st.just(b""),
    st.binary(max_size=40),  # '|' and non-ASCII bytes among them
    st.text(max_size=20).map(lambda s: (s + "|é|").encode()),
    st.builds(lambda part, n: part * n, st.binary(min_size=1, max_size=7), st.integers(1000, 12000)),  # long
)
records = st.builds(
    Record,
    state=st.sampled_from([b"0", b"1", b"2", b"3", b"4", b"5", b"6", b"7"]),
    attempt=digits(0, 2**31 - 1),
    max_attempts=digits(1, 2**31 - 1),
    token=digits(0, 2**31 - 1),
    score=digits(-(2**31 - 1), 2**31 - 1),
    seq=st.one_of(st.just(b""), st.integers(1, 2**53).map(lambda n: b"%016d" % n)),
    enqueued_at=times, run_at=times, started_at=times, finished_at=times,
    nonce=nonces, ack_nonce=nonces,
    lease_until=times,
    lease_batch=st.one_of(st.just(b""), digits(1, 2**53)),
    flags=st.sets(st.sampled_from(b"1pwdl")).map(lambda s: bytes(c for c in b"1pwdl" if c in s)),
    unique_key=unique_keys,
)


@pytest.fixture(scope="module")
def lua(redis_url: str):  # type: ignore[no-untyped-def]
    import redis

    from tests.backends import reachable

    if not reachable(redis_url):
        pytest.skip("no Redis")
    client = redis.Redis.from_url(redis_url)
    sha = client.script_load(ROUND_TRIP)
    yield lambda *args: client.evalsha(sha, 0, *args)
    client.close()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(fields=records)
def test_layout_1_carries_every_field_from_a_lua_write_to_the_lua_and_python_reads(lua, fields: Record) -> None:  # type: ignore[no-untyped-def]
    old = fields._replace(nonce=fields.nonce.replace(b"|", b""), ack_nonce=fields.ack_nonce.replace(b"|", b""))
    rec, lua_read, again, again_read, state, old_state = lua(*fields, text(old))
    assert rec[:1] == b"\x01" and again[:1] == b"\x01"
    assert Record.parse(rec) == fields
    assert Record._make(lua_read) == fields
    assert state == old_state == fields.state
    # A text record read in either layout reads the same, and rewritten reads the same.
    assert Record.parse(text(old)) == old == Record._make(again_read) == Record.parse(again)
    # Seq's low byte is the record's last (see test_record_hashing).
    assert rec[-8:] == struct.pack(">Q", int(fields.seq or 0))


def test_a_record_neither_layout_reads_is_unreadable_in_python() -> None:
    fields = Record(b"1", b"0", b"3", b"0", b"0", b"0000000000000007", b"1765000000.000000", b"", b"", b"",
                    b"ab", b"", b"", b"", b"", b"k")
    unreadable = Record.parse(b"\xff\x00 not a job record")
    assert unreadable.state == str(DEAD).encode()
    assert Record.parse(text(fields)) == fields
    for bad in (b"\x01", b"\x02" + b"\x00" * 80, b"\x01" + b"\x00" * 200, b"\x01" + b"\x00" * 79):
        assert Record.parse(bad) == unreadable


async def test_a_text_record_of_an_older_version_is_served_and_upgraded_at_its_first_rewrite(
    server: RedisServer, open_backend  # type: ignore[no-untyped-def]
) -> None:
    backend = await open_backend(server.url, result_ttl=3600, dead_ttl=3600)
    prefix = backend.options.prefix
    client = server.client()

    def key(job_id: str) -> str:
        return f"{prefix}:{{q}}:j:{job_id}"

    def downgrade(job_id: str) -> Record:
        """Store the job's record as the previous version wrote it (text), the same fields."""
        rec = client.get(key(job_id))
        assert rec is not None and rec[:1] == b"\x01"
        fields = Record.parse(rec)
        client.set(key(job_id), text(fields))
        return fields

    try:
        ids = new_job_ids(8)
        jobs = [NewJob(job_id, "q", 5 if i == 0 else 0, 0.0, 3, b"body-%d" % i, f"u|é|{i}" if i % 2 else None, task="t",
                       tags=("a",)) for i, job_id in enumerate(ids)]
        await backend.enqueue_many(jobs)
        shown = {j: await backend.get(j) for j in ids}
        for job_id in ids:
            downgrade(job_id)
        # Read (get, search, the dead-letter listing's reader) exactly as the layout 1 record read.
        for job_id in ids:
            assert await backend.get(job_id) == shown[job_id]
        found, _ = await backend.search(JobFilter(states=(QUEUED,), queue="q"), 100)
        assert {j.id for j in found} == set(ids)

        # Claimed in priority order, then by enqueue order, with attempt and token 1.
        claims = await backend.claim(["q"], 6, 30.0)
        assert [c.id for c in claims] == ids[:6]
        assert all((c.attempt, c.token) == (1, 1) for c in claims)
        for c in claims:
            rec = client.get(key(c.id))
            assert rec[:1] == b"\x01"
            stored = await backend.get(c.id)
            assert stored is not None and stored.state == ACTIVE and stored.lease_until is not None
            assert stored.enqueued_at == shown[c.id].enqueued_at and stored.unique_key == shown[c.id].unique_key

        # Active records stored as text: renewed, acked (succeed, retry, release, dead).
        before = {c.id: downgrade(c.id) for c in claims}
        assert await backend.renew([(claims[0].id, claims[0].token, 60.0), (claims[1].id, 99, 60.0)]) == [True, False]
        downgrade(claims[0].id)
        acks = [
            Ack(claims[0].id, 1, AckKind.SUCCEED, b"result"),
            Ack(claims[1].id, 1, AckKind.RETRY, b"error-record"),
            Ack(claims[2].id, 1, AckKind.RELEASE),
            Ack(claims[3].id, 1, AckKind.DEAD, b"error-record"),
            Ack(claims[4].id, 2, AckKind.SUCCEED),  # a stale token: fenced
        ]
        assert await backend.ack_many(acks) == [True, True, True, True, False]
        states = {c.id: (await backend.get(c.id)) for c in claims}
        assert states[claims[0].id].state == SUCCEEDED and states[claims[0].id].result == b"result"
        assert states[claims[1].id].state == QUEUED and states[claims[1].id].attempt == 1
        assert states[claims[2].id].state == QUEUED and states[claims[2].id].attempt == 0
        assert states[claims[3].id].state == DEAD and states[claims[3].id].errors == [b"error-record"]
        assert states[claims[4].id].state == ACTIVE
        assert all(client.get(key(c.id))[:1] == b"\x01" for c in claims[:4])
        assert client.get(key(claims[4].id)) == text(before[claims[4].id])  # untouched
        for c in claims[:4]:
            s = states[c.id]
            assert (s.enqueued_at, s.unique_key, s.priority, s.max_attempts) == (
                shown[c.id].enqueued_at, shown[c.id].unique_key, shown[c.id].priority, shown[c.id].max_attempts)
        # The succeeded job's unique key is released (no window), the dead one's too.
        if shown[claims[1].id].unique_key:
            held = client.hget(f"{prefix}:{{q}}:unique", shown[claims[1].id].unique_key)
            assert held == claims[1].id.encode()
        assert client.hget(f"{prefix}:{{q}}:unique", shown[claims[3].id].unique_key) is None

        # Cancelled as text (queued, and active: both still as the older version stored them).
        assert client.get(key(ids[6]))[:1] == str(QUEUED).encode() and client.get(key(claims[4].id))[:1] == str(ACTIVE).encode()
        assert await backend.cancel(ids[6]) and await backend.cancel(claims[4].id)
        for job_id in (ids[6], claims[4].id):
            stored = await backend.get(job_id)
            assert stored is not None and stored.state == CANCELLED and stored.finished_at is not None
            assert client.get(key(job_id))[:1] == b"\x01"

        # Progress of a running job stored as text: refused for another token, kept, flagged.
        assert client.get(key(claims[5].id))[:1] == str(ACTIVE).encode()
        assert not await backend.set_progress(claims[5].id, 2, b"half")
        assert await backend.set_progress(claims[5].id, 1, b"half")
        rec = client.get(key(claims[5].id))
        assert rec[:1] == b"\x01" and Record.parse(rec).flags == b"p"
        stored = await backend.get(claims[5].id)
        assert stored is not None and stored.progress == b"half" and stored.state == ACTIVE

        # The retried and released jobs come back with their attempts, then succeed.
        downgrade(claims[1].id)
        again = await backend.claim(["q"], 10, 30.0)
        assert {c.id: c.attempt for c in again} == {claims[1].id: 2, claims[2].id: 1, ids[7]: 1}
        assert await backend.ack_many([Ack(c.id, c.token, AckKind.SUCCEED) for c in again]) == [True] * 3
        assert (await backend.stats())["q"]["succeeded"] == 4
    finally:
        client.close()


async def test_a_scheduled_text_record_is_promoted_when_due(server: RedisServer, open_backend) -> None:  # type: ignore[no-untyped-def]
    backend = await open_backend(server.url)
    client = server.client()
    try:
        job_id = new_job_id()
        await backend.enqueue_many([NewJob(job_id, "q", 0, 0.2, 3, b"x")])
        k = f"{backend.options.prefix}:{{q}}:j:{job_id}"
        fields = Record.parse(client.get(k))
        assert fields.state == str(SCHEDULED).encode() and fields.run_at
        client.set(k, text(fields))
        assert await backend.claim(["q"], 1, 30.0) == []
        await asyncio.sleep(0.3)
        claims = await backend.claim(["q"], 1, 30.0)
        assert [(c.id, c.attempt) for c in claims] == [(job_id, 1)]
        rec = client.get(k)
        assert rec[:1] == b"\x01" and Record.parse(rec).run_at == fields.run_at
    finally:
        client.close()


async def test_an_expired_lease_of_a_text_record_is_taken_back(server: RedisServer, open_backend) -> None:  # type: ignore[no-untyped-def]
    backend = await open_backend(server.url, dead_ttl=3600)
    client = server.client()
    try:
        again, last = new_job_id(), new_job_id()
        await backend.enqueue_many([NewJob(again, "q", 0, 0.0, 3, b"x"), NewJob(last, "q", 0, 0.0, 1, b"y", "k|é")])
        assert len(await backend.claim(["q"], 2, 0.2)) == 2
        keys = {j: f"{backend.options.prefix}:{{q}}:j:{j}" for j in (again, last)}
        for k in keys.values():
            client.set(k, text(Record.parse(client.get(k))))
        await asyncio.sleep(0.3)
        # The next claim takes both back: one to its queue (and leases it again), one dead.
        claims = await backend.claim(["q"], 2, 30.0)
        assert [(c.id, c.attempt, c.token) for c in claims] == [(again, 2, 2)]
        dead = await backend.get(last)
        assert dead is not None and dead.state == DEAD and dead.unique_key == "k|é" and dead.attempt == 1
        assert msgpack.unpackb(dead.errors[-1], raw=False)["type"] == "LeaseExpiredError"
        assert client.hget(f"{backend.options.prefix}:{{q}}:unique", "k|é") is None
        assert all(client.get(k)[:1] == b"\x01" for k in keys.values())
    finally:
        client.close()


@pytest.mark.parametrize("damage", ["truncated", "trailing bytes", "unknown version", "empty"])
async def test_a_record_neither_layout_reads_is_dead_lettered_with_a_reason(
    server: RedisServer, open_backend, damage: str  # type: ignore[no-untyped-def]
) -> None:
    backend = await open_backend(server.url, dead_ttl=3600)
    client = server.client()
    try:
        good, bad = new_job_id(), new_job_id()
        await backend.enqueue_many([NewJob(bad, "q", 0, 0.0, 3, b"x"), NewJob(good, "q", 0, 0.0, 3, b"y")])
        k = f"{backend.options.prefix}:{{q}}:j:{bad}"
        rec = client.get(k)
        client.set(k, {"truncated": rec[:-1], "trailing bytes": rec + b"\x00", "unknown version": b"\x02" + rec[1:],
                       "empty": b""}[damage])
        claims = await backend.claim(["q"], 2, 30.0)
        assert [c.id for c in claims] == [good]
        stored = await backend.get(bad)
        assert stored is not None and stored.state == DEAD
        assert stored.errors, stored
        error = msgpack.unpackb(stored.errors[-1], raw=False)
        assert error["type"] == "CorruptJobError" and error["message"] == "the job record in Redis is unreadable"
        assert client.get(k)[:1] == b"\x01"
    finally:
        client.close()


def test_stored_job_reads_a_job_the_same_in_either_layout() -> None:
    fields = Record(str(ACTIVE).encode(), b"2", b"5", b"9", b"-3", b"0000000000000042", b"1765000000.250000",
                    b"1765000010.000000", b"1765000011.125000", b"", b"00ff", b"", b"1765000041.125000", b"77", b"1l",
                    "ü|k".encode())
    key = "ü|k".encode()
    binary = (struct.pack(">BBBBBIiiddQdiidd", 1, ACTIVE, 1 | 16 | 32, 0, 2, len(key), 2, 9, 1765000011.125,
                          1765000041.125, 77, 0.0, 5, -3, 1765000000.25, 1765000010.0)
              + b"\x00\xff" + key + struct.pack(">Q", 42))
    assert Record.parse(binary) == fields
    assert stored_job("j", "q", binary, b"b", None, None, 1765000020.0) == stored_job(
        "j", "q", text(fields), b"b", None, None, 1765000020.0)
