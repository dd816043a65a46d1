"""Helpers for your tests: see what your code enqueues, run it, and move time on.

Plain context managers and coroutines, so they work in pytest (sync or async tests)
and in ``unittest`` (``IsolatedAsyncioTestCase``) alike:

* :func:`capture_enqueues` records every job enqueued through an App inside the
  block (task name, arguments, options), by any path: ``task.enqueue``,
  ``options(...)``, ``enqueue_many``, ``enqueue_by_name``, chains, batches, the
  sync variants;
* :func:`run_jobs` does the same, then runs those jobs (and the jobs they
  enqueue) with a burst worker when the block ends;
* :func:`advance_time` moves the App's time on: delayed jobs and retries in
  backoff fall due as if the time had passed, and periodic tasks enqueue the
  ticks that fall in it.

The backends' clocks are not touched (Redis ``TIME`` and PostgreSQL ``now()``
keep deciding when a job is due, for leases and fencing too): ``advance_time``
moves the stored jobs' due times back instead, on every backend alike, and
keeps the App's own count of the time it was moved on for its periodic ticks.
``memory://`` reads ``time.time()``, so a library that patches it moves that
backend's clock (only that one; leases and the event loop then see it too):
``advance_time`` needs no patching. ``run_jobs(app, ignore_delays=True)`` is the
shortcut for "run it all now": the jobs enqueued inside its block are stored
without their ``delay`` / ``eta``.

Example:
    >>> import fastjobs, fastjobs.testing
    >>> app = fastjobs.App("memory://")
    >>> @app.task(name="emails.send")
    ... def send(to: str) -> None: ...
    >>> with fastjobs.testing.capture_enqueues(app) as enqueued:
    ...     _ = send.options(priority=5).enqueue_sync("a@b.c")
    >>> [(job.task, job.args, job.priority) for job in enqueued]
    [('emails.send', ('a@b.c',), 5)]
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import weakref
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from .errors import InvalidOptionError

if TYPE_CHECKING:
    from .app import App
    from .handles import JobHandles
    from .task import Call

__all__ = ["EnqueuedJob", "advance_time", "capture_enqueues", "run_jobs"]


@dataclasses.dataclass(frozen=True)
class EnqueuedJob:
    """One job enqueued inside :func:`capture_enqueues` or :func:`run_jobs`: what was asked for.

    Example:
        >>> job = enqueued[0]  # doctest: +SKIP
        >>> job.task, job.args, job.kwargs, job.queue, job.delay  # doctest: +SKIP
        ('emails.send', ('a@b.c',), {}, 'default', 0.0)
    """

    id: str
    task: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    queue: str
    priority: int
    delay: float
    """Seconds it was deferred by (``delay=`` or ``eta=``), before ``ignore_delays``."""
    max_attempts: int
    timeout: float | None
    unique_key: str | None
    depends_on: tuple[str, ...]
    tags: tuple[str, ...]
    meta: dict[str, Any] | None
    call: Call[Any]
    """The :class:`~fastjobs.Call` as enqueued (its ``options`` has the rest)."""


class Enqueued(list[EnqueuedJob]):
    """The jobs a block enqueued, in order (fastjobs' own, such as a batch's tracker, left out)."""

    def named(self, task: str) -> list[EnqueuedJob]:
        """The jobs of the task called ``task``."""
        return [job for job in self if job.task == task]


@contextlib.contextmanager
def capture_enqueues(app: App, *, ignore_delays: bool = False) -> Iterator[Enqueued]:
    """Record what ``app`` enqueues inside the block; the jobs are stored as usual, and not run.

    Args:
        app: the App your code enqueues through.
        ignore_delays: store the jobs without their delay (they are due at once); the
            records keep the delay that was asked for.

    Example:
        >>> with fastjobs.testing.capture_enqueues(app) as enqueued:  # doctest: +SKIP
        ...     signup("a@b.c")  # your code, which enqueues a welcome email
        >>> [job.args for job in enqueued.named("emails.send")]  # doctest: +SKIP
        [('a@b.c',)]
    """
    from .constants import BATCH_TASK

    enqueued = Enqueued()
    # App._enqueue is the one door every enqueue path goes through, after the enqueue hooks.
    shadowed = app.__dict__.get("_enqueue")
    inner = app._enqueue

    async def recording(calls: list[Call[Any]], connection: Any) -> JobHandles:
        stored = [dataclasses.replace(call, delay=0.0) if call.delay else call for call in calls] if ignore_delays else calls
        handles = await inner(stored, connection)
        for call, job_id in zip(calls, handles.ids):
            if call.task.name == BATCH_TASK:
                continue
            opts = call.options
            enqueued.append(EnqueuedJob(
                job_id, call.task.name, call.args, call.kwargs, opts.queue, opts.priority, call.delay,
                opts.max_attempts, opts.timeout, call.unique_key, call.depends_on, call.tags, call.meta, call,
            ))
        return handles

    setattr(app, "_enqueue", recording)
    try:
        yield enqueued
    finally:
        if shadowed is None:
            del app.__dict__["_enqueue"]
        else:
            setattr(app, "_enqueue", shadowed)


@contextlib.asynccontextmanager
async def run_jobs(app: App, queues: Sequence[str] | None = None, *, ignore_delays: bool = False,
                   **worker_options: Any) -> AsyncIterator[Enqueued]:
    """Run the jobs enqueued inside the block when it ends, with a burst worker in this event loop.

    The worker runs until no job is ready: jobs those jobs enqueue run too (in the queues it
    serves), while a retry
    whose backoff is not over, or a job still delayed, is left for later (see ``ignore_delays``,
    and :func:`advance_time`, which may be awaited inside the block).
    A job's failure does not raise here: look at ``await app.get_job(job.id)``.

    Args:
        app: the App your code enqueues through; its worker runs the jobs.
        queues: the worker's queues (default: those of the App's tasks and of the jobs enqueued in the block).
        ignore_delays: store the jobs enqueued inside the block without their delay, so that
            they run at its end too.
        worker_options: more :class:`~fastjobs.Worker` arguments (``concurrency``, ``executor``...).

    Example:
        >>> async with fastjobs.testing.run_jobs(app) as enqueued:  # doctest: +SKIP
        ...     job = await send.enqueue("a@b.c")
        >>> (await app.get_job(job.id)).state  # doctest: +SKIP
        'succeeded'
    """
    with capture_enqueues(app, ignore_delays=ignore_delays) as enqueued:
        yield enqueued
    if queues is None:
        # Also the queues the block's jobs went to: options(queue=) may name one no task has.
        queues = sorted({task.default_options.queue for task in app.tasks.values()} | {job.queue for job in enqueued})
        if not queues:
            return
    worker_options.setdefault("handle_signals", False)
    await app.worker(queues, burst=True, **worker_options).run()


MAX_TICKS = 10_000
"""The most ticks one periodic task may enqueue in one :func:`advance_time`."""

_advanced: weakref.WeakKeyDictionary[App, tuple[float, float]] = weakref.WeakKeyDictionary()
"""Per App: the seconds its time was moved on, and where its last window of periodic ticks ended
(its App time then): the next window starts there, so the real time that passed between two
calls loses no tick."""


async def advance_time(app: App, seconds: float) -> None:
    """Move time on by ``seconds`` for ``app``'s jobs: what falls due in them is due now.

    Every scheduled job (``delay`` / ``eta``) and every retry in backoff becomes due
    ``seconds`` earlier, on every backend: those due by then are queued, keeping their
    order, and the others come closer, so two calls add up. Each tick of a periodic task
    that falls in the window (from where the App's last call left off) is enqueued once,
    as the worker's scheduler enqueues it
    (the same job id per tick: a tick enqueued twice is stored once). Nothing runs here:
    run the jobs with :func:`run_jobs` (at its block's end when awaited inside it) or a
    worker. Leases, result retention and ``unique_ttl`` windows keep the real clock.
    From synchronous code: ``app.run_sync(advance_time(app, 3600))``.

    Args:
        app: the App your code enqueues through.
        seconds: how far to move on (a number >= 0).

    Raises:
        InvalidOptionError: ``seconds`` is not a number >= 0, or the window holds more than
            :data:`MAX_TICKS` ticks of one periodic task (advance by less).

    Example:
        >>> job = await send.options(delay=3600).enqueue("a@b.c")  # doctest: +SKIP
        >>> async with fastjobs.testing.run_jobs(app):  # doctest: +SKIP
        ...     await fastjobs.testing.advance_time(app, 3600)
        >>> (await app.get_job(job.id)).state  # doctest: +SKIP
        'succeeded'
    """
    from .periodic import _enqueue_tick

    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds < math.inf:
        raise InvalidOptionError(f"advance_time takes a number of seconds >= 0, not {seconds!r}")
    backend = await app.backend()
    now = await backend.now()
    moved, start = _advanced.get(app) or (0.0, now)
    end = now + moved + seconds
    ticks: list[tuple[float, str]] = []
    for name, plan in app.schedules.items():
        tick = plan.next_after(start)
        count = 0
        while tick <= end:
            count += 1
            if count > MAX_TICKS:
                raise InvalidOptionError(
                    f"advance_time({seconds!r}) would enqueue more than {MAX_TICKS} ticks of periodic task "
                    f"{name!r} ({plan!r}) since this App's last advance_time ended: advance by less, a step "
                    "at a time"
                )
            ticks.append((tick, name))
            tick = plan.next_after(tick)
    _advanced[app] = (moved + seconds, max(start, end))
    if seconds:
        await backend.shift_due(float(seconds))
        await backend.promote_due()
    for tick, name in sorted(ticks):
        await _enqueue_tick(app, name, tick)
