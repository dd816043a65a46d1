"""Handlers for the process executor's tests (``executor="process"``): what the pool's children import.

:func:`register` puts the same functions, under the same names, on any App: the tests' App on
the backend under test, and :data:`app` here, which a pool's children import
(``process_app="tests.process.pool_app:app"``): children never talk to the backend.
Handlers that run until stopped write their pid to ``$POOL_DIR/<name>.pid`` first.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import fastjobs

REF = "tests.process.pool_app:app"
HOARD: list[bytes] = []


def _mark(name: str) -> None:
    folder = os.environ.get("POOL_DIR")
    if folder:
        # Written then renamed: a reader never sees the file empty (the test globs *.pid).
        part = Path(folder, f"{name}.pid.part")
        part.write_text(str(os.getpid()))
        part.rename(Path(folder, f"{name}.pid"))


def ran(name: str) -> str:
    """Count a run: one line in ``$POOL_DIR/runs.log`` (one O_APPEND write)."""
    fd = os.open(Path(os.environ["POOL_DIR"], "runs.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, f"{name}\n".encode())
    finally:
        os.close(fd)
    return name


def runs(folder: Path) -> dict[str, int]:
    """How many times each name ran (from ``runs.log``)."""
    path = folder / "runs.log"
    names = path.read_text().split() if path.exists() else []
    return {n: names.count(n) for n in names}


def swallow() -> str:
    """A handler that swallows the worker's stop (BaseException) at its timeout."""
    _mark("swallow")
    while True:
        try:
            time.sleep(0.01)
        except BaseException:
            return "swallowed"


def start_and_die() -> None:
    """Start a process that inherits what it can, then die: the worker must see the death anyway."""
    subprocess.Popen(["sleep", "20"], close_fds=False)
    os._exit(1)


def progress_threads(ctx: Any, threads: int, calls: int) -> int:
    done = []

    def report() -> None:
        for i in range(calls):
            done.append(ctx.progress_sync(i / calls))

    workers = [threading.Thread(target=report) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sum(done)


def add(a: int, b: int) -> int:
    return a + b


def pid() -> int:
    return os.getpid()


def spin() -> None:
    _mark("spin")
    while True:
        pass


def sleep_long(name: str = "sleep") -> None:
    _mark(name)
    for _ in range(3000):
        time.sleep(0.01)


def nap(name: str, seconds: float) -> str:
    _mark(name)
    time.sleep(seconds)
    return name


def hold(name: str) -> str:
    """Run until ``$POOL_DIR/<name>.go`` exists (at most 30 s)."""
    _mark(name)
    go = Path(os.environ.get("POOL_DIR", "."), f"{name}.go")
    for _ in range(3000):
        if go.exists():
            break
        time.sleep(0.01)
    return name


def segv() -> None:
    os.kill(os.getpid(), signal.SIGSEGV)


def exit_now() -> None:
    os._exit(1)


def boom(text: str) -> None:
    raise ValueError(text)


def retry_later() -> None:
    raise fastjobs.Retry(delay=0.1, reason="not yet")


def give_up() -> None:
    raise fastjobs.Fail("no point")


def unencodable() -> object:
    return object()


def hoard(megabytes: int) -> int:
    HOARD.append(b"x" * (megabytes << 20))
    return os.getpid()


def soft_cleanup(name: str) -> None:
    try:
        while True:
            time.sleep(0.01)
    except fastjobs.SoftTimeLimitExceeded:
        _mark(name)  # cleaned up before the kill
        raise


def plain_pid() -> int:
    return os.getpid()


def with_context(ctx: Any, n: int) -> list[Any]:
    applied = ctx.progress_sync(0.5, f"half of {n}")
    return [applied, ctx.job_id, ctx.attempt, ctx.task, fastjobs.worker_state().opened, ctx.state.child]


def child_opened(state: fastjobs.WorkerState) -> None:
    if os.environ.get("POOL_DIR") and Path(os.environ["POOL_DIR"], "break").exists():
        raise RuntimeError("cannot open the model file")
    state.opened = f"opened in {os.getpid()}"


HANDLERS = {
    "pool.add": add, "pool.pid": pid, "pool.spin": spin, "pool.sleep": sleep_long, "pool.nap": nap, "pool.hold": hold, "pool.segv": segv,
    "pool.exit": exit_now, "pool.boom": boom, "pool.retry": retry_later, "pool.fail": give_up,
    "pool.unencodable": unencodable, "pool.hoard": hoard, "pool.ran": ran, "pool.swallow": swallow,
    "pool.start_and_die": start_and_die,
}


def register(target: fastjobs.App, **options: Any) -> dict[str, fastjobs.Task[..., Any]]:
    """Register every handler on ``target`` (``executor="process"``); the tasks by name."""
    tasks = {name: target.task(name=name, executor="process", **options)(fn) for name, fn in HANDLERS.items()}
    tasks["pool.context"] = target.task(name="pool.context", executor="process", context=True, **options)(with_context)
    tasks["pool.progress_threads"] = target.task(name="pool.progress_threads", executor="process", context=True,
                                                 **options)(progress_threads)
    tasks["pool.soft"] = target.task(name="pool.soft", executor="process", soft_timeout=0.5, timeout=5,
                                     max_attempts=1)(soft_cleanup)
    tasks["pool.default"] = target.task(name="pool.default")(plain_pid)  # the worker's executor decides
    return tasks


app = fastjobs.App(os.environ.get("POOL_URL", "memory://"), prefix=os.environ.get("POOL_PREFIX", "fastjobs"), lease=3.0)
register(app)
app.on_child_start(child_opened)
