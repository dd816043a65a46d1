"""Damage and outages on a redis-server of the test's own (issue 12, gaps 3, 4 and 5).

A queue whose structures hold the wrong type of value is skipped by claim and
reported (once per retry interval, naming the key), and by stats; the queues
beside it keep running, in the same process and in a worker process. A job
record of the wrong type is reported as such, not as missing. A stopped
server makes calls raise BackendUnavailableError in bounded time.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time

import msgpack  # type: ignore[import-untyped, unused-ignore]
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

import fastjobs
from fastjobs.backends import NewJob
from fastjobs.backends.redis import RedisBackend, connection
from fastjobs.job import new_job_id
from tests.backends import unique_prefix
from tests.redis.conftest import ServerFactory, wait_until
from tests.redis.servers import RedisServer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LEASE = 30.0


def jobs(queue: str, n: int, priority: int = 0) -> list[NewJob]:
    return [NewJob(new_job_id(), queue, priority, 0.0, 3, b"x") for _ in range(n)]


def damage_ready_lists(server: RedisServer, prefix: str, queue: str, only: str | None = None) -> list[str]:
    """Overwrite the queue's ready lists (``rl:<score>``; or the one named ``only``) with a string."""
    admin = server.client()
    try:
        damaged = []
        for key in admin.scan_iter(match=f"{prefix}:{{{queue}}}:rl:*"):
            if only is None or key.decode().endswith(only):
                admin.set(key, b"not a list")
                damaged.append(key.decode())
        return sorted(damaged)
    finally:
        admin.close()


def damage_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "fastjobs.redis" and "is damaged" in r.getMessage()]


async def test_claim_serves_the_queues_beside_a_damaged_one(  # type: ignore[no-untyped-def]
    server: RedisServer, open_backend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="fastjobs.redis")
    backend: RedisBackend = await open_backend(server.url)
    for queue in ("a", "broken", "b"):
        await backend.enqueue_many(jobs(queue, 5))
    (key,) = damage_ready_lists(server, backend.prefix, "broken")

    # The healthy queue served before the damaged one keeps its claims (they are
    # not leased and lost with a failed call), the one after it is served too.
    claims = await backend.claim(["a", "broken", "b"], 100, LEASE)
    assert sorted(backend._claimed[c.id] for c in claims) == ["a"] * 5 + ["b"] * 5
    (warning,) = damage_warnings(caplog)
    assert "'broken'" in warning and f"{key} is a string, not a list" in warning

    # Left out of claims for a while: no call trips over it, no second warning.
    await backend.enqueue_many(jobs("a", 1))
    assert len(await backend.claim(["broken", "a"], 100, LEASE)) == 1
    assert len(damage_warnings(caplog)) == 1

    stats = await backend.stats()
    assert stats["broken"] == {"broken": f"{key} is a string, not a list"}
    assert stats["a"]["active"] == 6 and stats["b"]["active"] == 5


async def test_a_repaired_queue_is_claimed_from_again(  # type: ignore[no-untyped-def]
    server: RedisServer, open_backend, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.WARNING, logger="fastjobs.redis")
    monkeypatch.setattr(connection, "BROKEN_RETRY", 0.3, raising=False)
    backend: RedisBackend = await open_backend(server.url)
    await backend.enqueue_many(jobs("q", 2))
    (key,) = damage_ready_lists(server, backend.prefix, "q")
    assert await backend.claim(["q"], 10, LEASE) == []
    assert len(damage_warnings(caplog)) == 1
    time.sleep(0.4)
    assert await backend.claim(["q"], 10, LEASE) == []  # tried again, still damaged: warned again
    assert len(damage_warnings(caplog)) == 2

    admin = server.client()
    admin.delete(key)  # the repair: its jobs are gone with it
    admin.close()
    fresh = jobs("q", 3)
    await backend.enqueue_many(fresh)
    time.sleep(0.4)
    assert sorted(c.id for c in await backend.claim(["q"], 10, LEASE)) == sorted(j.id for j in fresh)
    assert any("no longer damaged" in r.getMessage() for r in caplog.records)


