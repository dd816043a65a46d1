"""Scenarios 1-4: faults in worker processes (kill -9, crashes at chosen points, SIGTERM, SIGSTOP)."""

from __future__ import annotations

import asyncio
import random
import re
import signal

from benchmarks.faults.harness import SWEEP, Row, Run, interrupted_at, true_time
from benchmarks.faults.ledger import Fault, by_job
from benchmarks.faults.workerapp import CRASH_EXIT


async def kill_workers(run: Run, row: Row) -> None:
    """1. kill -9 random workers mid-run; each is replaced; nothing is lost, and every job a kill
    interrupted is taken back (back to queued, or claimed again) within lease + sweep."""
    scale = run.scale
    workers = 3 if scale.quick else 4
    ms = (20, 120)
    await run.enqueue_work(scale.jobs, ms)
    fleet = run.fleet
    started = [fleet.start(concurrency=8, wait=False) for _ in range(workers)]
    for w in started:
        fleet.wait_ready(w)
    # Spread the kills over the expected run time, leaving the last tenth alone.
    expected = scale.jobs * sum(ms) / 2 / 1000 / (workers * 8)
    interval = max(0.3, expected * 0.9 / scale.kills)
    bound = run.lease + SWEEP
    watchers: list[asyncio.Task[list[float]]] = []
    kills = 0
    while kills < scale.kills and run.ended() < scale.jobs * 0.9:
        await asyncio.sleep(interval * random.uniform(0.7, 1.3))
        alive = fleet.alive()
        if not alive:
            break
        victim = random.choice(alive)
        fault = fleet.kill(victim)
        kills += 1
        watchers.append(asyncio.create_task(_taken_back(run, fault, 3 * bound + 5)))
        fleet.start(concurrency=8, wait=False)
    ok = await run.all_ended(timeout=30 + expected * 2 + scale.lease * 3)
    taken = [t for w in watchers for t in await w]
    row.faults = kills
    row.count(run.tally())
    row.recovery_s = max(taken, default=0.0)
    delays = run.restart_delays()
    row.check("0 lost", row.lost == 0 and ok, f"{row.lost} lost of {row.jobs}")
    row.check("every interrupted job taken back within lease + sweep", row.recovery_s <= bound,
              f"{len(taken)} interrupted runs, slowest taken back {row.recovery_s:.2f} s after its kill "
              f"(lease {run.lease:g} s + sweep {SWEEP:g} s = {bound:g} s)")
    row.check("duplicates only of interrupted runs", row.duplicates == row.explained,
              f"{row.duplicates} duplicate runs, {row.explained} explained by a kill")
    row.notes.append(f"they ran again {min(delays, default=0):.2f}-{max(delays, default=0):.2f} s after the kill "
                     "(a job taken back queues behind the backlog)")


async def _taken_back(run: Run, fault: Fault, timeout: float) -> list[float]:
    """Seconds from the kill until the store no longer holds each run it interrupted under the dead
    worker's lease (the job is queued again, or claimed again with a higher attempt)."""
    await asyncio.sleep(0.05)  # the ledger has every start the worker wrote before it died
    waiting = {r.job: r.attempt for r in interrupted_at(fault, run.runs())}
    taken: list[float] = []
    deadline = fault.at + timeout
    while waiting and true_time() < deadline:
        for job, attempt in list(waiting.items()):
            info = await run.app.get_job(job)
            if info is None or info.state != "active" or info.attempt > attempt:
                taken.append(true_time() - fault.at)
                del waiting[job]
        await asyncio.sleep(0.05)
    return taken + [float("inf")] * len(waiting)


CRASH_POINTS = ("after-claim", "in-handler", "before-ack", "after-ack")
EXPECTED_RERUNS = {"after-claim": 1, "in-handler": 1, "before-ack": 1, "after-ack": 0}


