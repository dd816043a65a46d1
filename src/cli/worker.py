"""``fastjobs worker``: run a worker, or several worker processes under a supervisor.

Example::

    fastjobs worker myproject.jobs:app --queues emails,default --concurrency 100 --processes 4
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time

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


def add_parser(sub: Commands) -> None:
    w = sub.add_parser("worker", help="run a worker until SIGTERM/SIGINT", formatter_class=Formatter,
                       description="Run a worker for the App's tasks until SIGTERM/SIGINT (or, with --burst, "
                       "until its queues are empty).")
    add_common(w, json_output=False)
    w.add_argument("--queues", help="comma-separated queues, served in this order (default: all the app's)")
    w.add_argument("--concurrency", type=int, default=100, help="jobs in progress at once per process")
    w.add_argument("--threads", type=int, default=None, help="threads for plain def handlers")
    w.add_argument("--processes", type=int, default=1, help="worker processes under a supervisor")
    w.add_argument("--grace", type=float, default=30.0, help="seconds running jobs get to finish on shutdown")
    w.add_argument("--burst", action="store_true", help="exit once the queues are empty")
    w.set_defaults(func=cmd_worker)


def cmd_worker(args: argparse.Namespace) -> int:
    app = point_app(load_app(args.app), args.url, "worker", read_only=False)
    if args.processes < 1:
        raise UsageError(f"--processes must be 1 or more, not {args.processes}")
    queues = [q for q in args.queues.split(",") if q] if args.queues else None
    # Built before any fork, so bad options fail once, here, instead of in every child.
    worker = app.worker(
        queues,
        concurrency=args.concurrency,
        threads=args.threads,
        shutdown_grace=args.grace,
        burst=args.burst,
    )
    if args.processes > 1:
        return supervise(args)

    async def main() -> None:
        try:
            await worker.run()
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


def supervise(args: argparse.Namespace) -> int:
    """Run ``args.processes`` worker processes; restart any that dies; forward signals."""
    child_argv = [sys.executable, "-m", "fastjobs", "worker", args.app, "--processes", "1",
                  "--concurrency", str(args.concurrency), "--grace", str(args.grace),
                  "--log-level", args.log_level]
    if args.url:
        child_argv += ["--url", args.url]
    if args.queues:
        child_argv += ["--queues", args.queues]
    if args.threads:
        child_argv += ["--threads", str(args.threads)]
    if args.burst:
        child_argv.append("--burst")
    children: dict[int, subprocess.Popen[bytes]] = {}
    stopping = {"signals": 0}

    def spawn(slot: int) -> None:
        # A session of its own: Ctrl-C in a terminal signals the whole foreground
        # process group, and the child would see SIGINT twice (ours and the
        # terminal's), which means "skip the grace period".
        children[slot] = subprocess.Popen(
            child_argv, start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
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
    codes = [child.returncode for child in children.values()]
    return 0 if all(code in (0, -signal.SIGTERM, -signal.SIGINT) for code in codes) else 1