async def test_ready_entries_taken_before_the_damage_was_met_are_put_back(  # type: ignore[no-untyped-def]
    server: RedisServer, open_backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis undoes nothing of a script that fails half-way: the entries claim had popped
    from a healthy list of the queue before it met the damaged one must not be lost."""
    monkeypatch.setattr(connection, "BROKEN_RETRY", 0.0, raising=False)
    backend: RedisBackend = await open_backend(server.url)
    urgent = jobs("q", 3, priority=5)
    await backend.enqueue_many(urgent + jobs("q", 3, priority=0))
    (key,) = damage_ready_lists(server, backend.prefix, "q", only=":rl:0")
    assert await backend.claim(["q"], 10, LEASE) == []
    admin = server.client()
    admin.delete(key)
    admin.close()
    assert sorted(c.id for c in await backend.claim(["q"], 10, LEASE)) == sorted(j.id for j in urgent)


async def test_a_job_record_or_body_of_the_wrong_type_is_named(server: RedisServer, open_backend) -> None:  # type: ignore[no-untyped-def]
    backend: RedisBackend = await open_backend(server.url)
    listed, hashed, fine = jobs("q", 3)
    await backend.enqueue_many([listed, hashed, fine])
    base = f"{backend.prefix}:{{q}}:"
    admin = server.client()
    try:
        admin.delete(base + "j:" + listed.id)
        admin.rpush(base + "j:" + listed.id, b"a list, not a record")
        admin.delete(base + "b:" + hashed.id)
        admin.hset(base + "b:" + hashed.id, "a", "hash")
    finally:
        admin.close()
    # Not "no such job": the job is there, damaged.
    with pytest.raises(fastjobs.CorruptJobError, match=f"{base}j:{listed.id} is a list, not a string"):
        await backend.get(listed.id)

    assert [c.id for c in await backend.claim(["q"], 10, LEASE)] == [fine.id]
    for job, reason in ((listed, "the job record in Redis is a list, not a string"),
                        (hashed, "the job body in Redis is a hash, not a string")):
        stored = await backend.get(job.id)
        assert stored is not None and stored.state == fastjobs._core.DEAD
        error = msgpack.unpackb(stored.errors[-1], raw=False)
        assert (error["type"], error["message"]) == ("CorruptJobError", reason)


async def test_a_stopped_server_raises_backend_unavailable_within_connect_timeout(server_factory: ServerFactory) -> None:
    server = server_factory()
    app = fastjobs.App(server.url, prefix=unique_prefix(), connect_timeout=1.0)

    @app.task()
    async def work() -> None: ...

    try:
        await work.enqueue()
        server.stop()
        started = time.monotonic()
        with pytest.raises(fastjobs.BackendUnavailableError, match="connect_timeout") as raised:
            await work.enqueue()
        assert time.monotonic() - started < 3.0
        assert isinstance(raised.value.__cause__, RedisConnectionError)
        with pytest.raises(fastjobs.BackendUnavailableError):
            await app.stats()
        server.start()  # empty (no persistence); the same App works again
        handle = await work.enqueue()
        assert await app.get_job(handle.id) is not None
    finally:
        await app.close()


@pytest.mark.slow
async def test_a_worker_process_runs_the_queue_beside_a_damaged_one(server: RedisServer, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The issue's run: one queue's ready list replaced by a string; a worker process serving it
    and a healthy queue runs the healthy queue's 50 jobs, warns once, and stats() answers."""
    prefix = unique_prefix()
    app = fastjobs.App(server.url, prefix=prefix)

    @app.task(name="echo")  # tests.process.shared_app's task, which the worker process runs
    async def echo(text: str) -> str:
        return text

    env = {**os.environ, "FASTJOBS_TEST_URL": server.url, "FASTJOBS_TEST_PREFIX": prefix}
    cli = [sys.executable, "-m", "fastjobs"]
    try:
        await app.enqueue_many([echo.options(queue="broken").call(str(i)) for i in range(10)])
        (key,) = damage_ready_lists(server, prefix, "broken")
        healthy = await app.enqueue_many([echo.options(queue="healthy").call(str(i)) for i in range(50)])
        log_path = tmp_path / "worker.log"
        with open(log_path, "wb") as log:
            worker = subprocess.Popen(
                [*cli, "worker", "tests.process.shared_app:app", "--queues", "broken,healthy", "--concurrency", "8"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            )
        try:
            async def healthy_done() -> bool:
                infos = [await app.get_job(job_id) for job_id in healthy.ids]
                return all(info is not None and info.state == "succeeded" for info in infos)

            await wait_until(healthy_done, 15, 0.25, what="the healthy queue's 50 jobs beside the damaged queue")
        finally:
            worker.terminate()
            worker.wait(30)
        assert (await app.stats())["broken"] == {"broken": f"{key} is a string, not a list"}
        warnings = [line for line in log_path.read_text().splitlines() if "is damaged" in line]
        assert len(warnings) == 1, warnings
        assert "'broken'" in warnings[0] and key in warnings[0]
        info = subprocess.run([*cli, "info", "tests.process.shared_app:app"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=60)
        assert info.returncode == 0, info.stderr
        assert f"damaged: {key} is a string, not a list" in info.stdout
    finally:
        await app.close()