async def crash_points(run: Run, row: Row) -> None:
    """2. A worker crashes at one point of a job's life: re-delivered 1 / 1 / 1 / 0 times."""
    fleet = run.fleet
    measured: dict[str, list[int]] = {p: [] for p in CRASH_POINTS}
    for _ in range(run.scale.reps):
        for point in CRASH_POINTS:
            if point == "after-claim":
                # One slot (and one prefetched job): the blocker runs and crashes
                # the worker while the target sits claimed but never started.
                work = run.task("faults.work")
                handles = await run.app.enqueue_many([work.call(300, "late"), work.call(0, "")])
                ids = [h.id for h in handles]
                run.acked += ids
                target = ids[1]
            else:
                ids = await run.enqueue_work(1, crash=point)
                target = ids[0]
            worker = fleet.start(concurrency=1)
            code = fleet.wait_exit(worker, timeout=10 + run.lease)
            if code is None:
                row.notes.append(f"{point}: the worker did not crash")
                fleet.stop(worker)
            else:
                fleet.faults.append(_exit_fault(point, worker.pid))
            replacement = fleet.start(concurrency=1)

            async def settled(ids: list[str] = ids) -> bool:
                infos = [await run.app.get_job(i) for i in ids]
                return all(i is not None and i.state == "succeeded" for i in infos)

            # The store, not the ledger: a run that ended before the crash is not done yet.
            done = await run.until(settled, timeout=10 + run.lease * 3, poll=0.1)
            fleet.stop(replacement)
            info = await run.app.get_job(target)
            attempts = info.attempt if info is not None else -1
            if not done or info is None or info.state != "succeeded":
                row.notes.append(f"{point}: target job ended {info.state if info else 'missing'}")
            measured[point].append(attempts - 1)
    row.faults = sum(len(v) for v in measured.values())
    row.count(run.tally())
    summary = " / ".join(f"{max(v, default=-1)}" for v in measured.values())
    row.notes.append(f"re-deliveries after-claim / in-handler / before-ack / after-ack: {summary}")
    for point in CRASH_POINTS:
        got = measured[point]
        row.check(f"{point}: re-delivered {EXPECTED_RERUNS[point]}", all(x == EXPECTED_RERUNS[point] for x in got),
                  f"re-delivered {got} (attempts - 1, per repetition)")
    row.check("0 lost", row.lost == 0, f"{row.lost} lost of {row.jobs}")


def _exit_fault(point: str, pid: int) -> Fault:
    return Fault(f"crash {point} (exit {CRASH_EXIT})", true_time(), pid)


async def sigterm_drain(run: Run, row: Row) -> None:
    """3. SIGTERM: exit within grace + 1 s; jobs never started go back at once, not after the lease."""
    fleet = run.fleet
    grace = 1.0 if run.scale.quick else 2.0
    slots = 4 if run.scale.quick else 8
    # Jobs outlast the grace period: the running ones are given back at its end.
    ids = await run.enqueue_work(2 * slots, (int(grace * 1000) + 1500,) * 2)
    first = fleet.start(concurrency=slots, grace=grace)
    held = await run.until(lambda: sum(1 for r in run.runs() if r.pid == first.pid) >= slots, 15)
    await asyncio.sleep(0.3)  # its claim of the prefetched half has landed
    second = fleet.start(concurrency=2 * slots)
    await asyncio.sleep(0.3)
    fault = fleet.signal(first, signal.SIGTERM)
    code = fleet.wait_exit(first, grace + 10)
    fault.until = true_time()
    exited = fault.until - fault.at if code is not None else float("inf")
    await run.all_ended(timeout=30 + run.lease)
    runs = run.runs()
    jobs = by_job(runs)
    started_by_first = {r.job for r in runs if r.pid == first.pid}
    unstarted = [j for j in ids if j not in started_by_first]
    pickup = [min(r.start for r in jobs[j] if r.pid == second.pid) - fault.at for j in unstarted
              if any(r.pid == second.pid for r in jobs.get(j, ()))]
    running = [min(r.start for r in jobs[j] if r.pid == second.pid) - fault.at for j in started_by_first
               if any(r.pid == second.pid for r in jobs.get(j, ()))]
    row.faults = 1
    row.count(run.tally())
    row.recovery_s = max(pickup, default=None)
    row.check("first worker held jobs", held and len(started_by_first) >= slots,
              f"it started {len(started_by_first)}, prefetched {len(unstarted)}")
    row.check("exit within grace + 1 s", exited <= grace + 1.0, f"exited {exited:.2f} s after SIGTERM (grace {grace:g} s)")
    row.check("unstarted jobs picked up at once", len(pickup) == len(unstarted) and max(pickup, default=0) <= 1.0,
              f"{len(pickup)}/{len(unstarted)} started elsewhere, slowest {max(pickup, default=0):.2f} s "
              f"after SIGTERM (lease {run.lease:g} s)")
    row.notes.append(f"running jobs given back at the grace's end restarted after "
                     f"{min(running, default=0):.2f}-{max(running, default=0):.2f} s")
    row.check("0 lost", row.lost == 0, f"{row.lost} lost of {row.jobs}")


