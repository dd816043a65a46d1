"""One child of a worker's process pool (``executor="process"``): run jobs the worker sends, report back.

Started by :class:`fastjobs.process_pool.ProcessPool` as a fresh interpreter running :func:`main` (no ``fork`` of a process running an event loop and threads, and no
pickle), given one end of a socket pair and a small shared-memory block. It imports the App
once, by the reference the worker was started with (``myproject.jobs:app``), and runs only
tasks that App registers: nothing a payload names is ever imported.

The wire is msgpack both ways, in batches: the worker sends several jobs per message (each the
job's own encoded body, decoded here), and the child sends outcomes back several per message:
when it ran out of work, after half a batch, or a millisecond after the last report, so a
slow job's outcome is never held back behind the next one.

The shared block says which job the child is running and since when (the worker reads it to
enforce hard timeouts and to know, when the child dies, which job it died in), which queued
jobs to skip (cancelled meanwhile), and whether a SIGTERM is the worker's (stop this job now)
or the service manager's (ignored: the worker decides when its children stop).

Example:
    >>> from fastjobs.process_child import SharedSlot
    >>> import mmap
    >>> slot = SharedSlot(mmap.mmap(-1, SharedSlot.SIZE))
    >>> slot.begin(7, 12.5); slot.current()
    (7, 12.5, True)
"""

from __future__ import annotations

import importlib
import mmap
import os
import resource
import signal
import socket
import struct
import sys
import threading
import time
import traceback
from collections import deque
from typing import Any

import msgpack  # type: ignore[import-untyped]

# Message kinds, worker -> child
JOBS, REPLY, EXIT = 0, 1, 2
# Message kinds, child -> worker
RESULTS, PROGRESS, READY, START_FAILED, RETIRING = 0, 1, 2, 3, 4
# Outcome statuses
OK, ERROR, RETRY, FAIL, BAD_RESULT, SKIPPED, UNKNOWN, UNCONFIRMED = 0, 1, 2, 3, 4, 5, 6, 7

_REPORT_AFTER = 0.001
"""Seconds after the last report past which a finished outcome is sent at once."""
_SLOW = 0.0002
"""A task whose recent jobs took longer than this (seconds) is slow: before one of its jobs
starts, the outcomes waiting to be sent go first, so that they are not lost if it is killed."""


class SharedSlot:
    """The block a child and its worker share (see the module's docstring).

    Layout (int64/float64 fields): the running job's sequence number, when it started
    (``time.monotonic()``, one clock for every process), whether it is running; then what the
    worker says: the job to stop (its sequence number; 0: none), whether to start no more jobs
    (the worker drains), the ``time.monotonic()`` after which no queued job may start (its
    lease may have run out); then one cell per sequence number modulo :data:`SKIPS`: a queued
    job the child must not start (cancelled meanwhile). A child's sequence numbers are its own
    and consecutive, and it holds at most :data:`SKIPS` jobs, so no two share a cell.
    """

    SKIPS = 64
    _RUN = struct.Struct("=qdq")
    _ASK = struct.Struct("=qqd")
    _CELL = struct.Struct("=q")
    _ASK_AT = _RUN.size
    _SKIPS_AT = _RUN.size + _ASK.size
    SIZE = _SKIPS_AT + SKIPS * 8

    def __init__(self, buf: mmap.mmap) -> None:
        self.buf = buf

    # the child's side
    def begin(self, seq: int, started: float) -> None:
        self._RUN.pack_into(self.buf, 0, seq, started, 1)

    def end(self) -> None:
        self._CELL.pack_into(self.buf, 16, 0)

    def asked(self) -> tuple[int, int, float]:
        """What the worker asks: (the job to stop or 0, whether to drain, the start-by deadline)."""
        stop, draining, start_by = self._ASK.unpack_from(self.buf, self._ASK_AT)
        return stop, draining, start_by

    def skipped(self, seq: int) -> bool:
        cell: int = self._CELL.unpack_from(self.buf, self._SKIPS_AT + 8 * (seq % self.SKIPS))[0]
        return cell == seq

    # the worker's side
    def current(self) -> tuple[int, float, bool]:
        """(sequence number, start, running) of the child's job; read until two reads agree (no torn read)."""
        while True:
            first = self._RUN.unpack_from(self.buf, 0)
            second = self._RUN.unpack_from(self.buf, 0)
            if first == second:
                return first[0], first[1], bool(first[2])

    def request_stop(self, seq: int) -> None:
        """Stop job ``seq`` (then the child exits); -1: exit now, between jobs or not."""
        self._CELL.pack_into(self.buf, self._ASK_AT, seq)

    def drain(self) -> None:
        """Start no more jobs: report the queued ones as skipped (the worker gives them back)."""
        self._CELL.pack_into(self.buf, self._ASK_AT + 8, 1)

    def confirm(self, start_by: float) -> None:
        """Queued jobs may start until ``start_by`` (``time.monotonic()``); past it they come back unstarted."""
        struct.pack_into("=d", self.buf, self._ASK_AT + 16, start_by)

    def skip(self, seq: int) -> None:
        """Ask the child not to start queued job ``seq``."""
        self._CELL.pack_into(self.buf, self._SKIPS_AT + 8 * (seq % self.SKIPS), seq)


