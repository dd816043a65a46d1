"""``python -m benchmarks``: end-to-end throughput and latency of fastjobs, per backend.

For each backend and handler kind (async, sync) it measures, with no-op jobs:

* **enqueue**: jobs/s stored by ``app.enqueue_many`` in batches of 1,000;
* **drain**: jobs/s one worker process takes to empty a pre-filled queue;
* **end-to-end**: jobs/s from the first enqueue to the last acknowledgement, the
  producer and the worker sharing one event loop (the producer yields after
  every batch of 1,000, so the worker runs while it enqueues);
* **latency**: enqueue-to-start p50 / p99 while single jobs arrive at half the
  measured end-to-end rate (the rate the producer really reached is reported
  beside it, and a job that never started within 30 s counts as lost, never
  silently dropped);
* **idle latency**: enqueue-to-start p50 / p99 of single jobs sent 20 ms apart to
  an idle worker (how fast a wake-up reaches it).

Then, per backend, the flow-control features (async no-op handlers, at most
20,000 jobs each; skip them with ``--no-features``):

* **unique**: jobs with distinct ``unique_key`` values: enqueue rate, and
  enqueue-then-drain end to end;
* **rate-limited**: a task limited to a quarter of its jobs per second: the
  rate the worker really reached (it must not beat the limit) and the enqueue rate;
* **batch + callbacks**: ``app.batch`` of the jobs with ``then`` and ``finally_``
  callbacks: jobs/s from the ``batch()`` call until the ``then`` callback ran.

And what monitoring costs (:mod:`benchmarks.monitoring`; skip with ``--no-monitoring-rows``):
end to end with nothing on, with Prometheus metrics served and scraped, with OpenTelemetry
(every span recorded, and 1% sampled) and with a before/after hook pair, alternated rounds.

And plain ``def`` handlers on threads vs ``executor="process"`` with a pool of 2 children
(:mod:`benchmarks.executors`; skip with ``--no-executor-rows``): no-op jobs end to end (what
the IPC costs) and ~5 ms CPU-bound jobs (what escaping the GIL gains), alternated rounds.

Examples::

    python -m benchmarks                      # memory backend, table
    python -m benchmarks --backend all --json
    python -m benchmarks --backend redis --jobs 200000
    python -m benchmarks --micro              # pytest-benchmark micro-benchmarks of the core
    python -m benchmarks --faults --quick     # the fault-injection suite (benchmarks/faults)
    python -m benchmarks --pagination         # a search page's cost at 10k and 1M stored jobs
    python -m benchmarks --dashboard          # the dashboard API's response times at 10k and 1M
    python -m benchmarks --monitoring         # end to end with metrics, tracing or hooks on vs off
    python -m benchmarks --executors          # plain def handlers: threads vs a process pool
    python -m benchmarks --compare            # fastjobs and its peers (Celery, RQ, PgQueuer...) alike

URLs come from ``FASTJOBS_REDIS_URL`` and ``FASTJOBS_DATABASE_URL`` (default: the
local servers).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

import fastjobs

from . import URLS, executors, loop_runner, monitoring, print_table

TARGETS = {"memory": 50_000, "redis": 10_000, "postgres": 10_000}
ENQUEUE_BATCH = 1000
APP_OPTIONS: dict[str, Any] = {}
"""Extra App arguments every run uses (``--no-history``: history=False, events=False)."""
DASHBOARD_OPEN: list[bool] = [False]
"""``--dashboard-open``: each Redis and PostgreSQL run has a dashboard open on its namespace
(:mod:`benchmarks.dashboard_watch`, in a process of its own)."""
IDLE_SAMPLES = 100
FEATURE_JOBS = 20_000
MONITORING_JOBS = 50_000
MONITORING_ROUNDS = 3
"""The monitoring rows (benchmarks/monitoring.py): at most this many jobs per run, each
variant run this many times, alternated; the median is shown."""
EXECUTOR_JOBS = 50_000
EXECUTOR_CPU_JOBS = 400
"""The executor rows (benchmarks/executors.py): no-op and ~5 ms CPU-bound plain def jobs, on
threads vs a process pool of 2, MONITORING_ROUNDS alternated rounds each."""
RATE_WINDOWS = 4
"""The rate-limited run allows jobs / RATE_WINDOWS starts per second (a sliding one-second
window), so its jobs need RATE_WINDOWS - 1 seconds at least: the limit always binds."""


@dataclass
class Result:
    backend: str
    handler: str
    jobs: int
    enqueue_per_s: float
    drain_per_s: float
    end_to_end_per_s: float
    latency_p50_ms: float
    latency_p99_ms: float
    latency_rate_per_s: float
    """The arrival rate the latency run really reached (aimed at half of end-to-end)."""
    latency_lost: int
    """Latency samples that had not started 30 s after the last enqueue."""
    idle_p50_ms: float
    idle_p99_ms: float
    target_per_s: int
    passed: bool
    """Drain and end-to-end both at or above the target."""


class Bench:
    """One backend and handler kind, on a fresh namespace."""

    def __init__(self, backend: str, handler: str, jobs: int, concurrency: int, progress: Callable[[str, int, int], None]) -> None:
        self.backend = backend
        self.handler = handler
        self.jobs = jobs
        self.concurrency = concurrency
        self.progress = progress
        self.latencies: list[float] = []
        self.app = fastjobs.App(URLS[backend](), prefix="bench" + uuid.uuid4().hex[:8], result_ttl=3600, **APP_OPTIONS)
        self.queue = "bench"

        @self.app.task(name="noop_async", queue=self.queue)
        async def noop_async() -> None:
            return None

        @self.app.task(name="noop_sync", queue=self.queue)
        def noop_sync() -> None:
            return None

        @self.app.task(name="latency_async", queue=self.queue)
        async def latency_async(sent: float) -> None:
            self.latencies.append(time.time() - sent)

        @self.app.task(name="latency_sync", queue=self.queue)
        def latency_sync(sent: float) -> None:
            self.latencies.append(time.time() - sent)

        self.noop = noop_async if handler == "async" else noop_sync
        self.timed = latency_async if handler == "async" else latency_sync

    def worker(self, burst: bool) -> fastjobs.Worker:
        return self.app.worker([self.queue], concurrency=self.concurrency, burst=burst, handle_signals=False)

    async def enqueue_all(self, stage: str) -> float:
        started = time.perf_counter()
        done = 0
        while done < self.jobs:
            n = min(ENQUEUE_BATCH, self.jobs - done)
            await self.app.enqueue_many([self.noop.call() for _ in range(n)])
            done += n
            self.progress(stage, done, self.jobs)
            # memory:// never suspends in enqueue_many: yield, so that during
            # end-to-end the worker runs while the producer is still enqueuing.
            await asyncio.sleep(0)
        return time.perf_counter() - started

    async def watch(self, stage: str, worker: fastjobs.Worker, total: int, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.progress(stage, min(worker.acked, total), total)
            try:
                await asyncio.wait_for(stop.wait(), 0.1)
            except asyncio.TimeoutError:
                pass
        self.progress(stage, total, total)

    async def run(self) -> Result:
        watcher = await self.open_dashboard() if DASHBOARD_OPEN[0] and self.backend != "memory" else None
        try:
            return await self._run()
        finally:
            if watcher is not None:
                await self.close_dashboard(watcher)
            await self.cleanup()
            await self.app.close()

    async def open_dashboard(self) -> asyncio.subprocess.Process:
        """Start the dashboard watcher on this run's namespace; return once its live subscription runs."""
        watcher = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "benchmarks.dashboard_watch", self.app.url, self.app.options.prefix,
            stdout=asyncio.subprocess.PIPE)
        assert watcher.stdout is not None
        line = await asyncio.wait_for(watcher.stdout.readline(), 60)
        if line.strip() != b"ready":
            raise RuntimeError(f"the dashboard watcher did not start (it printed {line!r})")
        return watcher

    async def close_dashboard(self, watcher: asyncio.subprocess.Process) -> None:
        watcher.terminate()
        assert watcher.stdout is not None
        summary = (await watcher.stdout.read()).decode().strip()
        await watcher.wait()
        print(f"dashboard open on {self.backend}/{self.handler}: {summary}", file=sys.stderr)

    async def _run(self) -> Result:
        # 1. enqueue, 2. drain what was enqueued
        enqueue_s = await self.enqueue_all("enqueue")
        worker = self.worker(burst=True)
        stop = asyncio.Event()
        watcher = asyncio.ensure_future(self.watch("drain", worker, self.jobs, stop))
        started = time.perf_counter()
        await worker.run()
        drain_s = time.perf_counter() - started
        stop.set()
        await watcher
        assert worker.acked == self.jobs, f"drain acknowledged {worker.acked} of {self.jobs} jobs"

        # 3. end to end: producer and worker at once
        worker = self.worker(burst=False)
        stop = asyncio.Event()
        watcher = asyncio.ensure_future(self.watch("end-to-end", worker, self.jobs, stop))
        runner = asyncio.ensure_future(worker.run())
        await asyncio.sleep(0.05)  # let the worker connect and start waiting
        started = time.perf_counter()
        producer = asyncio.ensure_future(self.enqueue_all("end-to-end (enqueued)"))
        await worker.wait_acked(self.jobs)
        e2e_s = time.perf_counter() - started
        await producer
        stop.set()
        await watcher

        # 4. latency at half the end-to-end rate
        rate = max(10.0, self.jobs / e2e_s / 2)
        samples = int(min(5000, max(200, rate * 2)))
        self.latencies.clear()
        interval = 1.0 / rate
        t0 = time.perf_counter()
        for i in range(samples):
            # Always yield: a memory:// enqueue never suspends, so a producer
            # that is behind schedule would otherwise starve the worker.
            await asyncio.sleep(max(0.0, t0 + i * interval - time.perf_counter()))
            await self.timed.enqueue(time.time())
            if i % 100 == 0:
                self.progress("latency", i, samples)
        sent_s = time.perf_counter() - t0
        deadline = time.monotonic() + 30
        while len(self.latencies) < samples and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        self.progress("latency", samples, samples)
        lat = np.array(self.latencies) * 1000.0
        lost = samples - len(lat)

        # 5. idle wake-up latency
        self.latencies.clear()
        for i in range(IDLE_SAMPLES):
            await asyncio.sleep(0.02)
            await self.timed.enqueue(time.time())
            self.progress("idle latency", i + 1, IDLE_SAMPLES)
        deadline = time.monotonic() + 10
        while len(self.latencies) < IDLE_SAMPLES and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        idle = np.array(self.latencies) * 1000.0
        lost += IDLE_SAMPLES - len(idle)
        worker.request_stop()
        await runner
        drain_per_s, e2e_per_s = self.jobs / drain_s, self.jobs / e2e_s
        return Result(
            backend=self.backend,
            handler=self.handler,
            jobs=self.jobs,
            enqueue_per_s=round(self.jobs / enqueue_s, 1),
            drain_per_s=round(drain_per_s, 1),
            end_to_end_per_s=round(e2e_per_s, 1),
            latency_p50_ms=round(float(np.percentile(lat, 50)), 3) if len(lat) else float("nan"),
            latency_p99_ms=round(float(np.percentile(lat, 99)), 3) if len(lat) else float("nan"),
            latency_rate_per_s=round(samples / sent_s, 1),
            latency_lost=lost,
            idle_p50_ms=round(float(np.percentile(idle, 50)), 3) if len(idle) else float("nan"),
            idle_p99_ms=round(float(np.percentile(idle, 99)), 3) if len(idle) else float("nan"),
            target_per_s=TARGETS[self.backend],
            passed=min(drain_per_s, e2e_per_s) >= TARGETS[self.backend],
        )

    async def cleanup(self) -> None:
        """Leave the server as it was: drop this run's keys or schema."""
        await self.app.close()
        from tests.backends import wipe_namespace

        await wipe_namespace(self.app.url, self.app.options.prefix)


