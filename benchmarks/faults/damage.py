"""Scenario 8: bad data. Poison jobs, payloads no codec reads, payloads over the worker's limit,
task names the worker does not know, and one queue's storage damaged in place."""

from __future__ import annotations

import asyncio

from benchmarks.faults.harness import Row, Run
from benchmarks.faults.workerapp import BAD_QUEUE, WORK_QUEUE

BROKEN_QUEUE = "broken"
GARBAGE = b"\xc1 not msgpack: damaged by the fault suite"
OVERSIZED = 1_200_000
"""Bytes of argument: within the producer's max_payload (4 MiB), over the worker's (1 MiB)."""


async def bad_data(run: Run, row: Row) -> None:
    """8. The worker survives every kind of bad job, dead-letters each with its reason, and its
    healthy queue keeps running beside a damaged one."""
    app = run.app
    k = 3 if run.scale.quick else 10
    healthy_n = 50 if run.scale.quick else 500

    @app.task(name="faults.unknown", queue=BAD_QUEUE)
    async def unknown() -> None:  # registered by the producer only: no worker knows it
        return None

    work = run.task("faults.work")
    poison = run.task("faults.poison")
    await app.pause(BAD_QUEUE)
    expected: dict[str, str] = {}
    for h in await app.enqueue_many([poison.call() for _ in range(k)]):
        expected[h.id] = "RuntimeError"
    for h in await app.enqueue_many([unknown.call() for _ in range(k)]):
        expected[h.id] = "UnknownTaskError"
    for h in await app.enqueue_many([work.options(queue=BAD_QUEUE).call(0, "x" * OVERSIZED) for _ in range(k)]):
        expected[h.id] = "PayloadTooLargeError"
    malformed = await app.enqueue_many([work.options(queue=BAD_QUEUE).call(0, "malformed") for _ in range(k)])
    for h in malformed:
        await asyncio.to_thread(run.server.corrupt_job, run.prefix, BAD_QUEUE, h.id, b"faults.work", GARBAGE)
        expected[h.id] = "CorruptJobError"
    await app.resume(BAD_QUEUE)
    healthy = await run.enqueue_work(healthy_n, (0, 5))
    # The damaged queue first: a claim that trips over it must not starve the others.
    worker = run.fleet.start(concurrency=8, queues=[BROKEN_QUEUE, WORK_QUEUE, BAD_QUEUE])

    async def all_dead() -> bool:
        infos = [await app.get_job(j) for j in expected]
        return all(i is not None and i.state == "dead" for i in infos)

    # Phase 1, bad jobs beside a healthy queue; phase 2, one queue's storage damaged.
    await run.all_ended(timeout=15 + run.lease, ids=healthy)
    await run.until(all_dead, timeout=10 + run.lease, poll=0.2)
    await app.pause(BROKEN_QUEUE)
    broken = await app.enqueue_many([work.options(queue=BROKEN_QUEUE).call(0) for _ in range(k)])
    damaged = await asyncio.to_thread(run.server.damage_queue, run.prefix, BROKEN_QUEUE)
    await app.resume(BROKEN_QUEUE)
    beside = await run.enqueue_work(healthy_n, (0, 5))
    healthy += beside
    beside_done = await run.all_ended(timeout=(5 if run.scale.quick else 15) + run.lease, ids=beside)
    if run.backend == "postgres":  # damaged bodies: each is dead-lettered like a malformed job
        expected.update({h.id: "CorruptJobError" for h in broken})
        await run.until(all_dead, timeout=5 + run.lease, poll=0.2)
    reasons: dict[str, list[str]] = {}
    wrong = []
    for job, want in expected.items():
        info = await app.get_job(job)
        got = info.errors[-1].type if info is not None and info.errors else (info.state if info else "missing")
        if info is None or info.state != "dead" or got != want:
            wrong.append(f"{want}: {info.state if info else 'missing'} ({got})")
        reasons.setdefault(want, []).append(got)
    try:
        await app.stats()
        stats_error = ""
    except Exception as exc:  # noqa: BLE001 - what stats() raises is the finding
        stats_error = f"{type(exc).__name__}: {exc}"[:120]
    alive = worker.alive()
    row.faults = len(expected) + (k if run.backend == "redis" else 0)
    row.count(run.tally(healthy))
    row.jobs = len(healthy) + len(expected) + (k if run.backend == "redis" else 0)
    row.check("worker survives", alive, f"worker {'running' if alive else 'exited'}: {run.fleet.tail(worker, 1)[:80]}")
    row.check("each dead-lettered with its reason", not wrong,
              f"{len(expected) - len(wrong)} of {len(expected)} dead with the expected error type"
              + (f"; wrong: {', '.join(sorted(set(wrong)))}" if wrong else ""))
    row.check("other queues keep running", beside_done,
              f"{run.ended(beside)} of {len(beside)} healthy jobs ran beside the damaged queue "
              f"({', '.join(damaged) or 'nothing damaged'})", gap="gap 4" if run.backend == "redis" else "")
    row.check("stats() answers with a damaged queue", not stats_error, stats_error or "it does",
              gap="gap 4" if run.backend == "redis" else "")