def _on_alarm(signum: int, frame: Any) -> None:
    from .errors import SoftTimeLimitExceeded

    raise SoftTimeLimitExceeded("the job ran past its soft_timeout; the hard timeout kills it next")


class _Stopped(BaseException):
    """Raised inside a running handler when its worker stops it (a hard timeout, a cancel)."""


class ChildContext:
    """What a ``context=True`` handler gets in a process-pool child: the job, and progress through the worker.

    The attributes are those of :class:`~fastjobs.Context`. ``cancelled`` stays False: a job
    cancelled (or past its timeout) in a child is stopped by ending the child, not by a flag.
    ``progress_sync`` stores progress through the worker (one message each way); the async
    ``progress`` is for handlers on the worker's loop and raises here.
    """

    __slots__ = ("job_id", "task", "queue", "attempt", "max_attempts", "batch_id", "args", "kwargs", "meta", "state",
                 "worker_id", "cancelled", "_seq", "_child")

    def __init__(self, child: Child, seq: int, record: Any, attempt: int) -> None:
        meta = record.meta or {}
        self.job_id: str = record.id
        self.task: str = record.task
        self.queue: str = record.queue
        self.attempt = attempt
        self.max_attempts: int = record.max_attempts
        self.batch_id = meta.get(child.batch_key)
        self.args: tuple[Any, ...] = record.args
        self.kwargs: dict[str, Any] = record.kwargs
        self.meta: dict[str, Any] = meta
        self.state = child.state
        self.worker_id = child.worker_id
        self.cancelled = False
        self._seq = seq
        self._child = child

    def __repr__(self) -> str:
        return f"ChildContext(job_id={self.job_id!r}, task={self.task!r}, attempt={self.attempt})"

    def progress_sync(self, fraction: float, message: str = "") -> bool:
        """Store how far the job got (through the worker, one round trip); False if the job is no longer its."""
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 <= fraction <= 1.0:
            from .errors import InvalidOptionError

            raise InvalidOptionError(f"progress must be a number from 0.0 to 1.0, not {fraction!r}")
        return self._child.ask_progress(self._seq, float(fraction), str(message)[:1000])

    async def progress(self, fraction: float, message: str = "") -> bool:
        raise RuntimeError("a process-executor handler is a plain def: use ctx.progress_sync(...)")


_QUIET = {signal.SIGALRM, signal.SIGTERM}
"""Signals held while a message is written: a handler raising mid-write would cut the stream."""


