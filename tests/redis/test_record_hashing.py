"""Job records written so that Lua's string hash samples their seq (servers before Redis 7.0).

Lua 5.1 in Redis before 7.0 hashes a string of length l from every
((l >> 5) + 1)-th byte only, counting back from the last; claim and ack pad a
time field of the records they write with zeros (hash_pad in _common) so that
the seq's last digit is one of those bytes. Redis 7.0 hashes every byte: there
the records are written as before, unpadded.
"""

from __future__ import annotations

import importlib.resources
import os
import random
import re
import shutil
import subprocess
import time

import pytest

from fastjobs._core import ACTIVE, SUCCEEDED
from fastjobs.backends import NewJob
from fastjobs.backends.redis.records import Record
from fastjobs.backends.redis.scripts import state_prelude
from fastjobs.backends.values import Ack
from fastjobs.job import new_job_ids
from tests.redis.servers import RedisServer

FOLDER = importlib.resources.files("fastjobs") / "lua"


def lua51_hash(s: bytes) -> int:
    """Lua 5.1's string hash (lstring.c), as Redis before 7.0 runs it."""
    h = len(s)
    step = (len(s) >> 5) + 1
    i = len(s)
    while i >= step:
        h = (h ^ (((h << 5) & 0xFFFFFFFF) + (h >> 2) + s[i - 1])) & 0xFFFFFFFF
        i -= step
    return h


def seq_sampled(record: bytes) -> bool:
    """Whether Lua 5.1's hash of ``record`` reads the last digit of its seq."""
    last = len(b"|".join(record.split(b"|")[:6])) - 1
    return (len(record) - 1 - last) % ((len(record) >> 5) + 1) == 0


def server_version(binary: str) -> tuple[int, ...]:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30).stdout
    m = re.search(r"v=(\d+)\.(\d+)", out)
    return (int(m[1]), int(m[2])) if m else (0, 0)


def pre7_binary() -> str | None:
    """A redis-server older than 7.0 (FASTJOBS_REDIS6_SERVER, or one on PATH), if this machine has one."""
    for candidate in (os.environ.get("FASTJOBS_REDIS6_SERVER"), shutil.which("redis-server")):
        if candidate and os.access(candidate, os.X_OK) and (0, 0) < server_version(candidate) < (7, 0):
            return candidate
    return None


def hash_pad_source() -> str:
    common = (FOLDER / "_common.lua").read_text("utf-8")
    common = common.replace("-- @include _events", (FOLDER / "_events.lua").read_text("utf-8"))
    return state_prelude() + common + """
local out = {}
for i = 1, #ARGV, 2 do out[#out + 1] = hash_pad(tonumber(ARGV[i]), tonumber(ARGV[i + 1])) end
return out
"""


def test_hash_pad_makes_the_last_digit_of_seq_a_sampled_byte(redis_url: str) -> None:
    import redis

    from tests.backends import reachable

    if not reachable(redis_url):
        pytest.skip("no Redis")
    rng = random.Random(17)
    shapes = []
    for _ in range(400):
        head = "2|" + str(rng.randint(1, 999)) + "|" + str(rng.randint(1, 99)) + "|" + str(rng.randint(1, 9999)) + "|"
        head += rng.choice(["0", "-5", "12"]) + "|"
        tail = "|" + "x" * rng.randint(0, 400)  # steps up to 14
        shapes.append((head, tail))
    args: list[int] = []
    for head, tail in shapes:
        size = len(head) + 16 + len(tail)
        args += [size, len(head) + 17]  # q: the position just after seq, 1-based
    client = redis.Redis.from_url(redis_url)
    try:
        pads = [p.decode() for p in client.eval(hash_pad_source(), 0, *args)]
    finally:
        client.close()
    for (head, tail), pad in zip(shapes, pads):
        assert set(pad) <= {"0"} and len(pad) <= 16
        # The pad goes after seq (a time field's trailing zeros); seqs differing
        # only in their last digit then hash apart.
        hashes = {lua51_hash((head + "%016d" % (1230 + d) + tail[:1] + pad + tail[1:]).encode()) for d in range(10)}
        assert len(hashes) == 10, (head, len(tail), pad)


async def test_a_7_0_server_gets_records_written_as_before(redis_url: str, open_backend) -> None:  # type: ignore[no-untyped-def]
    import redis

    backend = await open_backend(redis_url)
    client = redis.Redis.from_url(redis_url)
    try:
        if server_version_of(client) < (7, 0):
            pytest.skip("the shared server is older than 7.0")
        jobs = [NewJob(job_id, "q", 0, 0.0, 3, b"x") for job_id in new_job_ids(20)]
        await backend.enqueue_many(jobs)
        claims = await backend.claim(["q"], 20, 30.0)
        assert len(claims) == 20
        for rec in client.mget([f"{backend.options.prefix}:{{q}}:j:{c.id}" for c in claims]):
            fields = Record.parse(rec)
            assert re.fullmatch(rb"\d+\.\d{6}", fields.lease_until), rec
            assert re.fullmatch(rb"\d+\.\d{6}", fields.enqueued_at), rec
    finally:
        client.close()


def server_version_of(client) -> tuple[int, ...]:  # type: ignore[no-untyped-def]
    major, minor = client.info("server")["redis_version"].split(".")[:2]
    return (int(major), int(minor))


async def test_claim_and_ack_on_a_pre_7_server_pad_records_that_every_reader_reads(open_backend) -> None:  # type: ignore[no-untyped-def]
    binary = pre7_binary()
    if binary is None:
        pytest.skip("no redis-server older than 7.0 here (set FASTJOBS_REDIS6_SERVER)")
    server = RedisServer(binary).start()
    try:
        client = server.client()
        backend = await open_backend(server.url, result_ttl=3600)
        prefix = backend.options.prefix
        # Records of several lengths (max_attempts of 1 to 4 digits): without
        # the padding some of them would leave the seq unsampled.
        jobs = [NewJob(job_id, "q", 0, 0.0, (3, 10, 100, 1000)[i % 4], b"x") for i, job_id in enumerate(new_job_ids(300))]
        await backend.enqueue_many(jobs)
        before = time.time()
        claims = await backend.claim(["q"], 300, 30.0)
        assert len(claims) == 300
        keys = [f"{prefix}:{{q}}:j:{c.id}" for c in claims]
        active = client.mget(keys)
        # Consecutive seqs hash apart by their last digit: ten chains, not one.
        assert all(seq_sampled(rec) for rec in active)
        assert len({lua51_hash(rec) for rec in active}) >= 10

        # A record leased before the padding (as the previous version wrote it):
        # acked and read as any other.
        old = Record.parse(active[0])
        unpadded = old._replace(lease_until=b"%.6f" % float(old.lease_until))
        client.set(keys[0], b"|".join(unpadded))

        applied = await backend.ack_many([Ack(c.id, c.token, 0) for c in claims])
        assert all(applied)
        done = client.mget(keys)
        assert all(seq_sampled(rec) for rec in done)
        assert len({lua51_hash(rec) for rec in done}) >= 10
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
        client.close()
    finally:
        server.close()