@dataclass
class FeatureResult:
    backend: str
    feature: str
    jobs: int
    enqueue_per_s: float
    end_to_end_per_s: float
    """Enqueue, then drain (unique); the drain alone (rate-limited); batch() call to the then callback (batch)."""
    note: str


class FeatureBench:
    """The flow-control features of one backend, each on a fresh namespace."""

    def __init__(self, backend: str, jobs: int, concurrency: int) -> None:
        self.backend = backend
        self.jobs = jobs
        self.concurrency = concurrency

    def _app(self) -> fastjobs.App:
        return fastjobs.App(URLS[self.backend](), prefix="bench" + uuid.uuid4().hex[:8], result_ttl=3600, **APP_OPTIONS)

    async def _drain(self, app: fastjobs.App, queue: str) -> float:
        worker = app.worker([queue], concurrency=self.concurrency, burst=True, handle_signals=False, poll_interval=0.01)
        started = time.perf_counter()
        await worker.run()
        elapsed = time.perf_counter() - started
        assert worker.acked == self.jobs, f"{queue}: {worker.acked} of {self.jobs} jobs ran"
        return elapsed

    async def _enqueue(self, app: fastjobs.App, make: Callable[[int], fastjobs.Call[Any]]) -> float:
        started = time.perf_counter()
        for start in range(0, self.jobs, ENQUEUE_BATCH):
            await app.enqueue_many([make(i) for i in range(start, min(self.jobs, start + ENQUEUE_BATCH))])
        return time.perf_counter() - started

    async def _with_app(self, body: Callable[[fastjobs.App], Awaitable[FeatureResult]]) -> FeatureResult:
        app = self._app()
        try:
            return await body(app)
        finally:
            await app.close()
            from tests.backends import wipe_namespace

            await wipe_namespace(app.url, app.options.prefix)

    async def unique(self, app: fastjobs.App) -> FeatureResult:
        @app.task(name="unique_noop", queue="unique")
        async def unique_noop() -> None:
            return None

        enqueue_s = await self._enqueue(app, lambda i: unique_noop.options(unique_key=f"key:{i}").call())
        # A duplicate is not stored: the drain below checks that exactly self.jobs jobs ran.
        await app.enqueue_many([unique_noop.options(unique_key="key:0").call()])
        drain_s = await self._drain(app, "unique")
        return FeatureResult(self.backend, "unique", self.jobs, self.jobs / enqueue_s,
                             self.jobs / (enqueue_s + drain_s), "a duplicate enqueue was not stored")

    async def rate_limited(self, app: fastjobs.App) -> FeatureResult:
        rate = max(1, self.jobs // RATE_WINDOWS)

        @app.task(name="limited_noop", queue="limited", limit=fastjobs.Limit(rate=rate, per=1.0))
        async def limited_noop() -> None:
            return None

        enqueue_s = await self._enqueue(app, lambda i: limited_noop.call())
        drain_s = await self._drain(app, "limited")
        reached = self.jobs / drain_s
        # A sliding one-second window lets N jobs start within (ceil(N / rate) - 1) seconds, no faster.
        fastest = self.jobs / max(1.0, math.ceil(self.jobs / rate) - 1.0)
        held = "held" if reached <= fastest * 1.01 else "EXCEEDED"
        return FeatureResult(self.backend, "rate-limited", self.jobs, self.jobs / enqueue_s, reached,
                             f"limit {rate:,}/s allows at most {fastest:,.0f}/s over {self.jobs:,} jobs: {held}")

    async def batch(self, app: fastjobs.App) -> FeatureResult:
        done = asyncio.Event()

        @app.task(name="member_noop", queue="batch")
        async def member_noop() -> None:
            return None

        @app.task(name="batch_then", queue="batch")
        async def batch_then() -> None:
            done.set()

        @app.task(name="batch_finally", queue="batch")
        async def batch_finally() -> None:
            return None

        worker = app.worker(["batch"], concurrency=self.concurrency, handle_signals=False)
        runner = asyncio.ensure_future(worker.run())
        await asyncio.sleep(0.05)
        started = time.perf_counter()
        batch = await app.batch([member_noop.call() for _ in range(self.jobs)], then=batch_then.call(),
                                finally_=batch_finally.call())
        enqueue_s = time.perf_counter() - started
        await asyncio.wait_for(done.wait(), 600)
        total_s = time.perf_counter() - started
        progress = await batch.progress()
        worker.request_stop()
        await runner
        return FeatureResult(self.backend, "batch + callbacks", self.jobs, self.jobs / enqueue_s, self.jobs / total_s,
                             f"then ran once; {progress.succeeded:,} of {progress.total:,} succeeded")

    async def run(self) -> list[FeatureResult]:
        return [await self._with_app(run) for run in (self.unique, self.rate_limited, self.batch)]


def render_features(results: list[FeatureResult]) -> None:
    from rich.table import Table

    table = Table(title="flow-control features (async no-op jobs), jobs/s")
    for col in ("backend", "feature", "jobs", "enqueue", "end-to-end", "note"):
        table.add_column(col, justify="left" if col in ("backend", "feature", "note") else "right")
    for r in results:
        table.add_row(r.backend, r.feature, f"{r.jobs:,}", f"{r.enqueue_per_s:,.0f}", f"{r.end_to_end_per_s:,.0f}", r.note)
    print_table(table)


def run_micro() -> int:
    """The pytest-benchmark micro-benchmarks of the core, compiled and pure side by side."""
    here = os.path.dirname(os.path.abspath(__file__))
    return subprocess.call(
        [sys.executable, "-m", "pytest", here, "--benchmark-enable", "--benchmark-only",
         "--benchmark-group-by=group", "--benchmark-columns=min,mean,median,ops,rounds", "-q", "-p", "no:randomly"],
        cwd=os.path.dirname(here),
    )


THROUGHPUT_LEGEND = (
    "enqueue: jobs/s stored by enqueue_many, 1,000 a call. drain: jobs/s one worker empties a full queue. "
    "end to end: jobs/s from the first enqueue to the last ack, producer and worker in one loop. "
    "target: the floor each backend must pass, drain and end to end; verdict: pass, or which is below target."
)
LATENCY_LEGEND = (
    "p50/p99: ms from enqueue to start while single jobs arrive at half the end-to-end rate; at jobs/s: the "
    "rate the producer reached; lost: jobs not started within 30 s. idle: the same for single jobs sent 20 ms "
    "apart to an idle worker (its wake-up)."
)


def verdict(r: Result) -> str:
    """"pass", or "below target" and which of drain and end to end is."""
    short = [name for name, value in (("drain", r.drain_per_s), ("e2e", r.end_to_end_per_s)) if value < r.target_per_s]
    return "[green]pass[/]" if not short else f"[red]below target: {', '.join(short)}[/]"


def render(results: list[Result], core: str) -> None:
    """Two tables that fit 100 columns: throughput, then latency, each with a legend."""
    from rich.table import Table

    throughput = Table(title=f"fastjobs {fastjobs.__version__} throughput, jobs/s (core: {core})",
                       caption=THROUGHPUT_LEGEND, caption_justify="left")
    for col in ("backend", "handler", "jobs", "enqueue", "drain", "end to end", "target", "verdict"):
        throughput.add_column(col, justify="left" if col in ("backend", "handler", "verdict") else "right")
    latency = Table(title="latency, enqueue to start, ms", caption=LATENCY_LEGEND, caption_justify="left")
    for col in ("backend", "handler", "p50", "p99", "at jobs/s", "lost", "idle p50", "idle p99"):
        latency.add_column(col, justify="left" if col in ("backend", "handler") else "right")
    for r in results:
        throughput.add_row(
            r.backend, r.handler, f"{r.jobs:,}", f"{r.enqueue_per_s:,.0f}", f"{r.drain_per_s:,.0f}",
            f"{r.end_to_end_per_s:,.0f}", f"{r.target_per_s:,}",
            verdict(r),
        )
        latency.add_row(
            r.backend, r.handler, f"{r.latency_p50_ms:.2f}", f"{r.latency_p99_ms:.2f}", f"{r.latency_rate_per_s:,.0f}",
            f"{r.latency_lost}", f"{r.idle_p50_ms:.2f}", f"{r.idle_p99_ms:.2f}",
        )
    print_table(throughput)
    print_table(latency)


async def run_all(args: argparse.Namespace) -> list[Result]:
    backends = list(TARGETS) if args.backend == "all" else [args.backend]
    handlers = ["async", "sync"] if args.handler == "both" else [args.handler]
    results: list[Result] = []
    quiet = args.json or not sys.stderr.isatty() and not args.progress
    if quiet:
        def progress(stage: str, done: int, total: int) -> None:
            pass
        for backend in backends:
            for handler in handlers:
                results.append(await Bench(backend, handler, args.jobs, args.concurrency, progress).run())
        return results

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description:<40}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  transient=True) as bar:
        for backend in backends:
            for handler in handlers:
                tasks: dict[str, Any] = {}

                def progress(stage: str, done: int, total: int, backend: str = backend, handler: str = handler) -> None:
                    key = f"{backend}/{handler} {stage}"
                    if key not in tasks:
                        tasks[key] = bar.add_task(key, total=total)
                    bar.update(tasks[key], completed=done)

                results.append(await Bench(backend, handler, args.jobs, args.concurrency, progress).run())
    return results


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--faults" in argv:  # the fault-injection suite has options of its own
        from .faults.cli import main as faults_main

        return faults_main([a for a in argv if a != "--faults"])
    if "--pagination" in argv:  # so does the search page-cost run
        from .pagination import main as pagination_main

        return pagination_main([a for a in argv if a != "--pagination"])
    if "--monitoring" in argv:  # and what metrics, tracing and hooks cost
        from .monitoring import main as monitoring_main

        return monitoring_main([a for a in argv if a != "--monitoring"])
    if "--executors" in argv:  # and plain def handlers on threads vs in a process pool
        from .executors import main as executors_main

        return executors_main([a for a in argv if a != "--executors"])
    if "--compare" in argv:  # and the peer libraries on the same workload
        from .compare.cli import main as compare_main

        return compare_main([a for a in argv if a != "--compare"])
    if "--dashboard" in argv:  # and the dashboard API's response times
        from .dashboard import main as dashboard_main

        return dashboard_main([a for a in argv if a != "--dashboard"])
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=[*TARGETS, "all"], default="memory")
    parser.add_argument("--handler", choices=["async", "sync", "both"], default="both")
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--processes", type=int, default=1, help="worker processes (only 1 is supported in-process)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--progress", action="store_true", help="show the progress bar even without a terminal")
    parser.add_argument("--micro", action="store_true", help="run the core micro-benchmarks (pytest-benchmark)")
    parser.add_argument("--faults", action="store_true",
                        help="run the fault-injection suite instead (see python -m benchmarks --faults --help)")
    parser.add_argument("--pagination", action="store_true",
                        help="time search pages at 10k and 1M stored jobs instead (see --pagination --help)")
    parser.add_argument("--dashboard", action="store_true",
                        help="time the dashboard's API at 10k and 1M stored jobs instead (see --dashboard --help)")
    parser.add_argument("--monitoring", action="store_true",
                        help="compare end to end with Prometheus metrics, OpenTelemetry or a hook pair on (see --monitoring --help)")
    parser.add_argument("--executors", action="store_true",
                        help="compare plain def handlers on threads and in a process pool (see --executors --help)")
    parser.add_argument("--compare", action="store_true",
                        help="run the same workload through fastjobs and its peers, each in a virtualenv of its own (see --compare --help)")
    parser.add_argument("--no-history", action="store_true",
                        help="run with App(history=False, events=False): what history and events cost")
    parser.add_argument("--dashboard-open", action="store_true",
                        help="keep a dashboard open (live, refreshing) on each Redis and PostgreSQL run: what it costs")
    parser.add_argument("--no-features", dest="features", action="store_false",
                        help="skip the unique / rate-limited / batch rows")
    parser.add_argument("--no-executor-rows", dest="executor_rows", action="store_false",
                        help="skip the rows with plain def handlers on threads vs in a process pool")
    parser.add_argument("--no-monitoring-rows", dest="monitoring_rows", action="store_false",
                        help="skip the rows with Prometheus metrics, OpenTelemetry or a hook pair on")
    args = parser.parse_args(argv)
    if args.no_history:
        APP_OPTIONS.update(history=False, events=False)
    DASHBOARD_OPEN[0] = args.dashboard_open
    if args.micro:
        return run_micro()
    if args.processes != 1:
        parser.error("--processes other than 1 is not supported yet")
    runner: Callable[[Awaitable[list[Result]]], list[Result]] = loop_runner()
    results = runner(run_all(args))
    features: list[FeatureResult] = []
    if args.features:
        backends = list(TARGETS) if args.backend == "all" else [args.backend]

        async def run_features() -> None:
            for backend in backends:
                features.extend(await FeatureBench(backend, min(args.jobs, FEATURE_JOBS), args.concurrency).run())

        runner(run_features())
    monitored: list[monitoring.MonitoringResult] = []
    variants, notes = monitoring.available(monitoring.VARIANTS)
    if args.monitoring_rows:
        for backend in list(TARGETS) if args.backend == "all" else [args.backend]:
            rows: Any = runner(monitoring.run(backend, min(args.jobs, MONITORING_JOBS), args.concurrency,  # type: ignore[arg-type]
                                              MONITORING_ROUNDS, variants, lambda line: None))
            monitored += rows
    pooled: list[executors.ExecutorResult] = []
    if args.executor_rows:
        for backend in list(TARGETS) if args.backend == "all" else [args.backend]:
            pooled += runner(executors.run(backend, min(args.jobs, EXECUTOR_JOBS), EXECUTOR_CPU_JOBS, 2,  # type: ignore[arg-type]
                                           MONITORING_ROUNDS, lambda line: None))
    core = fastjobs.core_implementation()
    if args.json:
        print(json.dumps({"core": core, "results": [asdict(r) for r in results],
                          "features": [asdict(f) for f in features],
                          "monitoring": [asdict(m) for m in monitored],
                          "executors": [asdict(e) for e in pooled]}, indent=2))
    else:
        render(results, core)
        if features:
            render_features(features)
        if monitored:
            monitoring.render(monitored, MONITORING_ROUNDS, notes)
        if pooled:
            executors.render(pooled, MONITORING_ROUNDS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
