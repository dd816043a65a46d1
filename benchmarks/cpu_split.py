"""``python -m benchmarks.cpu_split``: where the CPU of each stage goes, worker vs server.

Throughput figures drift by 30% on a shared machine; CPU seconds per job hardly do. This
enqueues N no-op jobs, drains them with one burst worker, runs N more end to end (a
worker waiting while this process enqueues them, as ``python -m benchmarks`` times end
to end: producer and worker share this process) and for each stage reports the
wall time per job and the CPU time per job spent in this process (the producer or the
worker, all threads) and in the server (Redis: ``INFO cpu``, every thread of redis-server;
PostgreSQL: every ``postgres`` process of the cluster, from ``/proc``, Linux only), and
each side's utilisation (CPU time / wall time):

* a side near 100% of a core is what bounds the stage; the stage cannot beat
  ``1 / (its CPU per job)`` jobs/s without making that side cheaper;
* both sides well under 100% means the stage waits (round trips not overlapped).

Examples::

    python -m benchmarks.cpu_split --backend redis --jobs 200000
    python -m benchmarks.cpu_split --backend postgres --jobs 100000 --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

import fastjobs

from . import URLS, loop_runner, print_table

BATCH = 1000


@dataclass
class Split:
    backend: str
    stage: str
    jobs: int
    jobs_per_s: float
    worker_us: float
    """CPU microseconds per job in this process (all its threads)."""
    server_us: float
    """CPU microseconds per job in the server's processes / threads."""
    worker_busy: float
    """This process's CPU time / wall time (1.0 = one core busy)."""
    server_busy: float


async def redis_cpu(app: fastjobs.App) -> float:
    """redis-server's CPU seconds so far (user + system, all its threads)."""
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(app.url)
    try:
        info = await client.info("cpu")
    finally:
        await client.aclose()
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def postgres_cpu(app: fastjobs.App) -> float:
    """The cluster's CPU seconds so far: the postmaster's and every process it started
    (its parent found from one backend's, so no file of the server need be readable)."""
    import asyncpg

    conn = await asyncpg.connect(app.url)
    try:
        backend = await conn.fetchval("SELECT pg_backend_pid()")
        stats: dict[int, list[str]] = {}
        for entry in os.listdir("/proc"):  # read while this backend lives
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        # after the name: [1] the parent pid, [11] and [12] utime and stime (proc(5))
                        stats[int(entry)] = f.read().rsplit(")", 1)[1].split()
                except OSError:  # gone meanwhile
                    continue
    finally:
        await conn.close()
    tick = os.sysconf("SC_CLK_TCK")
    if backend not in stats:
        raise SystemExit("cpu_split: the PostgreSQL server is not on this machine (its backend's pid is not in /proc)")
    postmaster = int(stats[backend][1])
    return sum(int(f[11]) + int(f[12]) for pid, f in stats.items() if pid == postmaster or int(f[1]) == postmaster) / tick


SERVER_CPU: dict[str, Callable[[fastjobs.App], Awaitable[float]]] = {"redis": redis_cpu, "postgres": postgres_cpu}


async def measure(backend: str, stage: str, jobs: int, app: fastjobs.App, work: Callable[[], Awaitable[Any]]) -> Split:
    server_cpu = SERVER_CPU.get(backend)
    server_before = await server_cpu(app) if server_cpu else 0.0
    cpu_before, wall_before = time.process_time(), time.perf_counter()
    await work()
    cpu, wall = time.process_time() - cpu_before, time.perf_counter() - wall_before
    server = (await server_cpu(app) - server_before) if server_cpu else 0.0
    return Split(backend, stage, jobs, round(jobs / wall, 1), round(cpu / jobs * 1e6, 2), round(server / jobs * 1e6, 2),
                 round(cpu / wall, 2), round(server / wall, 2))


Stage = Callable[[], Awaitable[None]]


def noop_workload(url: str, prefix: str, jobs: int, concurrency: int, **options: Any) -> tuple[fastjobs.App, dict[str, Stage]]:
    """An App on ``url`` with one no-op task, and its stages by name: ``enqueue`` ``jobs`` of
    it in batches of :data:`BATCH`; ``drain`` them with one burst worker; ``end to end``:
    a worker already waiting while the producer enqueues ``jobs`` more in this loop, until
    the worker has acknowledged them all (what ``python -m benchmarks`` times as end to end)."""
    app = fastjobs.App(url, prefix=prefix + uuid.uuid4().hex[:8], result_ttl=3600, **options)

    @app.task(name="noop", queue="bench")
    async def noop() -> None:
        return None

    async def enqueue() -> None:
        for done in range(0, jobs, BATCH):
            await app.enqueue_many([noop.call() for _ in range(min(BATCH, jobs - done))])

    async def drain() -> None:
        worker = app.worker(["bench"], concurrency=concurrency, burst=True, handle_signals=False)
        await worker.run()
        assert worker.acked == jobs, f"drain acknowledged {worker.acked} of {jobs} jobs"

    async def end_to_end() -> None:
        worker = app.worker(["bench"], concurrency=concurrency, handle_signals=False)
        runner = asyncio.ensure_future(worker.run())
        for done in range(0, jobs, BATCH):
            await app.enqueue_many([noop.call() for _ in range(min(BATCH, jobs - done))])
            await asyncio.sleep(0)  # memory:// never suspends in enqueue_many: let the worker run
        await worker.wait_acked(jobs)
        worker.request_stop()
        await runner

    return app, {"enqueue": enqueue, "drain": drain, "end to end": end_to_end}


async def run(backend: str, jobs: int, concurrency: int, **options: Any) -> list[Split]:
    from tests.backends import wipe_namespace

    app, stages = noop_workload(URLS[backend](), "cpusplit", jobs, concurrency, **options)
    try:
        await app.backend()  # connected (and migrated) before the first measure
        return [await measure(backend, stage, jobs, app, work) for stage, work in stages.items()]
    finally:
        await app.close()
        await wipe_namespace(app.url, app.options.prefix)


def render(splits: list[Split]) -> None:
    from rich.table import Table

    table = Table(title="CPU per job, this process vs the server")
    for name in ("backend", "stage", "jobs/s", "worker µs/job", "server µs/job", "worker busy", "server busy"):
        table.add_column(name, justify="left" if name in ("backend", "stage") else "right")
    for s in splits:
        table.add_row(s.backend, s.stage, f"{s.jobs_per_s:,.0f}", f"{s.worker_us:.1f}", f"{s.server_us:.1f}",
                      f"{s.worker_busy:.0%}", f"{s.server_busy:.0%}")
    print_table(table)
    print("worker = this process (producer for enqueue, worker for drain), all threads; "
          "busy = CPU time / wall time (100% = one core).")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cpu_split", description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["memory", "redis", "postgres", "all"], default="all")
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--no-history", action="store_true", help="App(history=False, events=False)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    backends = ["memory", "redis", "postgres"] if args.backend == "all" else [args.backend]
    options = {"history": False, "events": False} if args.no_history else {}
    splits = [s for backend in backends for s in loop_runner()(run(backend, args.jobs, args.concurrency, **options))]
    if args.json:
        json.dump([asdict(s) for s in splits], sys.stdout, indent=2)
        print()
    else:
        render(splits)
    return 0


if __name__ == "__main__":
    sys.exit(main())
