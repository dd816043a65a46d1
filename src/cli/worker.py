"""``fastjobs worker``: run a worker, or several worker processes under a supervisor.

Example::

    fastjobs worker myproject.jobs:app --queues emails,default --concurrency 100 --processes 4
    FASTJOBS_METRICS_TOKEN=s3cret fastjobs worker myproject.jobs:app --processes 4 --metrics-port 9100

With ``--metrics-port`` (``pip install "fastjobs[prometheus]"``) Prometheus metrics are served
at ``http://127.0.0.1:PORT/metrics``, to scrapes that send the token. Under ``--processes N`` the
supervisor alone serves them: each worker process writes its counters as a JSON line to a pipe
the supervisor gave it (an inherited fd, ``--metrics-fd``) once a second, and the supervisor
serves their sum, keeping what a finished or killed process counted.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

from ..app import App
from ..logs import log_jobs
from ._common import (
    Commands,
    Formatter,
    UsageError,
    add_common,
    load_app,
    log,
    point_app,
    run,
)

if TYPE_CHECKING:
    from ..prometheus import ChildSnapshots, LoopThread, MetricsServer


def add_parser(sub: Commands) -> None:
    w = sub.add_parser("worker", help="run a worker until SIGTERM/SIGINT", formatter_class=Formatter,
                       description="Run a worker for the App's tasks until SIGTERM/SIGINT (or, with --burst, "
                       "until its queues are empty).")
    add_common(w, json_output=False)
    w.add_argument("--queues", help="comma-separated queues, served in this order (default: all the app's)")
    w.add_argument("--concurrency", type=int, default=100, help="jobs in progress at once per process")
    w.add_argument("--threads", type=int, default=None, help="threads for plain def handlers")
    w.add_argument("--processes", type=int, default=1, help="worker processes under a supervisor")
    x = w.add_argument_group("where plain def handlers run")
    x.add_argument("--executor", choices=("thread", "process"), default="thread",
                   help="the default for tasks without executor=: threads, or a pool of child processes (hard "
                   "timeouts, crash isolation, recycling)")
    x.add_argument("--process-pool", type=int, default=None, metavar="N",
                   help="child processes for executor='process' handlers (default: the number of CPUs)")
    x.add_argument("--max-tasks-per-child", type=int, default=None, metavar="N",
                   help="replace a child after it ran N jobs")
    x.add_argument("--max-memory-per-child", type=int, default=None, metavar="MIB",
                   help="replace a child, between two jobs, once its resident memory passed MIB MiB")
    w.add_argument("--grace", type=float, default=30.0, help="seconds running jobs get to finish on shutdown")
    w.add_argument("--burst", action="store_true", help="exit once the queues are empty")
    w.add_argument("--log-jobs", action="store_true",
                   help="log one INFO line per job outcome (failures are logged anyway); costly at high rates")
    m = w.add_argument_group("Prometheus metrics (pip install \"fastjobs[prometheus]\")")
    m.add_argument("--metrics-port", type=int, default=None, metavar="PORT",
                   help="serve Prometheus metrics at http://HOST:PORT/metrics (with --processes: from the "
                   "supervisor alone, summed over its worker processes)")
    m.add_argument("--metrics-host", default="127.0.0.1", metavar="HOST", help="the address the metrics port binds")
    m.add_argument("--metrics-token", default=None, metavar="T",
                   help="the token a scrape must send (Authorization: Bearer T, or T as the basic-auth "
                   "password); default: $FASTJOBS_METRICS_TOKEN; a command line shows in ps: prefer the variable")
    m.add_argument("--metrics-no-auth", action="store_true",
                   help="serve the metrics without a token (anyone who can reach the port reads them)")
    # A supervised worker process writes its metrics' snapshots to this inherited pipe.
    m.add_argument("--metrics-fd", type=int, default=None, help=argparse.SUPPRESS)
    w.set_defaults(func=cmd_worker)


def metrics_options(args: argparse.Namespace) -> dict[str, Any] | None:
    """The metrics server's settings from the command line (None: no --metrics-port), checked
    before anything starts: a missing token or client library fails here, once."""
    if args.metrics_port is None:
        if args.metrics_token or args.metrics_no_auth:
            raise UsageError("--metrics-token and --metrics-no-auth go with --metrics-port")
        return None
    if not 0 <= args.metrics_port <= 65535:
        raise UsageError(f"--metrics-port must be from 0 to 65535, not {args.metrics_port}")
    from ..prometheus import metrics_token

    token = metrics_token(args.metrics_token, no_auth=args.metrics_no_auth)
    return {"host": args.metrics_host, "port": args.metrics_port, "token": token}


def cmd_worker(args: argparse.Namespace) -> int:
    app = point_app(load_app(args.app), args.url, "worker", read_only=False)
    if args.processes < 1:
        raise UsageError(f"--processes must be 1 or more, not {args.processes}")
    queues = [q for q in args.queues.split(",") if q] if args.queues else None
    serve = metrics_options(args)
    if args.log_jobs:
        log_jobs(app)
    supervised = args.processes > 1
    # Built before any fork, so bad options fail once, here, instead of in every child. A single
    # process serves its own metrics (the Worker binds the port before reaching the backend).
    worker = app.worker(
        queues,
        concurrency=args.concurrency,
        threads=args.threads,
        shutdown_grace=args.grace,
        burst=args.burst,
        executor=args.executor,
        process_pool=args.process_pool,
        max_tasks_per_child=args.max_tasks_per_child,
        max_memory_per_child=args.max_memory_per_child,
        process_app=args.app,
        metrics=args.metrics_fd is not None,
        **({} if serve is None or supervised else {
            "metrics_port": serve["port"], "metrics_host": serve["host"], "metrics_token": serve["token"],
            "metrics_no_auth": serve["token"] is None,
        }),
    )
    if supervised:
        return supervise(args, app, serve)

    async def main() -> None:
        reporter = None
        try:
            if args.metrics_fd is not None:
                from ..prometheus import SnapshotReporter

                assert worker.metrics is not None
                reporter = SnapshotReporter(args.metrics_fd, worker.metrics.snapshot)
            await worker.run()
        finally:
            try:
                if reporter is not None:
                    reporter.close()  # after run(): the last snapshot counts every drained ack
            finally:
                await app.close()

    run(main())
    return 0


def _die_with_parent() -> None:
    """In a child, before exec: get SIGTERM if the supervisor dies (even by SIGKILL), so no
    worker is left orphaned; SIGTERM lets it give its jobs back gracefully."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def supervise(args: argparse.Namespace, app: App, serve: dict[str, Any] | None = None) -> int:
    """Run ``args.processes`` worker processes; restart any that dies; forward signals; serve
    their summed metrics if ``serve`` (the settings of :func:`metrics_options`) says so."""
    child_argv = [sys.executable, "-m", "fastjobs", "worker", args.app, "--processes", "1",
                  "--concurrency", str(args.concurrency), "--grace", str(args.grace),
                  "--log-level", args.log_level, "--log-format", args.log_format]
    if args.log_jobs:
        child_argv.append("--log-jobs")
    if args.url:
        child_argv += ["--url", args.url]
    if args.queues:
        child_argv += ["--queues", args.queues]
    if args.threads:
        child_argv += ["--threads", str(args.threads)]
    if args.burst:
        child_argv.append("--burst")
    child_argv += ["--executor", args.executor]
    for flag, value in (("--process-pool", args.process_pool), ("--max-tasks-per-child", args.max_tasks_per_child),
                        ("--max-memory-per-child", args.max_memory_per_child)):
        if value is not None:
            child_argv += [flag, str(value)]
    children: dict[int, subprocess.Popen[bytes]] = {}
    stopping = {"signals": 0}
    snapshots: ChildSnapshots | None = None
    server: MetricsServer | None = None
    depth_loop: LoopThread | None = None
    if serve is not None:
        from ..prometheus import ChildSnapshots, LoopThread, QueueDepthCollector, start_metrics_server

        snapshots = ChildSnapshots()
        # The supervisor alone reads the queue counts (one reader, however many processes), on
        # a connection of its own, owned by a loop of its own: it has no other loop.
        depth_loop = LoopThread()
        try:
            server = start_metrics_server(snapshots.snapshot, **serve,
                                          queue_depth=QueueDepthCollector(depth_loop.loop, app.backend))
        except BaseException:
            depth_loop.close()
            raise

    def spawn(slot: int) -> None:
        argv, fds = child_argv, ()  # type: tuple[list[str], tuple[int, ...]]
        if snapshots is not None:
            read_end, write_end = os.pipe()
            argv, fds = [*child_argv, "--metrics-fd", str(write_end)], (write_end,)
        try:
            # A session of its own: Ctrl-C in a terminal signals the whole foreground
            # process group, and the child would see SIGINT twice (ours and the
            # terminal's), which means "skip the grace period".
            children[slot] = subprocess.Popen(
                argv, start_new_session=True, pass_fds=fds,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        except BaseException:
            if snapshots is not None:
                os.close(read_end)
            raise
        finally:
            if snapshots is not None:
                os.close(write_end)  # the child's now: its exit closes the pipe, which retires its snapshot
        if snapshots is not None:
            snapshots.watch(read_end)
        log.info("started worker process %d (pid %d)", slot, children[slot].pid)

    def forward(sig: int, _frame: object) -> None:
        stopping["signals"] += 1
        for child in children.values():
            if child.poll() is None:
                child.send_signal(sig)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for slot in range(args.processes):
            spawn(slot)
        restarts: dict[int, float] = {}
        while True:
            alive = 0
            for slot, child in list(children.items()):
                code = child.poll()
                if code is None:
                    alive += 1
                    continue
                if stopping["signals"] or (args.burst and code == 0):
                    continue
                if code == 2:  # a usage or configuration error: restarting cannot help
                    log.error("worker process %d exited with a configuration error; stopping", slot)
                    forward(signal.SIGTERM, None)
                    continue
                log.warning("worker process %d (pid %d) exited with %s; restarting", slot, child.pid, code)
                # Back off a crash loop: at most one restart per slot per second.
                wait = restarts.get(slot, 0.0) + 1.0 - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                restarts[slot] = time.monotonic()
                spawn(slot)
                alive += 1
            if not alive:
                break
            time.sleep(0.1)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if server is not None:
            server.close()
        if depth_loop is not None:
            depth_loop.close(app.close)
    codes = [child.returncode for child in children.values()]
    return 0 if all(code in (0, -signal.SIGTERM, -signal.SIGINT) for code in codes) else 1