async def stall(run: Run, row: Row) -> None:
    """4. SIGSTOP a worker past its lease, then SIGCONT: its stale outcomes are refused, and it starts
    none of the jobs it had prefetched (their leases expired and another worker took them)."""
    fleet = run.fleet
    slots = 4 if run.scale.quick else 10
    stopped_for = run.lease * 3 + 2.0
    ids = await run.enqueue_work(6 * slots, (600, 600))
    first = fleet.start(concurrency=slots)
    await run.until(lambda: sum(1 for r in run.runs() if r.pid == first.pid) >= slots, 15)
    await asyncio.sleep(0.2)  # the prefetched half is claimed too
    fault = fleet.signal(first, signal.SIGSTOP)
    second = fleet.start(concurrency=slots)
    await asyncio.sleep(max(0.0, fault.at + stopped_for - true_time()))
    fleet.signal(first, signal.SIGCONT)
    fault.until = true_time()
    await run.all_ended(timeout=30 + run.lease * 3)
    await asyncio.sleep(1.0 + run.lease)  # what the resumed worker does next, and its acks
    runs = run.runs()
    jobs = by_job(runs)
    latest = {j: max(r.attempt for r in rs) for j, rs in jobs.items()}
    # A job the resumed worker started although a later claim of it exists: its lease had expired.
    expired_starts = [r for r in runs if r.pid == first.pid and r.start > fault.until and r.attempt < latest[r.job]]
    contested = [j for j, rs in jobs.items() if any(r.pid == first.pid and r.ok for r in rs)
                 and latest[j] > min(r.attempt for r in rs if r.pid == first.pid)]
    overwritten = []
    for job in contested:
        info = await run.app.get_job(job)
        if info is None or info.state != "succeeded" or not info.result or info.result[1] != latest[job]:
            overwritten.append(job)
    row.faults = 1
    row.count(run.tally(ids))
    in_progress = interrupted_at(fault, runs)
    row.recovery_s = max((min(x.start for x in jobs[r.job] if x.pid != first.pid) - fault.at
                          for r in in_progress if any(x.pid != first.pid for x in jobs[r.job])), default=None)
    row.check("stale outcome refused", not overwritten,
              f"{len(contested)} jobs ended on both workers, {len(overwritten)} kept the stalled worker's outcome")
    row.check("no expired prefetched job started", not expired_starts,
              f"{len(expired_starts)} started by the resumed worker after their lease expired "
              f"(stopped {stopped_for:g} s, lease {run.lease:g} s)", gap="gap 1")
    row.check("0 lost", row.lost == 0, f"{row.lost} lost of {row.jobs}")
    row.notes.append(f"{len(in_progress)} runs were in progress at the stall (they cannot be stopped: explained)")
    fleet.stop(first)
    _check_exit_line(row, first.log.read_text(errors="replace"), sum(1 for r in runs if r.pid == first.pid and r.ok))
    del second


def _check_exit_line(row: Row, log: str, ended: int) -> None:
    """The stalled worker's exit line must not count refused (stale) outcomes as succeeded."""
    lines = [line for line in log.splitlines() if "worker stopped" in line]
    found = re.search(r"(\d+) succeeded.*?(\d+) (?:stale|outcomes? discarded|discarded)", lines[-1]) if lines else None
    if found is None:
        row.notes.append("no exit line with succeeded / discarded counts found in the stalled worker's log")
        return
    succeeded, discarded = int(found.group(1)), int(found.group(2))
    row.check("exit line counts discarded outcomes apart", succeeded == ended - discarded,
              f"it says {succeeded} succeeded and {discarded} discarded; {ended} handler runs ended there",
              gap="gap 5")
