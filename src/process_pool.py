"""The worker's pool of child processes for ``executor="process"`` handlers: hard limits for sync code.

A thread cannot be stopped from outside; a process can. :class:`ProcessPool` runs plain ``def``
handlers in child processes (:mod:`fastjobs.process_child`), so that:

* past its ``timeout`` a job's child is killed (SIGTERM, which unwinds the handler, then SIGKILL
  after ``kill_grace``), the attempt fails with :class:`~fastjobs.errors.JobTimeoutError` and
  a new child takes the place of the old;
* a child that dies (a segfault, ``os._exit``, the OOM killer) fails only the attempt it was
  running, with :class:`~fastjobs.errors.WorkerCrashedError`; the jobs queued behind it go to
  the other children;
* a cancelled (or lost) job's child is killed: the job really stops;
* ``max_tasks_per_child`` and ``max_memory_per_child`` retire a child between two jobs.

Children are fresh interpreters (``subprocess`` with the socket and the shared block passed as
file descriptors: the start method is spawn, never a fork of the worker's loop and threads),
started once and reused. Jobs cross as the msgpack they already are, several per message, and
outcomes come back several per message: the IPC costs a few microseconds per job, not a round
trip. How many jobs a child holds ahead adapts to how long its jobs take (about
:data:`QUEUED_SECONDS` of work, 2 to :data:`MAX_WINDOW` jobs), so that fast jobs go in large
batches while slow ones spread over the children and a cancel or a child's death touches few.

The pool looks to the worker like its thread pool: ``submit``, ``withdraw``, ``stop_job``,
outcomes delivered in batches as ``(running, value, error)``.

Example:
    >>> from fastjobs.process_pool import crash_message
    >>> crash_message(-11)
    'the process running this job died with signal 11 (SIGSEGV)'
"""

from __future__ import annotations

import asyncio
import logging
import math
import mmap
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgpack  # type: ignore[import-untyped]

from ._core import CorruptJobError, PayloadTooLargeError, decode_value
from .errors import ConfigurationError, Fail, InvalidOptionError, Retry, UnknownTaskError, WorkerCrashedError
from .executors import _STARTED, _WAITING, _WITHDRAWN, LEASE_UNCONFIRMED, NOT_STARTED
from .process_child import (
    BAD_RESULT,
    ERROR,
    EXIT,
    FAIL,
    JOBS,
    OK,
    PROGRESS,
    READY,
    REPLY,
    RESULTS,
    RETIRING,
    RETRY,
    SKIPPED,
    START_FAILED,
    UNCONFIRMED,
    UNKNOWN,
    SharedSlot,
)

if TYPE_CHECKING:
    from .app import App
    from .executors import Running

log = logging.getLogger("fastjobs.process_pool")

MAX_WINDOW = 64
"""Most jobs sent ahead to one child (no-op jobs: one message carries up to this many)."""
QUEUED_SECONDS = 0.005
"""About how much work (by its recent jobs' run time) a child holds queued ahead."""
START_TIMEOUT = 60.0
"""Seconds a child may take to import the App and run its on_child_start hooks."""
BROKEN_AFTER = 5
"""Children in a row that failed to start, with none running, after which the pool is broken:
the worker stops (its jobs go back) rather than hold jobs no child can run."""

_CHILD_MAIN = "import sys; from fastjobs.process_child import main; sys.exit(main(sys.argv[1:]))"

Outcome = tuple["Running", Any, "BaseException | None"]


def _log_settings() -> tuple[str | None, str]:
    """How this process logs (set by :func:`fastjobs.logs.configure`), for its children to do the same."""
    from .logs import JsonFormatter

    root = logging.getLogger()
    if not root.handlers:
        return None, "text"
    json = any(isinstance(h.formatter, JsonFormatter) for h in root.handlers)
    return logging.getLevelName(root.level), "json" if json else "text"


