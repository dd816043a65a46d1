"""Scenarios 9-10: contention (8 processes x 8 slots on one queue) and sustained load (memory, storage)."""

from __future__ import annotations

import asyncio

from benchmarks.faults.fleet import descendants, rss_kib
from benchmarks.faults.harness import Row, Run, true_time

PROCESSES, SLOTS = 8, 8


async def many_processes(run: Run, row: Row) -> None:
    """9. ``fastjobs worker --processes 8 --concurrency 8`` on one queue: every job runs exactly
    once, none twice at the same time, and the server sees no deadlock."""
    jobs = max(1000, run.scale.jobs) if run.scale.quick else run.scale.jobs * 2
    deadlocks_before = await _deadlocks(run)
    ids = await run.enqueue_work(jobs, (1, 10))
    started = true_time()
    supervisor = run.fleet.start(concurrency=SLOTS, processes=PROCESSES, wait=False)
    await asyncio.to_thread(run.fleet.wait_ready, supervisor, PROCESSES)
    ended = await run.all_ended(timeout=30 + jobs / 200)
    took = true_time() - started
    children = descendants(supervisor.pid)
    pids = {r.pid for r in run.runs()}
    deadlocks = await _deadlocks(run) - deadlocks_before
    log_deadlocks = supervisor.log.read_text(errors="replace").lower().count("deadlock")
    row.count(run.tally(ids))
    row.recovery_s = None
    row.check("each job runs exactly once", ended and row.lost == 0 and row.duplicates == 0,
              f"{row.jobs - row.lost} of {row.jobs} ran, {row.duplicates} twice, in {took:.1f} s "
              f"by {len(pids)} processes ({len(children)} alive under the supervisor)")
    row.check("no overlapping runs", row.overlaps == 0, f"{row.overlaps} overlaps")
    row.check("0 deadlocks", deadlocks == 0 and log_deadlocks == 0,
              f"{deadlocks} deadlocks counted by the server, {log_deadlocks} in the worker logs")


async def _deadlocks(run: Run) -> int:
    counter = getattr(run.server, "deadlocks", None)
    return 0 if counter is None else int(await asyncio.to_thread(counter))


def _slope(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (t, value), per minute."""
    n = len(samples)
    if n < 2:
        return 0.0
    mt = sum(t for t, _ in samples) / n
    mv = sum(v for _, v in samples) / n
    var = sum((t - mt) ** 2 for t, _ in samples)
    return 0.0 if var == 0 else sum((t - mt) * (v - mv) for t, v in samples) / var * 60


async def sustained(run: Run, row: Row) -> None:
    """10. Steady load for a while (60 s in the full run): worker memory does not grow, and the
    store does not pile up (Redis keys under the prefix, PostgreSQL dead tuples)."""
    scale = run.scale
    rate = 300 if scale.quick else 800
    workers = [run.fleet.start(concurrency=16, wait=False) for _ in range(2)]
    for w in workers:
        await asyncio.to_thread(run.fleet.wait_ready, w)
    stop = asyncio.Event()
    producer = asyncio.create_task(run.produce(stop, rate, ms=(0, 3), batch=20))
    rss: dict[int, list[tuple[float, float]]] = {w.pid: [] for w in workers}
    sizes: list[tuple[float, float]] = []
    begin = true_time()
    try:
        while true_time() - begin < scale.sustained:
            await asyncio.sleep(1.0)
            now = true_time() - begin
            for w in workers:
                rss[w.pid].append((now, rss_kib(w.pid) / 1024))
            sizes.append((now, await asyncio.to_thread(run.server.size, run.prefix)))
    finally:
        stop.set()
        await asyncio.wait_for(producer, 15)
    ended = await run.all_ended(timeout=30)
    row.count(run.tally())
    # Warm-up (imports, pools, caches) is the first third; judge the rest.
    settled = {pid: s[len(s) // 3:] for pid, s in rss.items()}
    slopes = {pid: _slope(s) for pid, s in settled.items()}
    growth = {pid: (s[-1][1] - s[0][1]) if s else 0.0 for pid, s in settled.items()}
    third = max(1, len(sizes) // 3)
    early_peak = max((v for _, v in sizes[:third]), default=0)
    late_low = min((v for _, v in sizes[-third:]), default=0)
    peak = max((v for _, v in sizes), default=0)
    what = "keys under the prefix" if run.backend == "redis" else "dead tuples"
    row.check("0 lost", row.lost == 0 and ended, f"{row.lost} of {row.jobs} lost at {rate} jobs/s "
              f"for {scale.sustained:g} s")
    # Noise on a shared 2-core machine is a few MiB: a leak of 1 KiB a job at this rate is 18+ MiB/min.
    row.check("RSS slope ~ 0", all(abs(g) <= 4.0 for g in growth.values()),
              "after warm-up, MiB/min " + ", ".join(f"{slopes[p]:+.1f}" for p in slopes)
              + "; growth MiB " + ", ".join(f"{growth[p]:+.1f}" for p in growth)
              + "; RSS MiB " + ", ".join(f"{s[-1][1]:.0f}" for s in rss.values() if s))
    # Cleanup and vacuum work in cycles (the worker's cleanup every 30 s, autovacuum's naptime):
    # what must not happen is a pile-up that never comes back down.
    row.check(f"{what} bounded", late_low <= early_peak * 1.5 + 500,
              f"peak {peak:,.0f}; first third's peak {early_peak:,.0f}, last third's low {late_low:,.0f}")
