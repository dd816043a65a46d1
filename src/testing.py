"""Helpers for your tests: see what your code enqueues, and run it.

Plain context managers, so they work in pytest (sync or async tests) and in
``unittest`` (``IsolatedAsyncioTestCase``) alike:

* :func:`capture_enqueues` records every job enqueued through an App inside the
  block (task name, arguments, options), by any path: ``task.enqueue``,
  ``options(...)``, ``enqueue_many``, ``enqueue_by_name``, chains, batches, the
  sync variants;
* :func:`run_jobs` does the same, then runs those jobs (and the jobs they
  enqueue) with a burst worker when the block ends.

Time cannot be frozen or moved on: Redis and PostgreSQL schedule by their own
clocks. ``run_jobs(app, ignore_delays=True)`` stores the jobs enqueued inside
the block without their ``delay`` / ``eta`` instead, so that they run at its end.

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
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import App
    from .handles import JobHandles
    from .task import Call

__all__ = ["EnqueuedJob", "capture_enqueues", "run_jobs"]


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
    whose backoff is not over, or a job still delayed, is left for later (see ``ignore_delays``).
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