def crash_message(returncode: int) -> str:
    """What to tell of a child that ended while running a job, from its exit status."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "unknown signal"
        hint = ": killed, maybe by the OOM killer" if -returncode == signal.SIGKILL else ""
        return f"the process running this job died with signal {-returncode} ({name}){hint}"
    return f"the process running this job exited with status {returncode}"


def remote_fail(remote_type: str, message: str) -> Fail:
    """A no-retry failure from a pool child, recorded under the type the child raised."""
    error = Fail(message)
    error.remote_type = remote_type  # type: ignore[attr-defined]  # read by job.exception_record
    return error


class RemoteError(Exception):
    """An exception a handler raised in a pool child, re-raised in the worker: ``remote_type`` is
    its class's name and ``remote_traceback`` the child's traceback (both stored in the job's errors)."""

    def __init__(self, remote_type: str, message: str, remote_traceback: str) -> None:
        super().__init__(message)
        self.remote_type = remote_type
        self.remote_traceback = remote_traceback


class PoolChild:
    """The worker's view of one child."""

    __slots__ = ("index", "proc", "sock", "slot", "unpacker", "inflight", "ready", "retiring", "dying", "outbuf",
                 "avg", "gone", "reaped", "failure", "seq", "stopping", "pidfd")

    def __init__(self, index: int, proc: subprocess.Popen[bytes], sock: socket.socket, slot: SharedSlot,
                 loop: asyncio.AbstractEventLoop) -> None:
        self.index = index
        self.proc = proc
        self.sock = sock
        self.slot = slot
        self.unpacker = msgpack.Unpacker(raw=False, max_buffer_size=1 << 31)
        self.inflight: dict[int, Running] = {}
        """Jobs sent to it and not reported, by sequence number, in the order sent."""
        self.seq = 0
        """The last sequence number it was sent (its own, consecutive: see SharedSlot)."""
        self.ready = False
        self.retiring = False
        self.dying = False
        self.stopping = 0
        """The job it was told to stop (0: none, -1: all)."""
        self.outbuf = b""
        self.avg = QUEUED_SECONDS / 8
        """Recent mean run time of its jobs (seconds); unknown at first: 8 jobs are sent ahead."""
        self.gone: asyncio.Future[None] = loop.create_future()
        self.reaped = False
        self.failure: str | None = None
        """Why it could not start (START_FAILED), if it could not."""
        self.pidfd: int | None = None

    @property
    def window(self) -> int:
        if self.avg <= QUEUED_SECONDS / MAX_WINDOW:
            return MAX_WINDOW
        return max(2, min(MAX_WINDOW, math.ceil(QUEUED_SECONDS / self.avg)))


class ProcessPool:
    """Runs ``executor="process"`` handlers in ``size`` child processes (see the module's docstring).

    ``deliver`` gets outcomes in batches; ``tasks``: the names of the tasks it runs (a child
    whose App lacks one is refused); ``broken(reason)`` is called once children keep failing to
    start while none runs (the worker stops: its jobs go back).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, size: int, deliver: Callable[[list[Outcome]], None], *,
                 app_ref: str, worker_id: str, max_payload: int, tasks: list[str] | None = None,
                 max_tasks_per_child: int | None = None, max_memory_per_child: int | None = None,
                 kill_grace: float = 1.0, broken: Callable[[str], None] | None = None) -> None:
        self.loop = loop
        self.size = size
        self.deliver = deliver
        self.kill_grace = kill_grace
        self.tasks = sorted(tasks or ())
        self.broken = broken
        log_level, log_format = _log_settings()
        self.config = {
            "app": app_ref, "path": [p for p in sys.path if isinstance(p, str)], "worker_id": worker_id,
            "max_payload": max_payload, "max_tasks": max_tasks_per_child, "max_memory": max_memory_per_child,
            "parent": os.getpid(), "log_level": log_level, "log_format": log_format,
        }
        self.todo: deque[Running] = deque()
        self.children: list[PoolChild] = []
        self.closing = False
        self.draining = False
        self._dispatching = False
        self._next_index = 0
        self._failures = 0
        """Children in a row that failed to start."""
        self._progress_tasks: set[asyncio.Task[None]] = set()

    # -- lifecycle ----------------------------------------------------------------

    async def start(self) -> None:
        """Start the children and wait until each imported the App; raises ConfigurationError if one cannot."""
        children = [self._spawn() for _ in range(self.size)]
        try:
            # A plain await, not asyncio.wait_for: on Python 3.10 and 3.11 wait_for can swallow a
            # cancellation that arrives as its inner future completes (CPython gh-86296), and a
            # worker cancelled as it starts then ran on (tests/test_process_pool.py hung so once,
            # in CI). No timeout is lost: _start_overdue kills a child not ready in START_TIMEOUT,
            # and its _ready then raises.
            await asyncio.gather(*(self._ready(c) for c in children))
        except BaseException:
            await self.close(timeout=1.0)
            raise

    async def _ready(self, child: PoolChild) -> None:
        while not child.ready:
            if child.gone.done():
                reason = child.failure or f"it exited with status {child.proc.returncode} before it was ready"
                raise ConfigurationError(
                    f"a process-pool child could not start: {reason}"
                    f" (the worker runs executor='process' handlers in children that import {self.config['app']})"
                )
            await asyncio.wait([child.gone], timeout=0.01)

    def _spawn(self) -> PoolChild:
        index = self._next_index
        self._next_index += 1
        ours, theirs = socket.socketpair()
        if hasattr(os, "memfd_create"):
            shm_fd = os.memfd_create("fastjobs-child")
        else:  # pragma: no cover - not Linux
            shm_fd, name = tempfile.mkstemp(prefix="fastjobs-child-")
            os.unlink(name)
        os.ftruncate(shm_fd, SharedSlot.SIZE)
        slot = SharedSlot(mmap.mmap(shm_fd, SharedSlot.SIZE))
        try:
            proc = subprocess.Popen(
                [sys.executable, "-c", _CHILD_MAIN, str(theirs.fileno()), str(shm_fd)],
                pass_fds=(theirs.fileno(), shm_fd), stdin=subprocess.DEVNULL,
            )
        finally:
            theirs.close()
            os.close(shm_fd)
        ours.setblocking(False)
        child = PoolChild(index, proc, ours, slot, self.loop)
        self.children.append(child)
        self.loop.add_reader(ours.fileno(), self._readable, child)
        if hasattr(os, "pidfd_open"):
            # Its exit, seen even if a process it started holds its end of the socket open.
            try:
                child.pidfd = os.pidfd_open(proc.pid)
            except OSError:  # pragma: no cover - a kernel before 5.3
                child.pidfd = None
            else:
                self.loop.add_reader(child.pidfd, self._exited, child)
        self._send(child, msgpack.packb({**self.config, "index": index}, use_bin_type=True))
        self.loop.call_later(START_TIMEOUT, self._start_overdue, child)
        return child

    def _start_overdue(self, child: PoolChild) -> None:
        if not child.ready and not child.reaped:
            child.failure = f"it was not ready after {START_TIMEOUT:.0f} s (importing the App, on_child_start hooks)"
            self._signal(child, signal.SIGKILL)

    async def close(self, timeout: float = 5.0) -> None:
        """Stop every child: idle ones exit, busy ones are stopped; none is left behind."""
        self.closing = True
        for child in list(self.children):
            if child.reaped:
                continue
            if child.inflight or not child.ready:
                self._kill(child, -1)
            else:
                self._send(child, msgpack.packb([EXIT]))
        waits = [c.gone for c in self.children if not c.gone.done()]
        if waits:
            await asyncio.wait(waits, timeout=timeout)
        for child in self.children:
            if not child.gone.done():
                self._signal(child, signal.SIGKILL)
        waits = [c.gone for c in self.children if not c.gone.done()]
        if waits:
            await asyncio.wait(waits, timeout=5.0)

    def kill_all(self) -> None:
        """SIGKILL every child at once (a worker torn down without its shutdown): none outlives it."""
        self.closing = True
        for child in self.children:
            self._signal(child, signal.SIGKILL)

    @property
    def pids(self) -> list[int]:
        """The process ids of the children alive now."""
        return [c.proc.pid for c in self.children if not c.reaped]

    # -- the worker's side ----------------------------------------------------------

    def submit(self, running: Running) -> None:
        running.runner = self
        self.todo.append(running)
        if not self._dispatching:
            self._dispatching = True
            self.loop.call_soon(self._dispatch)

    def withdraw(self, running: Running) -> bool:
        """Take back a job no child has been sent; False if one has."""
        if running.thread_state != _WAITING:
            return False
        running.thread_state = _WITHDRAWN  # skipped when its turn comes
        return True

    def refresh(self, running: Running) -> None:
        """Set ``running.started`` once its child started it (for its timeout)."""
        child = running.child
        if child is not None and running.started is None:
            seq, started, active = child.slot.current()
            if active and seq == running.seq:
                running.started = started

    def confirm(self) -> None:
        """The leases were renewed: each child may start its queued jobs until the earliest of their
        new start-by times (see :data:`~fastjobs.executors.LEASE_SAFETY`)."""
        for child in self.children:
            if child.inflight:
                _confirm(child)

    def stop_job(self, running: Running) -> bool:
        """Stop a job sent to a child (timed out, cancelled, lost): kill the child running it, or tell
        the child not to start it. Returns whether its handler goes on running: never, here."""
        child = running.child
        if child is None or running.seq not in child.inflight or running.thread_state != _STARTED:
            return False
        running.thread_state = _WITHDRAWN  # not to be sent again if its child dies
        seq, _, active = child.slot.current()
        if not (active and seq == running.seq):
            child.slot.skip(running.seq)
            seq, _, active = child.slot.current()  # started meanwhile?
        if active and seq == running.seq:
            self._kill(child, running.seq)
        return False

    def drain(self) -> None:
        """The worker is shutting down: start no more jobs. Those not started yet (waiting here, or
        queued in a child) come back as outcomes :data:`NOT_STARTED`; running ones finish."""
        self.draining = True
        for child in self.children:
            child.slot.drain()
        self._dispatch()

    # -- dispatch -------------------------------------------------------------------

    def _dispatch(self) -> None:
        self._dispatching = False
        todo = self.todo
        if self.draining or (self._failures >= BROKEN_AFTER and not any(c.ready for c in self.children)):
            # Shutting down, or no child can start: what waits here goes back unstarted.
            unstarted: list[Outcome] = [(r, None, NOT_STARTED) for r in todo if r.thread_state == _WAITING]
            for running, _, _ in unstarted:
                running.thread_state = _WITHDRAWN
            todo.clear()
            if unstarted:
                self.deliver(unstarted)
            return
        ready = [c for c in self.children if c.ready and not (c.retiring or c.dying or c.reaped)]
        if not todo or not ready:
            return
        ready.sort(key=lambda c: len(c.inflight))
        refused: list[Outcome] = []
        now = time.monotonic()
        left = len(ready)
        for child in ready:
            share = math.ceil(len(todo) / left)
            left -= 1
            room = min(child.window - len(child.inflight), share)
            batch = []
            while room > 0 and todo:
                running = todo.popleft()
                if running.thread_state != _WAITING:
                    continue
                if now > running.start_by:  # its lease may have run out: give it back unstarted
                    running.thread_state = _WITHDRAWN
                    refused.append((running, None, LEASE_UNCONFIRMED))
                    continue
                running.thread_state = _STARTED
                child.seq += 1
                running.seq = child.seq
                running.child = child
                child.inflight[child.seq] = running
                batch.append((child.seq, running.claim.body, running.claim.attempt))
                room -= 1
            if batch:
                _confirm(child)
                self._send(child, msgpack.packb((JOBS, batch), use_bin_type=True))
        if refused:
            self.deliver(refused)

    # -- the wire ---------------------------------------------------------------------

    def _send(self, child: PoolChild, data: bytes) -> None:
        if child.reaped:
            return
        if child.outbuf:
            child.outbuf += data
            return
        try:
            sent = child.sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:  # it is gone: its end of the socket is read to the end by _readable
            return
        if sent < len(data):
            child.outbuf = data[sent:]
            self.loop.add_writer(child.sock.fileno(), self._writable, child)

    def _writable(self, child: PoolChild) -> None:
        try:
            sent = child.sock.send(child.outbuf)
        except BlockingIOError:
            return
        except OSError:
            sent = len(child.outbuf)
        child.outbuf = child.outbuf[sent:]
        if not child.outbuf:
            self.loop.remove_writer(child.sock.fileno())

    def _readable(self, child: PoolChild) -> None:
        if child.reaped:
            return
        try:
            data = child.sock.recv(1 << 20)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._ended(child)
            return
        self._messages(child, data)

    def _messages(self, child: PoolChild, data: bytes) -> None:
        child.unpacker.feed(data)
        outcomes: list[Outcome] = []
        for message in child.unpacker:
            kind = message[0]
            if kind == RESULTS:
                self._results(child, message[1], outcomes)
            elif kind == PROGRESS:
                self._progress(child, message[1], message[2], message[3])
            elif kind == READY:
                self._is_ready(child, message[2])
            elif kind == RETIRING:
                log.info("process-pool child %d retires: %s", child.proc.pid, message[1])
                child.retiring = True
                self._replace()
            elif kind == START_FAILED:
                child.failure = message[1]
                log.error("a process-pool child could not start (importing %s, or an on_child_start hook): %s\n%s",
                          self.config["app"], message[1], message[2])
        if outcomes:
            self.deliver(outcomes)
        if self.todo and not self._dispatching:
            self._dispatching = True
            self.loop.call_soon(self._dispatch)

    def _is_ready(self, child: PoolChild, tasks: list[str]) -> None:
        missing = sorted(set(self.tasks) - set(tasks))
        if missing:
            child.failure = (
                f"its App ({self.config['app']}) does not register {', '.join(map(repr, missing))}: import the "
                "modules of every executor='process' task where that App is defined, or pass process_app= "
                "(fastjobs worker: the MODULE:APP argument) naming a module that does"
            )
            log.error("a process-pool child was refused: %s", child.failure)
            self._kill(child, -1)
            return
        child.ready = True
        self._failures = 0

    def _results(self, child: PoolChild, results: list[Any], outcomes: list[Outcome]) -> None:
        inflight = child.inflight
        total = 0.0
        for seq, status, payload, ran in results:
            running = inflight.pop(seq, None)
            if running is None:
                continue
            total += ran
            running.ran = ran
            if status == OK:
                try:
                    value = None if payload is None else decode_value(payload)
                except (CorruptJobError, PayloadTooLargeError) as exc:
                    outcomes.append((running, None, exc))
                    continue
                outcomes.append((running, value, None))
            elif status == ERROR:
                outcomes.append((running, None, RemoteError(*payload)))
            elif status == RETRY:
                outcomes.append((running, None, Retry(payload[0], payload[1])))
            elif status == FAIL:
                outcomes.append((running, None, remote_fail(payload[0], payload[1])))
            elif status == BAD_RESULT:
                outcomes.append((running, None, remote_fail(payload[0], f"the result cannot be stored: {payload[1]}")))
            elif status == UNKNOWN:
                outcomes.append((running, None, UnknownTaskError(payload)))
            elif status == SKIPPED:  # cancelled (its outcome is not wanted), or the worker drains
                outcomes.append((running, None, NOT_STARTED))
            elif status == UNCONFIRMED:  # its lease was not confirmed in time: given back unstarted
                outcomes.append((running, None, LEASE_UNCONFIRMED))
        if results:  # the recent mean run time sets how many jobs it is sent ahead
            child.avg = 0.7 * child.avg + 0.3 * (total / len(results))

    def _progress(self, child: PoolChild, seq: int, fraction: float, message: str) -> None:
        running = child.inflight.get(seq)

        async def store() -> None:
            applied = False
            if running is not None and running.ctx is not None:
                try:
                    applied = await running.ctx.progress(fraction, message)
                except Exception as exc:
                    log.warning("storing progress of job %s failed (%s: %s)", running.claim.id, type(exc).__name__, exc)
            self._send(child, msgpack.packb((REPLY, seq, applied)))

        task = self.loop.create_task(store())
        self._progress_tasks.add(task)
        task.add_done_callback(self._progress_tasks.discard)

    # -- children that end --------------------------------------------------------------

    def _kill(self, child: PoolChild, seq: int) -> None:
        """Stop a child: job ``seq`` is unwound (SIGTERM runs its finally blocks; -1: whatever it runs),
        and the child exits without starting another; SIGKILL after ``kill_grace``."""
        if child.dying or child.reaped:
            return
        child.dying = True
        child.stopping = seq
        if not child.ready:  # still starting: nothing to unwind
            self._signal(child, signal.SIGKILL)
        else:
            child.slot.request_stop(seq)
            self._signal(child, signal.SIGTERM)
            self.loop.call_later(self.kill_grace, self._signal, child, signal.SIGKILL)
        if not self.closing:
            self._replace()

    def _signal(self, child: PoolChild, sig: int) -> None:
        if not child.reaped and child.proc.returncode is None:
            try:
                child.proc.send_signal(sig)
            except ProcessLookupError:
                pass

    def _replace(self) -> None:
        """Start a child in place of one retiring or dying (after a delay if children fail to start)."""
        if self.closing:
            return
        if self._failures:
            delay = min(30.0, 0.5 * 2 ** (self._failures - 1))
            self.loop.call_later(delay, self._respawn)
        else:
            self._spawn()

    def _respawn(self) -> None:
        if not self.closing:
            self._spawn()

    def _exited(self, child: PoolChild) -> None:
        """Its pidfd says it exited: read what it sent last, then settle it."""
        if child.reaped:
            return
        while True:  # the rest of its messages (its end of the socket may still be open elsewhere)
            try:
                data = child.sock.recv(1 << 20)
            except (BlockingIOError, OSError):
                break
            if not data:
                break
            self._messages(child, data)
        self._ended(child)

    def _ended(self, child: PoolChild) -> None:
        """It exited or died. Reap it, then settle its jobs."""
        if child.reaped or child.sock.fileno() < 0:
            return
        self.loop.remove_reader(child.sock.fileno())
        if child.pidfd is not None:
            self.loop.remove_reader(child.pidfd)
            os.close(child.pidfd)
            child.pidfd = None
        if child.outbuf:
            self.loop.remove_writer(child.sock.fileno())
            child.outbuf = b""
        child.sock.close()
        self._reap(child, time.monotonic() + 5.0)

    def _reap(self, child: PoolChild, deadline: float) -> None:
        returncode = child.proc.poll()
        if returncode is None:
            if time.monotonic() > deadline:  # it closed the socket but lingers: end it
                self._signal(child, signal.SIGKILL)
            self.loop.call_later(0.005, self._reap, child, deadline)
            return
        child.reaped = True
        self.children.remove(child)
        seq, started, active = child.slot.current()
        outcomes: list[Outcome] = []
        again: list[Running] = []
        for s, running in child.inflight.items():
            if active and s == seq and not (child.dying and child.stopping not in (s, -1)):
                # It died running this one (or was stopped for it: that outcome is the worker's already).
                running.ran = time.monotonic() - started
                message = "the process running this job was stopped" if child.dying else crash_message(returncode)
                outcomes.append((running, None, WorkerCrashedError(message)))
            elif running.thread_state == _STARTED:  # sent, never started (or cut short by a stop meant
                running.thread_state = _WAITING     # for another): another child runs it
                running.child = None
                again.append(running)
        child.inflight.clear()
        self.todo.extendleft(reversed(again))
        if not child.ready:  # died starting
            self._failures += 1
            if self._failures >= BROKEN_AFTER and self.broken is not None and not self.closing \
                    and not any(c.ready for c in self.children):
                self.broken(child.failure or crash_message(returncode))
        if not (child.retiring or child.dying) and not self.closing:
            if child.ready:
                log.error("process-pool child %d ended unexpectedly: %s", child.proc.pid, crash_message(returncode))
            self._replace()
        child.gone.set_result(None)
        if outcomes:
            self.deliver(outcomes)
        if self.todo and not self._dispatching:
            self._dispatching = True
            self.loop.call_soon(self._dispatch)


def _confirm(child: PoolChild) -> None:
    """Tell ``child`` until when it may start its queued jobs: the earliest of their start-by times."""
    child.slot.confirm(min(r.start_by for r in child.inflight.values()))


EXECUTORS = ("thread", "process")


def check_pool_settings(app: App, executor: str, size: int | None, max_tasks_per_child: int | None,
                        max_memory_per_child: int | None, process_app: str | None) -> dict[str, Any]:
    """Check a worker's process-pool settings; the pool's keyword arguments (see :class:`ProcessPool`)."""
    if executor not in EXECUTORS:
        raise InvalidOptionError(f"executor must be 'thread' or 'process', not {executor!r}")
    for name, value in (("process_pool", size), ("max_tasks_per_child", max_tasks_per_child),
                        ("max_memory_per_child", max_memory_per_child)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise InvalidOptionError(f"{name} must be a positive int, not {value!r}")
    uses = any(not t.is_async and (t.executor or executor) == "process" for t in app.tasks.values())
    for task in app.tasks.values():
        if task.soft_timeout is not None and (task.executor or executor) != "process":
            raise ConfigurationError(
                f"task {task.name!r} has a soft_timeout, which needs executor='process': give the task "
                "executor='process', or run the worker with executor='process' (--executor process)"
            )
    if process_app is None and uses:
        process_app = app_reference(app)
    return {
        "size": size or os.cpu_count() or 1,
        "app_ref": process_app or "",
        "max_tasks_per_child": max_tasks_per_child,
        "max_memory_per_child": None if max_memory_per_child is None else max_memory_per_child * 1024 * 1024,
    }


def app_reference(app: App) -> str:
    """Where a pool's children import ``app`` from: ``module:attribute``, found among the modules
    that define its tasks (a module-level name bound to it)."""
    modules = dict.fromkeys(getattr(t.fn, "__module__", None) for t in app.tasks.values())
    for name in modules:
        module = sys.modules.get(name or "")
        if module is None or name == "__main__":
            continue
        for attr, value in vars(module).items():
            if value is app:
                return f"{name}:{attr}"
    raise ConfigurationError(
        "executor='process' needs the App importable by its children, and it was not found as a module-level name "
        "of its tasks' modules (a script run as __main__ is not importable): pass Worker(process_app='module:app'), "
        "or run `fastjobs worker module:app`"
    )