class Child:
    """The child's loop: receive jobs, run them in order, report outcomes in batches."""

    def __init__(self, sock: socket.socket, slot: SharedSlot) -> None:
        self.sock = sock
        self.slot = slot
        self.unpacker = msgpack.Unpacker(raw=False, max_buffer_size=1 << 31)
        self.todo: deque[list[Any]] = deque()
        self.replies: deque[Any] = deque()
        self.results: list[list[Any]] = []
        self.reported = time.monotonic()
        self.done = 0
        self.slow: dict[str, float] = {}
        """Task name -> its jobs' recent mean run time (seconds)."""
        self.wire = threading.Lock()
        """Held for every write, and by a progress request until its reply (a handler's threads may ask too)."""
        self.statm: int | None = None

    # -- wire ---------------------------------------------------------------------

    def send(self, message: Any) -> None:
        data = msgpack.packb(message, use_bin_type=True)
        with self.wire:
            held = signal.pthread_sigmask(signal.SIG_BLOCK, _QUIET) if threading.current_thread() is _MAIN else None
            try:
                self.sock.sendall(data)
            finally:
                if held is not None:
                    signal.pthread_sigmask(signal.SIG_SETMASK, held)

    def receive(self) -> Any:
        """The next message from the worker (blocking); None once the worker is gone."""
        while True:
            for message in self.unpacker:
                return message
            data = self.sock.recv(1 << 20)
            if not data:
                return None
            self.unpacker.feed(data)

    def _take(self, message: Any) -> bool:
        """File one message from the worker; False if it says to exit."""
        if message is None or message[0] == EXIT:
            return False
        if message[0] == JOBS:
            self.todo.extend(message[1])
        elif message[0] == REPLY:
            self.replies.append(message[2])
        return True

    def ask_progress(self, seq: int, fraction: float, message: str) -> bool:
        with self.wire:  # one request at a time, its reply read before the next is sent
            data = msgpack.packb([PROGRESS, seq, fraction, message], use_bin_type=True)
            self.sock.sendall(data)
            while not self.replies:
                if not self._take(self.receive()):
                    return False
            return bool(self.replies.popleft())

    def flush(self) -> None:
        if self.results:
            results, self.results = self.results, []
            self.send([RESULTS, results])
        self.reported = time.monotonic()

    # -- start-up -----------------------------------------------------------------

    def start(self, config: dict[str, Any]) -> None:
        from . import hooks
        from .app import App
        from .constants import BATCH

        sys.path[:] = config["path"]
        module_name, _, attr = config["app"].partition(":")
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
        if not isinstance(obj, App):
            raise TypeError(f"{config['app']} is a {type(obj).__name__}, not a fastjobs.App")
        self.app = obj
        self.batch_key = BATCH
        self.worker_id = config["worker_id"]
        self.max_payload = config["max_payload"]
        self.max_tasks = config["max_tasks"] or 0
        self.max_memory = config["max_memory"] or 0
        if self.max_memory and os.path.exists("/proc/self/statm"):
            self.statm = os.open("/proc/self/statm", os.O_RDONLY)
        self.state = hooks.WorkerState(self.worker_id)
        setattr(self.state, "child", config["index"])  # noqa: B010  # which child of the pool (0, 1, ...)
        hooks.STATE.set(self.state)
        for hook in obj.hooks.on_child_start:
            hook(self.state)

    def stop_hooks(self) -> None:
        for hook in self.app.hooks.on_child_stop:
            try:
                hook(self.state)
            except Exception:
                traceback.print_exc()

    # -- running ------------------------------------------------------------------

    def serve(self) -> None:
        from ._core import PayloadTooLargeError, UnencodableError, decode_job, encode_value
        from .errors import Fail, Retry

        tasks = self.app.tasks
        slot = self.slot
        todo = self.todo
        slow = self.slow
        monotonic = time.monotonic
        max_payload = self.max_payload
        while True:
            if not todo:
                self.flush()
                if not self._take(self.receive()):
                    return
                continue
            seq, body, attempt = todo.popleft()
            stop, draining, start_by = slot.asked()
            if stop:  # the worker stops this child: leave the rest queued (the worker sends it elsewhere)
                self.flush()
                return
            if draining or slot.skipped(seq):
                self.results.append([seq, SKIPPED, None, 0.0])
                continue
            try:
                record = decode_job(body, max_payload)
            except Exception as exc:  # the worker decoded it: cannot happen unless the build differs
                self.results.append([seq, ERROR, [type(exc).__qualname__, str(exc), ""], 0.0])
                continue
            name = record.task
            if self.results and slow.get(name, 1.0) > _SLOW:
                self.flush()  # a slow (or new) task: what finished goes first, in case this one is killed
            started = monotonic()
            if started > start_by:  # its lease may have run out meanwhile (a stalled worker): not started
                self.results.append([seq, UNCONFIRMED, None, 0.0])
                continue
            slot.begin(seq, started)
            task = tasks.get(name)
            try:
                if task is None:
                    result = [seq, UNKNOWN, f"no task named {name!r} is registered in the pool's App", 0.0]
                else:
                    args = (ChildContext(self, seq, record, attempt), *record.args) if task.context else record.args
                    soft = task.soft_timeout
                    if soft is None:
                        value = task.invoke(*args, **record.kwargs)
                    else:
                        signal.setitimer(signal.ITIMER_REAL, soft)
                        try:
                            value = task.invoke(*args, **record.kwargs)
                        finally:
                            signal.setitimer(signal.ITIMER_REAL, 0)
                    try:
                        payload = None if value is None else encode_value(value, max_payload)
                        result = [seq, OK, payload, 0.0]
                    except (UnencodableError, PayloadTooLargeError) as exc:
                        result = [seq, BAD_RESULT, [type(exc).__name__, str(exc)], 0.0]
            except _Stopped:
                slot.end()
                self.flush()  # what finished before it still counts
                os._exit(0)  # the worker already failed this attempt; its finally blocks ran
            except Retry as exc:
                result = [seq, RETRY, [exc.delay, str(exc)], 0.0]
            except Fail as exc:  # its type too: ArgumentValidationError and the user's own subclasses
                result = [seq, FAIL, [type(exc).__qualname__, str(exc)], 0.0]
            except BaseException as exc:  # the handler's failure, reported like any other
                text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
                result = [seq, ERROR, [type(exc).__qualname__, str(exc)[:4000], text[-16000:]], 0.0]
            now = monotonic()
            slot.end()
            ran = result[3] = now - started
            slow[name] = 0.7 * slow.get(name, ran) + 0.3 * ran
            self.results.append(result)
            self.done += 1
            if slot.asked()[0]:  # a stop for this job came as it ended (or was swallowed): go, start nothing more
                self.flush()
                return
            if self._should_retire():
                return
            if not todo or now - self.reported > _REPORT_AFTER or len(self.results) >= 32:
                self.flush()

    def _rss(self) -> int:
        """Resident memory now, in bytes (not the peak: Linux hands a new process its parent's peak)."""
        if self.statm is not None:
            return int(os.pread(self.statm, 200, 0).split()[1]) * mmap.PAGESIZE
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def _should_retire(self) -> bool:
        reason = ""
        if self.max_tasks and self.done >= self.max_tasks:
            reason = f"ran {self.done} jobs (max_tasks_per_child)"
        elif self.max_memory and (rss := self._rss()) > self.max_memory:
            reason = f"holds {rss >> 20} MiB of memory (max_memory_per_child)"
        if not reason:
            return False
        self.flush()
        self.send([RETIRING, reason])
        return True


