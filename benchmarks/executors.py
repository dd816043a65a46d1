"""What the process executor costs and gains: plain ``def`` handlers on threads vs in a pool of child processes.

Two workloads, each run on the thread executor and on ``executor="process"`` with a pool of
``--pool`` children (default 2), alternated round after round (ABBA) so the machine's drift
hits each alike; the median of the rounds is reported:

* **no-op**: ``def`` handlers that return at once, enqueued in batches of 1,000 while one
  worker runs them (as the main table's end-to-end column): the IPC's cost per job;
* **cpu 5 ms**: handlers that burn about 5 ms of pure-Python CPU each (calibrated on this
  machine at the start): threads share one GIL, children do not.

Example::

    python -m benchmarks --executors                          # memory, 3 rounds
    python -m benchmarks --executors --backend all --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass

import fastjobs

from . import URLS, executor_app, loop_runner, print_table, stop_and_wipe

WORKLOADS = ("no-op", "cpu 5 ms")
EXECUTORS = ("thread", "process")


def calibrate(seconds: float = 0.005) -> int:
    """How many :func:`~benchmarks.executor_app.burn` loops take ``seconds`` here (best of 5)."""
    loops = 10_000
    best = min(_timed(loops) for _ in range(5))
    return max(1, int(loops * seconds / best))


def _timed(loops: int) -> float:
    started = time.perf_counter()
    executor_app.burn(loops)
    return time.perf_counter() - started


async def run_one(backend: str, workload: str, executor: str, jobs: int, pool: int, loops: int) -> float:
    """Jobs/s end to end for one workload on one executor, on a fresh namespace."""
    app = fastjobs.App(URLS[backend](), prefix="bench" + uuid.uuid4().hex[:8], result_ttl=3600)
    tasks = executor_app.register(app, executor)
    worker = app.worker(["bench"], concurrency=100, threads=pool if workload != "no-op" else None,
                        handle_signals=False, process_pool=pool, process_app=executor_app.REF)
    runner = asyncio.ensure_future(worker.run())
    while executor == "process" and len(worker.process_pids) < pool and not runner.done():
        await asyncio.sleep(0.01)  # the children imported the App: their start is not timed
    await asyncio.sleep(0.1)
    started = time.perf_counter()
    for first in range(0, jobs, 1000):
        count = min(1000, jobs - first)
        calls = ([tasks["noop"].call() for _ in range(count)] if workload == "no-op"
                 else [tasks["burn"].call(loops) for _ in range(count)])
        await app.enqueue_many(calls)
        await asyncio.sleep(0)
    await worker.wait_acked(jobs)
    elapsed = time.perf_counter() - started
    await stop_and_wipe(app, worker, runner)
    return jobs / elapsed


@dataclass
class ExecutorResult:
    backend: str
    workload: str
    executor: str
    pool: int
    jobs: int
    per_s: float
    """The median of the rounds."""
    vs_thread: float
    rounds: list[float]


async def run(backend: str, jobs: int, cpu_jobs: int, pool: int, rounds: int,
              progress: Callable[[str], None]) -> list[ExecutorResult]:
    loops = calibrate()
    results = []
    for workload in WORKLOADS:
        count = jobs if workload == "no-op" else cpu_jobs
        rates: dict[str, list[float]] = {e: [] for e in EXECUTORS}
        for r in range(rounds):
            for executor in (EXECUTORS if r % 2 == 0 else tuple(reversed(EXECUTORS))):
                rates[executor].append(await run_one(backend, workload, executor, count, pool, loops))
                progress(f"{backend} {workload} round {r + 1}/{rounds} {executor}: {rates[executor][-1]:,.0f} jobs/s")
        thread = statistics.median(rates["thread"])
        results += [ExecutorResult(backend, workload, e, pool, count, round(statistics.median(rates[e]), 1),
                                   round(statistics.median(rates[e]) / thread, 3), [round(x, 1) for x in rates[e]])
                    for e in EXECUTORS]
    return results


def render(results: list[ExecutorResult], rounds: int) -> None:
    from rich.table import Table

    table = Table(title=f"executors: plain def handlers end to end, median of {rounds} alternated rounds, jobs/s")
    for col in ("backend", "workload", "executor", "pool", "jobs", "jobs/s", "vs thread", "rounds"):
        table.add_column(col, justify="left" if col in ("backend", "workload", "executor", "rounds") else "right")
    for r in results:
        table.add_row(r.backend, r.workload, r.executor, str(r.pool), f"{r.jobs:,}", f"{r.per_s:,.0f}",
                      f"{r.vs_thread:.2f}", ", ".join(f"{x:,.0f}" for x in r.rounds))
    print_table(table)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks --executors", description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=[*URLS, "all"], default="memory")
    parser.add_argument("--jobs", type=int, default=50_000, help="no-op jobs per run")
    parser.add_argument("--cpu-jobs", type=int, default=600, help="5 ms jobs per run")
    parser.add_argument("--pool", type=int, default=2, help="children in the process pool (and threads for the cpu rows)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    runner = loop_runner()
    quiet = args.json or not os.isatty(2)
    results: list[ExecutorResult] = []
    for backend in (list(URLS) if args.backend == "all" else [args.backend]):
        results += runner(run(backend, args.jobs, args.cpu_jobs, args.pool, args.rounds,
                              (lambda line: None) if quiet else (lambda line: print(line, file=sys.stderr))))
    if args.json:
        print(json.dumps({"executors": [asdict(r) for r in results]}, indent=2))
    else:
        render(results, args.rounds)
    return 0
