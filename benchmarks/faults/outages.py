"""Scenarios 5-7: the server restarts, connections are killed, a worker's clock is wrong."""

from __future__ import annotations

import asyncio
import random
import statistics

from benchmarks.faults.fleet import WorkerProcess
from benchmarks.faults.harness import Row, Run, true_time
from benchmarks.faults.ledger import Fault, by_job
from benchmarks.faults.workerapp import WORK_QUEUE

RESTART_BACK = 2.0
"""Seconds after the server answers again within which jobs must be running again."""


async def _start_workers(run: Run, n: int, concurrency: int, env: dict[str, str] | None = None) -> list[WorkerProcess]:
    # Started from a thread: the producer keeps enqueuing meanwhile.
    fleet = run.fleet
    workers = [fleet.start(concurrency=concurrency, wait=False, env=env) for _ in range(n)]
    for w in workers:
        await asyncio.to_thread(fleet.wait_ready, w)
    return workers


async def server_restart(run: Run, row: Row) -> None:
    """5. The server goes down under load (Redis: kill -9 with AOF always; PostgreSQL: fast, then
    immediate) and comes back: no acknowledged enqueue is lost, jobs run again within 2 s."""
    scale = run.scale
    rate = 150 if scale.quick else 400
    await _start_workers(run, 2, 8)
    stop = asyncio.Event()
    producer = asyncio.create_task(run.produce(stop, rate))
    try:
        outages: list[Fault] = []
        for mode in run.server.restart_modes():
            await asyncio.sleep(1.5 if scale.quick else 4.0)
            went, back = await asyncio.to_thread(run.server.outage, mode, scale.outage)
            fault = Fault(f"server {mode}", went, 0, back)
            run.server_faults.append(fault)
            outages.append(fault)
        await asyncio.sleep(2.0 if scale.quick else 5.0)
    finally:
        stop.set()
        await asyncio.wait_for(producer, 15)
    ended = await run.all_ended(timeout=30 + run.lease * 3)
    runs = run.runs()
    recoveries = []
    for fault in outages:
        assert fault.until is not None
        after = [r.start for r in runs if r.start >= fault.until]
        recoveries.append(min(after) - fault.until if after else float("inf"))
    row.faults = len(outages)
    row.count(run.tally())
    row.recovery_s = max(recoveries, default=None)
    row.check("0 acknowledged enqueues lost", row.lost == 0 and ended,
              f"{row.lost} of {row.jobs} lost ({run.enqueue_errors} enqueue calls failed during the outages)")
    row.check(f"processing again < {RESTART_BACK:g} s", all(r < RESTART_BACK for r in recoveries),
              "first job started " + ", ".join(f"{r:.2f} s" for r in recoveries) + " after the server was back")
    row.check("no duplicate of a run that ended", row.duplicates == row.explained,
              f"{row.duplicates} duplicate runs, {row.duplicates - row.explained} of runs that had ended "
              f"(their outcome waited for the server; down {scale.outage:g} s, lease {run.lease:g} s)",
              gap="gap 2")
    run.check_error_types(row)