_MAIN = threading.main_thread()


def _on_term(slot: SharedSlot) -> Any:
    def handler(signum: int, frame: Any) -> None:
        stop = slot.asked()[0]
        if not stop:
            return  # the service manager signalled the whole group: the worker decides when we stop
        seq, _, running = slot.current()
        if not running or stop == seq or stop == -1:  # unwind this job (finally blocks run), or leave now
            raise _Stopped()
        # The job it was meant for ended meanwhile: this one finishes, then the child leaves (serve checks).
    return handler


def _die_with_parent(parent: int) -> None:
    """End with the worker, even if it is killed with SIGKILL (Linux), so no child is left behind."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it died before we asked
        os._exit(1)


def main(argv: list[str]) -> int:
    sock = socket.socket(fileno=int(argv[0]))
    sock.setblocking(True)
    sock.set_inheritable(False)  # a process a handler starts must not hold it open (the worker waits for its end)
    shm_fd = int(argv[1])
    slot = SharedSlot(mmap.mmap(shm_fd, SharedSlot.SIZE))
    os.close(shm_fd)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the worker handles it
    signal.signal(signal.SIGTERM, _on_term(slot))
    signal.signal(signal.SIGALRM, _on_alarm)  # soft_timeout
    child = Child(sock, slot)
    try:
        config = child.receive()
        if config is None:
            return 0
        _die_with_parent(config["parent"])
        if config.get("log_level"):
            from .logs import configure

            configure(config["log_level"], config.get("log_format") or "text")
        try:
            child.start(config)
        except Exception as exc:
            child.send([START_FAILED, f"{type(exc).__name__}: {exc}",
                        "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-8000:]])
            return 1
        child.send([READY, os.getpid(), sorted(child.app.tasks)])
        try:
            child.serve()
        finally:
            child.stop_hooks()
    except _Stopped:  # the worker stopped us (outside a job: starting, or between two jobs)
        os._exit(0)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
