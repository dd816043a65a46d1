"""The ``fastjobs`` command (also ``python -m fastjobs``).

Examples::

    fastjobs worker myproject.jobs:app --queues emails,default --concurrency 100 --processes 4
    fastjobs enqueue myproject.jobs:app myproject.jobs.send_email --args '["a@b.c"]'
    fastjobs info myproject.jobs:app
    fastjobs workers myproject.jobs:app --json   # live workers and the jobs they run
    fastjobs migrate myproject.jobs:app     # PostgreSQL: create or upgrade the schema

Bad input (unknown module or task, bad URL, bad JSON) prints one line on stderr
and exits with status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Coroutine, Mapping, Sequence
from typing import Any, TypeVar

from ._core import DEAD, STATE_NAMES
from ._version import __version__
from .app import App
from .backends import BROKEN, Backend, QueueStats, WorkerInfo, backend_class, redact_url
from .errors import FastjobsError
from .job import JobInfo

T = TypeVar("T")
log = logging.getLogger("fastjobs.cli")


class UsageError(Exception):
    """Bad command-line input: printed as one line, exit status 2."""


def load_app(target: str) -> App:
    """Import ``module:attribute`` and return the App it names."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(f"expected MODULE:APP (like myproject.jobs:app), got {target!r}")
    if module_name.endswith(".py"):
        raise UsageError(
            f"{module_name!r} is a file name; give the module name: {module_name[:-3].replace(os.sep, '.')}:{attr}"
        )
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:
        # The module's own failure (a missing dependency, a bad setting) is the user's
        # to fix: show where it happened, not only its last line.
        log.debug("importing %s failed", module_name, exc_info=True)
        found = isinstance(exc, ModuleNotFoundError) and exc.name == module_name
        hint = "" if found else " (run with --log-level DEBUG for the traceback)"
        raise UsageError(f"cannot import module {module_name!r}: {type(exc).__name__}: {exc}{hint}") from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise UsageError(f"module {module_name!r} has no attribute {attr!r}") from None
    if not isinstance(obj, App):
        raise UsageError(f"{target} is a {type(obj).__name__}, not a fastjobs.App")
    return obj


def _require_shared(url: str, command: str) -> None:
    if url.startswith("memory:"):
        raise UsageError(
            f"the app uses memory://, which lives inside one process: `fastjobs {command}` runs in a new "
            "process and would never see its jobs. Use redis:// or postgresql://, or run the worker "
            "in-process with `await app.run_worker()`"
        )


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def _json_arg(name: str, text: str, kind: type) -> Any:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--{name} is not valid JSON ({exc.msg} at position {exc.pos}): {text!r}") from None
    if not isinstance(value, kind):
        raise UsageError(f"--{name} must be a JSON {'array' if kind is list else 'object'}, got {text!r}")
    return value


# -- commands ---------------------------------------------------------------------


def cmd_worker(args: argparse.Namespace) -> int:
    app = load_app(args.app)
    _require_shared(app.url, "worker")
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

    _run(main())
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