async def connection_kills(run: Run, row: Row) -> None:
    """6. Every client connection is killed again and again under load: nothing is lost, and the
    workers' open file descriptors stay flat (no leaked sockets)."""
    scale = run.scale
    rate = 150 if scale.quick else 400
    workers = await _start_workers(run, 2, 8)
    stop = asyncio.Event()
    producer = asyncio.create_task(run.produce(stop, rate))
    kills = 6 if scale.quick else 20
    killed = 0
    try:
        await asyncio.sleep(1.0)
        before = {w.pid: _fds(w.pid) for w in workers}
        for _ in range(kills):
            await asyncio.sleep(random.uniform(0.3, 0.7))
            fault = Fault("kill connections", true_time(), 0)
            killed += await asyncio.to_thread(run.server.kill_connections)
            fault.until = true_time()
            run.server_faults.append(fault)
        await asyncio.sleep(1.5)
        after = {w.pid: _fds(w.pid) for w in workers}
    finally:
        stop.set()
        await asyncio.wait_for(producer, 15)
    ended = await run.all_ended(timeout=30 + run.lease * 3)
    runs = run.runs()
    gaps = []
    for fault in run.server_faults:
        later = [r.start for r in runs if r.start >= fault.at]
        if later:
            gaps.append(min(later) - fault.at)
    row.faults = kills
    row.count(run.tally())
    row.recovery_s = max(gaps, default=None)
    row.check("0 lost", row.lost == 0 and ended,
              f"{row.lost} of {row.jobs} lost; {killed} connections killed in {kills} rounds "
              f"({run.enqueue_errors} enqueue calls failed)")
    grown = {pid: after[pid] - before[pid] for pid in before}
    row.check("worker file descriptors flat", all(after[p] >= 0 and g <= 2 for p, g in grown.items()),
              "open fds per worker " + ", ".join(f"{before[p]} -> {after[p]}" for p in before))
    run.check_error_types(row)
    if row.duplicates != row.explained:
        row.notes.append(f"{row.duplicates - row.explained} duplicate runs of runs that had ended")


def _fds(pid: int) -> int:
    from benchmarks.faults.fleet import fd_count

    return fd_count(pid)


SKEW = 90.0


async def clock_skew(run: Run, row: Row) -> None:
    """7. One worker's clock runs 90 s ahead, another's 90 s behind: no delayed job starts early
    (delays are judged by the server's clock) and no lease is taken back early (nor late)."""
    scale = run.scale
    n = 24 if scale.quick else 120
    for skew in (SKEW, -SKEW):
        w = run.fleet.start(concurrency=4, wait=False, env={"FAULTS_CLOCK_SKEW": str(skew)})
        await asyncio.to_thread(run.fleet.wait_ready, w)
    await _start_workers(run, 1, 4)
    delayed = run.task("faults.delayed")
    due: dict[str, float] = {}
    for _ in range(n):
        delay = random.uniform(0.5, 2.5)
        at = true_time() + delay
        handle = await delayed.options(delay=delay).enqueue(at, 50)
        due[handle.id] = at
    run.acked += list(due)
    # One phase after the other, so a due job finds a free slot and its start measures the clock.
    await run.all_ended(timeout=15, ids=list(due))
    # Jobs that outlive their lease: only renewals keep them; a worker judging leases by its
    # own clock (90 s ahead) would take them all back at once.
    long_ids = await run.enqueue_work(n, (int(run.lease * 1500),) * 2, queue=WORK_QUEUE)
    ended = await run.all_ended(timeout=30 + n * run.lease * 1.5 / 12)
    runs = run.runs()
    jobs = by_job(runs)
    early = [(jobs[j][0].start - at) for j, at in due.items() if j in jobs and jobs[j][0].start < at - 0.002]
    row.faults = 2
    row.count(run.tally())
    long_dups = sum(len(jobs.get(j, ())) - 1 for j in long_ids if len(jobs.get(j, ())) > 1)
    pids = {r.pid for r in runs}
    row.check("0 lost", row.lost == 0 and ended, f"{row.lost} of {row.jobs} lost")
    margin = min((jobs[j][0].start - at for j, at in due.items() if j in jobs), default=0.0)
    row.check("no job starts early", not early,
              f"{len(early)} of {n} delayed jobs started before their time (earliest start "
              f"{margin * 1000:+.1f} ms from due)")
    row.check("leases judged by server time", long_dups == 0,
              f"{long_dups} of {n} jobs longer than the lease ran twice; {len(pids)} workers ran jobs")
    skewed = [w for w in run.fleet.workers[:2]]
    ran = {w.pid: sum(1 for r in runs if r.pid == w.pid) for w in skewed}
    row.notes.append("runs by the +90 s / -90 s workers: " + " / ".join(str(v) for v in ran.values())
                     + f"; median start delay of delayed jobs {statistics.median([jobs[j][0].start - at for j, at in due.items() if j in jobs] or [0]) * 1000:.0f} ms")
