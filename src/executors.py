"""Where handlers run: ``async def`` handlers as eagerly started Tasks on the
worker's loop, plain ``def`` handlers on a pool of daemon threads.

:class:`Running` is the worker's record of one job in progress, whichever way it runs.

Example:
    >>> import asyncio
    >>> from fastjobs.executors import start_task
    >>> async def main() -> int:
    ...     async def handler() -> int:
    ...         return 42
    ...     task = start_task(asyncio.get_running_loop(), handler())
    ...     return await task
    >>> asyncio.run(main())
    42
"""

from __future__ import annotations

import asyncio
import contextvars
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from ._core import SlotMaker
from .hooks import STATE

if TYPE_CHECKING:
    from ._core import JobRecord
    from .hooks import WorkerState
    from .backends.base import Claim
    from .process_pool import PoolChild, ProcessPool
    from .context import Context
    from .task import Task


def start_task(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any],
               context: contextvars.Context | None = None) -> asyncio.Task[Any]:
    """Wrap a handler's coroutine in its own Task, started eagerly where Python can.

    Every handler gets a real Task, so ``asyncio.current_task()``, ``asyncio.timeout``,
    ``wait_for`` and context variables see the job, never the worker. On Python 3.12+
    the Task runs its first step at once (``eager_start``): a handler that finishes
    without suspending is done before this returns and never touches the scheduler.
    On 3.10 and 3.11 it is an :class:`~fastjobs.eager.EagerTask`, which does the same. ``context``: the
    contextvars context the Task runs in (default: a copy of the current one).
    """
    return asyncio.Task(coro, loop=loop, eager_start=True, context=context)  # type: ignore[call-arg]


if sys.version_info < (3, 12):
    # 3.10 and 3.11 have no eager_start: EagerTask is one (see fastjobs.eager), called directly.
    from .eager import EagerTask as start_task  # noqa: F401, F811


_WAITING, _STARTED, _WITHDRAWN = 0, 1, 2
_NEVER = float("inf")

LEASE_SAFETY = 0.5
"""A claimed job may start only within this fraction of its lease since the lease was last
confirmed (claimed or renewed). Past it, the worker may have stalled (SIGSTOP, a swapped-out
or frozen VM, a blocked loop) long enough for the lease to expire and another worker to take
the job back: the worker gives the job back unstarted instead. Half the lease leaves the
heartbeat (every third of it) room to renew a job it started at the last moment."""


class LeaseUnconfirmed(Exception):
    """The outcome a thread reports for a job it did not start: its lease was not confirmed in time."""


LEASE_UNCONFIRMED = LeaseUnconfirmed()
NOT_STARTED = LeaseUnconfirmed()
"""The outcome the process pool reports for a job it did not start because the worker is shutting down."""


class Running:
    """A job whose handler is suspended (async: ``future`` is its Task) or on a thread (sync)."""

    __slots__ = ("claim", "record", "task", "future", "timer", "timed_out", "lease", "lost", "thread_state", "started", "ctx",
                 "start_by", "ran", "jctx", "runner", "child", "seq")

    def __init__(self, claim: Claim, record: JobRecord, task: Task[..., Any], future: asyncio.Future[Any] | None, lease: float) -> None:
        self.claim = claim
        self.record = record
        self.task = task
        self.future = future
        self.timer: asyncio.TimerHandle | None = None
        self.timed_out = False
        self.lease = lease
        self.lost = False
        self.thread_state = _WAITING
        self.started: float | None = None
        """``time.monotonic()`` when its handler was called (async jobs), or when a thread took it
        (sync jobs: a timeout counts from there)."""
        self.ran = 0.0
        """Sync jobs: seconds the handler ran, measured by its thread (the history's run time)."""
        self.ctx: Context | None = None
        """Its Context: the handler's first argument if its task takes one, and what its hooks get."""
        self.jctx: contextvars.Context | None = None
        """With job hooks: the contextvars context its hooks and handler share (see :mod:`fastjobs.hooks`)."""
        self.start_by = _NEVER
        """Sync jobs: ``time.monotonic()`` after which a thread must not start it (see :data:`LEASE_SAFETY`)."""
        self.runner: ThreadRunner | ProcessPool | None = None
        """Sync jobs: the pool it was submitted to (threads, or processes for ``executor="process"``)."""
        self.child: PoolChild | None = None
        """Process-executor jobs: the child it was sent to."""
        self.seq = 0
        """Process-executor jobs: its number on the wire to its child."""


def _running_maker() -> Callable[[Claim, JobRecord, Task[..., Any], asyncio.Future[Any] | None, float], Running]:
    """A SlotMaker of Running whose defaults are the ones ``__init__`` sets (read off one it built,
    so the two cannot drift apart; all are immutable, so sharing them is safe)."""
    given = ("claim", "record", "task", "future", "lease")
    built = Running(None, None, None, None, 0.0)  # type: ignore[arg-type]
    return SlotMaker(Running, given, {name: getattr(built, name) for name in Running.__slots__ if name not in given})