def cmd_enqueue(args: argparse.Namespace) -> int:
    app = load_app(args.app)
    task = app.tasks.get(args.task)
    if task is None:
        known = ", ".join(sorted(app.tasks)) or "none"
        raise UsageError(f"no task named {args.task!r} in {args.app} (registered: {known})")
    call_args = _json_arg("args", args.args, list)
    call_kwargs = _json_arg("kwargs", args.kwargs, dict)
    overrides: dict[str, Any] = {"delay": args.delay}
    if args.queue:
        overrides["queue"] = args.queue
    if args.priority is not None:
        overrides["priority"] = args.priority
    configured = task.options(**overrides)  # bad options fail here, before any connection
    _require_shared(app.url, "enqueue")

    async def main() -> str:
        try:
            handle = await configured.enqueue(*call_args, **call_kwargs)
            return handle.id
        finally:
            await app.close()

    print(_run(main()))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    app = load_app(args.app)
    backend = read_only_backend(app, None)
    _require_shared(backend.url, "info")

    async def main() -> tuple[Mapping[str, QueueStats], list[JobInfo]]:
        try:
            await backend.connect()
            await backend.ready()  # read-only: an empty database gets a word, not a new schema
            dead = await backend.list_jobs(DEAD, None, args.dead, 0)
            return await backend.stats(), [JobInfo.from_stored(d, app.max_payload) for d in dead]
        finally:
            await backend.close()

    stats, dead = _run(main())
    if args.json:
        print(json.dumps({
            "url": redact_url(app.url), "tasks": sorted(app.tasks), "queues": stats,
            "dead": [{"id": d.id, "task": d.task, "queue": d.queue, "error": str(d.error)} for d in dead],
        }, indent=2))
        return 0
    print(f"app: {args.app} ({redact_url(app.url)}), {len(app.tasks)} tasks")
    # Every state the JSON shows, waiting included; each column as wide as its name: 100 columns in all.
    states = STATE_NAMES
    print(f"{'queue':<20}" + "".join(f"{s:>{len(s) + 2}}" for s in states))
    for queue in sorted(stats):
        row = stats[queue]
        if BROKEN in row:  # no counts: its storage could not be read
            print(f"{queue:<20}  damaged: {row[BROKEN]}")
        else:
            print(f"{queue:<20}" + "".join(f"{row.get(s, 0):>{len(s) + 2}}" for s in states))
    if dead:
        print(f"\ndead letters (oldest {len(dead)}):")
        for d in dead:
            print(f"  {d.id}  {d.task}  [{d.queue}]  {d.error}")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    app = load_app(args.app)
    scheme = app.url.partition(":")[0]
    if not hasattr(backend_class(app.url), "migrate"):
        print(f"{scheme}:// keeps no schema: nothing to migrate")
        return 0

    async def main() -> list[str]:
        try:
            # Connecting applies pending migrations and changed functions (under
            # an advisory lock); the backend reports what this run applied.
            backend: Any = await app.backend()
            applied: list[str] = await backend.migrate()
            return applied + (["the SQL functions"] if backend.applied_functions else [])
        finally:
            await app.close()

    applied = _run(main())
    prefix = app.options.prefix
    print(f"schema {prefix!r}: applied {', '.join(applied)}" if applied else f"schema {prefix!r} is up to date")
    return 0


def read_only_backend(app: App, url: str | None) -> Backend:
    """A backend for ``app`` (at ``url`` if given) that never creates or migrates a schema.

    Example:
        >>> read_only_backend(app, "postgresql://localhost/jobs")  # doctest: +SKIP
        <PostgresBackend schema='fastjobs'>
    """
    url = url or app.url
    cls = backend_class(url)
    # The App's own backend options fit its own URL's backend only.
    extra: dict[str, Any] = dict(app._backend_extra) if cls is app._backend_cls else {}
    if hasattr(cls, "migrate"):
        extra["migrate"] = False
    return cls(url, app.options, **extra)


def cmd_workers(args: argparse.Namespace) -> int:
    app = load_app(args.app)
    backend = read_only_backend(app, args.url)
    _require_shared(backend.url, "workers")

    async def main() -> tuple[float, list[WorkerInfo]]:
        try:
            await backend.connect()
            await backend.ready()
            return await backend.now(), await backend.workers()
        finally:
            await backend.close()

    now, workers = _run(main())
    if args.json:
        listed = [{**dataclasses.asdict(w), "queues": list(w.queues), "running": list(w.running)} for w in workers]
        print(json.dumps({"url": redact_url(backend.url), "now": now, "workers": listed}, indent=2))
        return 0
    alive = sum(w.alive for w in workers)
    print(_fit(f"workers: {alive} alive, {len(workers) - alive} gone; app {args.app} at {redact_url(backend.url)}", WIDTH))
    if workers:
        print(format_workers(workers, now))
    return 0


WIDTH = 100
"""Columns the text output of the CLI fits in."""


