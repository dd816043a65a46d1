"""No busy polling: idle workers block on Redis and wake at once on an enqueue or a due time.

Latencies are measured and printed (run with -s to see them). The bounds are the
targets (an idle wake-up in well under 20 ms, a delayed job started within 100 ms
of its due time) at the median, which a loaded 2-core CI box still meets with
room to spare (about 1 and 2 ms measured idle); single samples only have to beat
a poll.
"""

from __future__ import annotations

import asyncio
import statistics
import time

import fastjobs
from fastjobs.backends import NewJob
from fastjobs.job import new_job_id
from tests.backends import unique_prefix, wipe_namespace
from tests.redis.servers import RedisServer

TOP_LEVEL = {"cmdstat_client|id", "cmdstat_evalsha", "cmdstat_fcall", "cmdstat_blpop", "cmdstat_client|unblock"}


async def test_idle_worker_wakes_on_enqueue_and_on_due_time(redis_url: str) -> None:
    prefix = unique_prefix()
    app = fastjobs.App(redis_url, prefix=prefix)
    started: dict[str, float] = {}

    @app.task()
    async def mark(key: str) -> None:
        started[key] = time.time()

    worker = app.worker(["default"], handle_signals=False, poll_interval=5.0)
    runner = asyncio.ensure_future(worker.run())
    try:
        await asyncio.sleep(0.1)
        sent: dict[str, float] = {}
        for i in range(30):
            await asyncio.sleep(0.02)
            key = f"now-{i}"
            sent[key] = time.time()
            await mark.enqueue(key)
        due: dict[str, float] = {}
        for i in range(5):
            key = f"later-{i}"
            due[key] = time.time() + 0.3
            await mark.options(delay=0.3).enqueue(key)
            await asyncio.sleep(0.1)
        deadline = time.monotonic() + 10
        while len(started) < len(sent) + len(due) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
    finally:
        worker.request_stop()
        await runner
        await app.close()
        await wipe_namespace(redis_url, prefix)  # the shared server: leave it as found
    wake = sorted((started[k] - t) * 1000 for k, t in sent.items())
    late = sorted((started[k] - t) * 1000 for k, t in due.items())
    print(f"\nidle wake-up ms: p50 {statistics.median(wake):.2f} max {wake[-1]:.2f}; "
          f"delayed start after due ms: p50 {statistics.median(late):.2f} max {late[-1]:.2f}")
    assert statistics.median(wake) < 20, wake  # poll_interval is 5 s: this is a wake-up, not a poll
    assert statistics.median(late) < 100, late
    assert all(-20 < ms < 1000 for ms in late), late  # never early (20 ms of clock slack), never a poll late


async def test_cancelled_waits_leak_no_connections(server: RedisServer, open_backend) -> None:  # type: ignore[no-untyped-def]
    """The worker cancels wait() at shutdown: the blocked connection is closed, not left half-read."""
    backend = await open_backend(server.url)
    admin = server.client()
    try:
        for _ in range(20):
            task = asyncio.ensure_future(backend.wait(["q"], 30.0))
            await asyncio.sleep(0.02)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await asyncio.sleep(0.1)
        clients = admin.client_list()
        assert len(clients) <= 5, clients  # admin, pool connection(s), one waiter
        # And waiting still works afterwards.
        async def enqueue_soon() -> None:
            await asyncio.sleep(0.05)
            await backend.enqueue_many([NewJob(new_job_id(), "q", 0, 0.0, 3, b"x")])

        producer = asyncio.ensure_future(enqueue_soon())
        t = time.monotonic()
        await backend.wait(["q"], 10.0)
        assert time.monotonic() - t < 5
        await producer
    finally:
        admin.close()


async def test_wait_timeout_is_kept_without_polling(server: RedisServer, open_backend) -> None:  # type: ignore[no-untyped-def]
    """An idle wait costs a couple of commands, not a poll loop, and ends on time."""
    backend = await open_backend(server.url)
    admin = server.client()
    try:
        admin.config_resetstat()
        t = time.monotonic()
        await backend.wait(["q", "r"], 0.5)
        elapsed = time.monotonic() - t
        stats = admin.info("commandstats")
        calls = {k[len("cmdstat_"):]: v["calls"] for k, v in stats.items() if k in TOP_LEVEL}
        print(f"\nidle wait of 0.5 s took {elapsed * 1000:.1f} ms; commands: {calls}")
        assert 0.4 < elapsed < 2.0
        # CLIENT ID + peek script + BLPOP, pipelined in one round trip; CLIENT UNBLOCK at the deadline.
        script = "fcall" if backend._calls.functions else "evalsha"  # the function library (Redis 7) or scripts
        assert calls == {"client|id": 1, script: 1, "blpop": 1, "client|unblock": 1}, stats
    finally:
        admin.close()