new_running = _running_maker()
"""``Running(claim, record, task, future, lease)`` built in C, without its ``__init__`` call (~3,000
instructions less a job; tests/test_hooks_core.py holds it to ``Running(...)``)."""


class ThreadRunner:
    """Runs plain ``def`` handlers on daemon threads and reports outcomes in batches.

    A ThreadPoolExecutor costs a future, a wrapped asyncio future and one
    cross-thread wake-up per job; here a thread takes jobs from one queue and
    hands outcomes back through a shared deque, waking the event loop once per
    burst. Threads are daemons so a handler stuck past the grace period cannot
    hold the process open: its job comes back when its lease expires.

    No lock per job: a job waiting for a thread is a key of :attr:`unstarted`, and
    ``dict.pop`` is atomic (a Running hashes by identity, so no Python code runs inside
    it), so a thread taking it and :meth:`withdraw` taking it back cannot both succeed.
    Outcomes go through a deque (``append``/``popleft`` are atomic) and :attr:`waking`
    says a flush is scheduled: the flush clears it before it collects, so an outcome
    appended meanwhile is either collected or wakes the loop again. Two ``with lock``
    blocks per job cost ~4,000 instructions on 3.11 (cachegrind), most of a plain def
    job's extra cost over an async one.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, size: int, deliver: Callable[[list[tuple[Running, Any, BaseException | None]]], None],
                 state: WorkerState | None = None) -> None:
        self.loop = loop
        self.state = state
        self.size = size
        self.deliver = deliver
        self.todo: queue.SimpleQueue[Running | None] = queue.SimpleQueue()
        self.unstarted: dict[Running, bool] = {}
        """The jobs submitted that no thread took and that were not withdrawn."""
        self.outcomes: deque[tuple[Running, Any, BaseException | None]] = deque()
        self.waking = False
        """A flush of :attr:`outcomes` is scheduled on the loop."""
        self.threads: list[threading.Thread] = []

    def submit(self, running: Running) -> None:
        running.runner = self
        if len(self.threads) < self.size:
            thread = threading.Thread(target=self._work, name=f"fastjobs-job-{len(self.threads)}", daemon=True)
            self.threads.append(thread)
            thread.start()
        self.unstarted[running] = True
        self.todo.put(running)

    def withdraw(self, running: Running) -> bool:
        """Take back a job no thread has started; False if one already has."""
        if not self.unstarted.pop(running, False):
            return False
        running.thread_state = _WITHDRAWN
        return True

    def refresh(self, running: Running) -> None:
        """Nothing to do: a thread sets ``running.started`` itself when it takes the job."""

    def stop_job(self, running: Running) -> bool:
        """A thread cannot be stopped: returns True, its handler runs on (its outcome is discarded)."""
        return True

    def stop(self) -> None:
        for _ in self.threads:
            self.todo.put(None)

    def _work(self) -> None:
        if self.state is not None:
            STATE.set(self.state)  # fastjobs.worker_state() in plain def handlers
        get = self.todo.get
        take = self.unstarted.pop
        outcomes = self.outcomes
        monotonic = time.monotonic
        while True:
            running = get()
            if running is None:
                return
            if not take(running, False):
                continue  # withdrawn
            now = monotonic()
            running.started = now
            outcome: tuple[Running, Any, BaseException | None]
            if now > running.start_by:
                running.thread_state = _WITHDRAWN
                outcome = (running, None, LEASE_UNCONFIRMED)
            else:
                running.thread_state = _STARTED
                record = running.record
                task = running.task
                args = (running.ctx, *record.args) if task.context else record.args
                try:
                    if running.jctx is None:
                        outcome = (running, task.invoke(*args, **record.kwargs), None)
                    else:
                        outcome = (running, running.jctx.run(task.invoke, *args, **record.kwargs), None)
                except BaseException as exc:  # the handler's failure, reported like any other
                    outcome = (running, None, exc)
                running.ran = monotonic() - now
            outcomes.append(outcome)
            if not self.waking:
                self.waking = True
                if not self._wake():
                    return

    def _wake(self) -> bool:
        """Have the loop collect the outcomes; False once the loop is closed (the worker is gone)."""
        try:
            self.loop.call_soon_threadsafe(self._flush)
        except RuntimeError:
            return False
        return True

    def _flush(self) -> None:
        self.waking = False  # first: an outcome appended from here on is collected below, or wakes again
        outcomes = self.outcomes
        done = [outcomes.popleft() for _ in range(len(outcomes))]
        if done:
            self.deliver(done)