def format_workers(workers: Sequence[WorkerInfo], now: float) -> str:
    """The ``fastjobs workers`` table: one line per worker, then the ids of the jobs it runs.

    Example:
        >>> w = WorkerInfo("web-1:42:a1b2c3", "web-1", 42, ("emails",), 100, "0.1.0", 100.0, 130.0, ("j1",))
        >>> print(format_workers([w], now=131.0))  # doctest: +NORMALIZE_WHITESPACE
        worker                           state     pid  conc  running  last beat     up  queues
        web-1:42:a1b2c3                  alive      42   100        1      1.0 s   31 s  emails
          running: j1
    """
    head = f"{'worker':<32} {'state':<5} {'pid':>7} {'conc':>5} {'running':>8} {'last beat':>10} {'up':>6}  "
    lines = [head + "queues"]
    for w in workers:
        row = (f"{_fit(w.id, 32):<32} {'alive' if w.alive else 'gone':<5} {w.pid:>7} {w.concurrency:>5} "
               f"{len(w.running):>8} {now - w.last_seen:>8.1f} s {_duration(now - w.started_at):>6}  ")
        lines.append(row + _fit(",".join(w.queues), WIDTH - len(row)))
        if w.running:
            lines += textwrap.wrap(", ".join(w.running), WIDTH, initial_indent="  running: ",
                                   subsequent_indent=" " * 11, max_lines=3, placeholder=" ...")
    return "\n".join(lines)


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "~"


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{max(seconds, 0):.0f} s"


# -- entry point -------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastjobs", description="fastjobs: fast, trustworthy background jobs.")
    parser.add_argument("--version", action="version", version=f"fastjobs {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("app", help="the App to use, as MODULE:ATTRIBUTE (e.g. myproject.jobs:app)")
        p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="how much to log")

    w = sub.add_parser("worker", help="run a worker until SIGTERM/SIGINT")
    common(w)
    w.add_argument("--queues", help="comma-separated queues, served in this order (default: all the app's)")
    w.add_argument("--concurrency", type=int, default=100, help="jobs in progress at once per process")
    w.add_argument("--threads", type=int, default=None, help="threads for plain def handlers")
    w.add_argument("--processes", type=int, default=1, help="worker processes under a supervisor")
    w.add_argument("--grace", type=float, default=30.0, help="seconds running jobs get to finish on shutdown")
    w.add_argument("--burst", action="store_true", help="exit once the queues are empty")
    w.set_defaults(func=cmd_worker)

    e = sub.add_parser("enqueue", help="enqueue one job and print its id")
    common(e)
    e.add_argument("task", help="the task's registered name")
    e.add_argument("--args", default="[]", help="positional arguments as a JSON array")
    e.add_argument("--kwargs", default="{}", help="keyword arguments as a JSON object")
    e.add_argument("--queue", help="override the task's queue")
    e.add_argument("--priority", type=int, help="override the task's priority")
    e.add_argument("--delay", type=float, default=0.0, help="seconds before the job may run")
    e.set_defaults(func=cmd_enqueue)

    i = sub.add_parser("info", help="queues, counts by state, dead letters")
    common(i)
    i.add_argument("--dead", type=int, default=20, help="how many dead letters to list")
    i.add_argument("--json", action="store_true", help="print JSON")
    i.set_defaults(func=cmd_info)

    ws = sub.add_parser(
        "workers", help="live worker processes and the jobs they run (read-only)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="List the worker processes of the App's backend: alive ones with the ids of the jobs "
        "they run, and ones gone within the last hour (no heartbeat: killed or stalled). A worker "
        "stopped by SIGTERM leaves the list at once. Never creates or migrates a schema.",
    )
    common(ws)
    ws.add_argument("--json", action="store_true", help="print JSON")
    ws.add_argument("--url", default=None,
                    help="the backend URL to read, overriding the App's own (like FASTJOBS_URL)")
    ws.set_defaults(func=cmd_workers)

    m = sub.add_parser("migrate", help="create or upgrade the backend's schema (PostgreSQL)")
    common(m)
    m.set_defaults(func=cmd_migrate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(args, "log_level", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s",
    )
    try:
        code: int = args.func(args)
        return code
    except (UsageError, FastjobsError) as exc:
        print(f"fastjobs: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
