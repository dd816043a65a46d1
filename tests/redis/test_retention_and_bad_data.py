"""Bounded memory under a sustained run, and bad data in Redis going to the dead-letter queue."""

from __future__ import annotations

import asyncio
import time

import pytest

import fastjobs
from fastjobs.backends import NewJob
from fastjobs.job import new_job_id
from tests.backends import unique_prefix
from tests.redis.conftest import counts
from tests.redis.servers import RedisServer


@pytest.mark.slow
async def test_key_count_and_memory_stay_flat_under_a_sustained_run(server: RedisServer) -> None:
    """Finished jobs are deleted after result_ttl by the ack script itself (cleanup never runs here)."""
    app = fastjobs.App(server.url, prefix=unique_prefix(), result_ttl=0.3, dead_ttl=0.3)

    @app.task(max_attempts=1)
    async def work(n: int) -> None:
        if n % 10 == 0:
            raise fastjobs.Fail("every tenth job goes dead")

    admin = server.client()
    samples: list[tuple[float, int, int]] = []
    worker = app.worker(["default"], concurrency=100, handle_signals=False)
    runner = asyncio.ensure_future(worker.run())
    try:
        started = time.monotonic()
        n = 0
        while time.monotonic() - started < 4.0:
            await app.enqueue_many([work.call(i) for i in range(n, n + 100)])
            n += 100
            # Keep the backlog small whatever the machine's speed: what is
            # measured is finished jobs going away, not queued ones piling up.
            while (await counts(app)).get("queued", 0) > 300:
                await asyncio.sleep(0.01)
            if n % 1000 == 0:
                info = admin.info("memory")
                samples.append((time.monotonic() - started, admin.dbsize(), int(info["used_memory"])))
    finally:
        worker.request_stop()
        await runner
        await app.close()
        admin.close()
    print("\nsamples (s, keys, used_memory):", samples, "jobs:", n)
    assert n >= 2000, "the run was too short to mean anything"
    warm = [s for s in samples if s[0] >= 1.5]
    assert warm, samples
    keys = [k for _, k, _ in warm]
    # About (rate x result_ttl) finished jobs are kept, a few keys each; nowhere
    # near the n jobs enqueued, and not growing once warm.
    assert max(keys) < n, samples
    assert keys[-1] <= 2 * max(keys[0], 200), samples
    memory = [m for _, _, m in warm]
    assert memory[-1] < 3 * memory[0], samples


async def test_bad_data_goes_to_the_dead_letter_queue(server: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    """Garbage records, missing bodies or records, a key of the wrong type, garbage body bytes:
    each such job ends dead with a reason, and the worker runs the good ones."""
    prefix = unique_prefix()
    app = fastjobs.App(server.url, prefix=prefix)

    @app.task()
    async def fine(n: int) -> int:
        return n

    good = [await fine.enqueue(i) for i in range(3)]
    victims = {name: await fine.enqueue(100 + i) for i, name in enumerate(
        ["garbage record", "no body", "no record", "record of the wrong type", "garbage body"])}
    base = f"{prefix}:{{default}}:"
    admin = server.client()
    try:
        admin.set(base + "j:" + victims["garbage record"].id, b"\xff\x00 not a job record")
        admin.delete(base + "b:" + victims["no body"].id)
        admin.delete(base + "j:" + victims["no record"].id)
        admin.delete(base + "j:" + victims["record of the wrong type"].id)
        admin.rpush(base + "j:" + victims["record of the wrong type"].id, b"a list, not a string")
        admin.set(base + "b:" + victims["garbage body"].id, b"\xc1\xc1 garbage")
        # A member of the ready set with no job at all behind it.
        ghost = new_job_id()
        admin.zadd(base + "ready", {("0000000000000999" + ghost).encode(): 0})

        worker = app.worker(["default"], burst=True, handle_signals=False)
        await asyncio.wait_for(worker.run(), 30)
        assert [await h.result(timeout=5) for h in good] == [0, 1, 2]
        for name, handle in victims.items():
            info = await handle.info()
            assert info is not None and info.state == "dead", (name, info)
            assert info.errors and info.errors[-1].type == "CorruptJobError", (name, info.errors)
            assert info.errors[-1].message, name
        ghost_info = await app.get_job(ghost)
        assert ghost_info is not None and ghost_info.state == "dead"
        assert "missing" in ghost_info.errors[-1].message
        dead_ids = {d.id for d in await app.dead_letters()}
        assert dead_ids == {h.id for h in victims.values()} | {ghost}
        c = await counts(app)
        assert c["succeeded"] == 3 and c["queued"] == 0 and c["active"] == 0
    finally:
        admin.close()
        await app.close()


async def test_cleanup_and_purge_delete_finished_jobs(server: RedisServer, open_backend) -> None:  # type: ignore[no-untyped-def]
    from fastjobs._core import CANCELLED, DEAD, SUCCEEDED
    from fastjobs.backends import Ack, AckKind
    from fastjobs.job import error_record

    backend = await open_backend(server.url, result_ttl=0.2, dead_ttl=0.2)
    jobs = [NewJob(new_job_id(), "q", 0, 0.0, 3, b"x") for _ in range(6)]
    await backend.enqueue_many(jobs)
    claims = await backend.claim(["q"], 4, 30.0)
    await backend.ack_many([Ack(c.id, c.token, AckKind.SUCCEED) for c in claims[:2]]
                           + [Ack(c.id, c.token, AckKind.DEAD, error_record(1, "E", "x")) for c in claims[2:]])
    assert await backend.cancel(jobs[5].id)
    stats = (await backend.stats())["q"]
    assert (stats["succeeded"], stats["dead"], stats["cancelled"], stats["queued"]) == (2, 2, 1, 1)
    await asyncio.sleep(0.3)
    assert await backend.cleanup() == 5
    stats = (await backend.stats())["q"]
    assert (stats["succeeded"], stats["dead"], stats["cancelled"], stats["queued"]) == (0, 0, 0, 1)
    admin = server.client()
    try:
        # Only the queued job, the queue's own structures and the registry remain.
        assert not [k for k in admin.keys(f"{backend.prefix}:*") if b":j:" in k and jobs[4].id.encode() not in k]
    finally:
        admin.close()
    for state in (SUCCEEDED, DEAD, CANCELLED):
        assert await backend.purge(state) == 0
