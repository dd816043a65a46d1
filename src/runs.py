"""How a worker runs the jobs it claimed: starting them, their hooks, and turning outcomes into acks.

:class:`JobRuns` is a base class of :class:`~fastjobs.Worker` holding this half of it: an
``async def`` handler starts eagerly as its own Task, a plain ``def`` one goes to the thread
pool; a chain step reads its parent's result first; with job hooks (:mod:`fastjobs.hooks`)
each job gets a contextvars context of its own, its before_job hooks run before the handler
and its after_job (and on_dead) hooks after its outcome. Every outcome becomes an ack in the
:class:`~fastjobs.acks.AckBuffer`; a timed-out or lost job is stopped and its late outcome
discarded.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import time
from asyncio.futures import _FINISHED  # type: ignore[attr-defined]
from contextvars import copy_context
from typing import TYPE_CHECKING, Any

from ._core import (
    SUCCEEDED,
    CorruptJobError,
    JobOutcome,
    PayloadTooLargeError,
    UnencodableError,
    decode_job,
    after_success,
    decode_value,
    job_context,
)
from .constants import PIPE
from .context import Context
from .errors import DependencyError, JobTimeoutError, LeaseExpiredError, UnknownTaskError, WorkerShutdown
from .executors import LEASE_SAFETY, LEASE_UNCONFIRMED, NOT_STARTED, Running, ThreadRunner, new_running, start_task
from .hooks import (
    CANCELLED,
    DEAD,
    FAILED,
    SUCCEEDED as SUCCESS,
    TIMED_OUT,
    WorkerState,
    await_logged,
    call_logged,
    log_raised,
    run_hooks,
)

if TYPE_CHECKING:
    from ._core import JobRecord
    from .acks import AckBuffer
    from .app import App
    from .backends.base import Backend, Claim
    from .metrics import WorkerMetrics
    from .process_pool import ProcessPool
    from .task import Task
    from .waits import Flag


class JobRuns:
    """The job-running half of :class:`~fastjobs.Worker` (see the module's docstring)."""

    app: App
    id: str
    state: WorkerState
    metrics: WorkerMetrics | None
    _backend: Backend | None
    _loop: asyncio.AbstractEventLoop
    _ackbuf: AckBuffer
    _threads: ThreadRunner | None
    _procs: ProcessPool | None
    _process_tasks: set[Task[..., Any]]
    _running: dict[str, Running]
    _starting: set[asyncio.Task[None]]
    _pending_confirmed: float
    _slot_free: Flag
    _stop: Flag
    _around: bool
    _befores: list[Any]
    _befores_async: list[Any]
    _afters: list[Any]
    _on_deads: list[Any]
    _hook_tasks: set[asyncio.Task[Any]]

    def _start_batch(self, claims: list[Claim]) -> None:
        registry = self.app.tasks
        max_payload = self.app.max_payload
        counted: list[JobRecord] | None = None if self.metrics is None else []
        start = self._start_hooked if self._around else self._start_one
        for claim in claims:
            try:
                record = decode_job(claim.body, max_payload)
            except (CorruptJobError, PayloadTooLargeError) as exc:
                self._ackbuf.dead_letter(claim, type(exc).__name__, f"undecodable job payload: {exc}")
                continue
            task = registry.get(record.task) or self.app.builtin_tasks.get(record.task)
            if task is None:
                message = (f"no task named {record.task!r} is registered in this worker; "
                           "register it with @app.task (workers never import code a job names)")
                self._ackbuf.dead_letter(claim, UnknownTaskError.__name__, message, record)
                self._dead_unstarted(claim, record, None, UnknownTaskError(message))
                continue
            record.attempt = claim.attempt
            if counted is not None:
                counted.append(record)
            if record.meta and PIPE in record.meta:
                self._start_piped(claim, record, task)
            else:
                start(claim, record, task)
        if counted:
            self._count_started(counted)

    def _count_started(self, records: list[JobRecord]) -> None:
        """Count jobs as started, with their wait (first attempts: since enqueued or due; a
        retry's wait is not known here), grouped per (queue, task): once per start batch."""
        assert self.metrics is not None
        self.metrics.add_started(records, time.time())

    def _dead_unstarted(self, claim: Claim, record: JobRecord, task: Task[..., Any] | None, error: Exception) -> None:
        """A job dead-lettered before it could start (unknown task, a chain step whose parent's
        result is gone): the on_dead hooks (the task's too, if known) still hear of it."""
        if not (self._on_deads or (task is not None and task.on_dead is not None)):
            return
        running = Running(claim, record, task, None, 0.0)  # type: ignore[arg-type]  # only what _after reads
        ctx = running.ctx = self._context(claim, record)
        running.jctx = contextvars.copy_context()
        outcome = JobOutcome(DEAD, error)
        self._call_hooks(running.jctx, "on_dead", self._dead_hooks(task), ctx, outcome)

    def _start_one(self, claim: Claim, record: JobRecord, task: Task[..., Any]) -> None:
        if self._around:
            self._start_hooked(claim, record, task)
            return
        if not task.is_async:
            self._submit_sync(claim, record, task)
            return
        ctx = self._context(claim, record) if task.context else None
        # Its run time counts from here to its outcome: exact when it finishes in its eager
        # first step; else it includes the loop's turns before its done callback. Timing inside
        # the Task would be exact but costs a coroutine per job (~0.7 us measured, 7% of a
        # no-op job); this, two clock reads.
        started = time.monotonic()
        try:
            job_task = start_task(self._loop, task.invoke(*(record.args if ctx is None else (ctx, *record.args)),
                                                          **record.kwargs))
        except Exception as exc:  # calling the handler failed (e.g. wrong arguments)
            running = Running(claim, record, task, None, task.default_options.lease or self.app.lease)
            running.ctx, running.started = ctx, started
            self._failed_attempt(running, exc, 0.0)
            return
        # Read from the Future's own fields (a C Task's getters, an EagerTask's attributes): on 3.11
        # done(), cancelled(), exception() and result() are four Python calls, ~1,400 instructions a job.
        if job_task._state == _FINISHED and job_task._exception is None:
            # The common case, a handler that returned in its eager first step: its ack at once,
            # without the Running that a job in progress needs.
            self._ackbuf.succeed(claim, record, job_task._result, time.monotonic() - started)  # type: ignore[attr-defined]
            return
        running = new_running(claim, record, task, job_task, task.default_options.lease or self.app.lease)
        running.ctx, running.started = ctx, started
        if job_task.done():  # failed or cancelled in its first step
            self._settle(running, job_task)
        else:
            self._track(running)

    def _start_hooked(self, claim: Claim, record: JobRecord, task: Task[..., Any]) -> None:
        """:meth:`_start_one` with job hooks: the before_job hooks, then the handler, in a contextvars
        context of the job's own (see :mod:`fastjobs.hooks`)."""
        ctx = job_context(Context, claim, record, self, self._pending_confirmed, self.app.lease)  # as _context
        jctx = copy_context()
        befores = self._befores
        if befores:
            # One hook (the common case) is called as it is, without run_hooks' frame: ~0.1 us a job.
            if len(befores) == 1:
                try:
                    jctx.run(befores[0], ctx)
                except Exception:
                    log_raised("before_job", befores[0], claim.id)
            else:
                jctx.run(run_hooks, "before_job", befores, claim.id, ctx)
        if not task.is_async:
            running = self._hooked(claim, record, task, ctx, jctx)
            running.start_by = self._pending_confirmed + self.app.lease * LEASE_SAFETY
            self._track(running)
            runner = self._runner(task)
            if self._befores_async:
                self._hook_task(_then_submit(self._befores_async, ctx, runner, running), jctx)
            else:
                runner.submit(running)
            return
        started = time.monotonic()
        try:
            coro = task.invoke(*((ctx, *record.args) if task.context else record.args), **record.kwargs)
            if self._befores_async:
                coro = _preceded(self._befores_async, ctx, coro)
            job_task = start_task(self._loop, coro, jctx)
        except Exception as exc:  # calling the handler failed (e.g. wrong arguments)
            running = self._hooked(claim, record, task, ctx, jctx)
            running.started = started
            self._failed_attempt(running, exc, 0.0)
            return
        if job_task._state == _FINISHED and job_task._exception is None:
            # Returned in its eager first step: as in _start_one, its ack and after_job hooks
            # without a Running (one is made only if its result cannot be stored).
            value, seconds = job_task._result, time.monotonic() - started  # type: ignore[attr-defined]
            error = self._ackbuf.succeed(claim, record, value, seconds)
            if error is None:
                afters = self._afters
                if len(afters) == 1:  # as _after_success does, without its call: ~600 instructions a job
                    hook = afters[0]
                    try:
                        result = after_success(hook, jctx, ctx, value, seconds)
                    except Exception:
                        log_raised("after_job", hook, claim.id)
                    else:
                        if result is not None and inspect.isawaitable(result):
                            self._hook_task(await_logged("after_job", result, hook, claim.id), jctx)
                elif afters:
                    self._after_success(ctx, jctx, claim.id, value, seconds)
            else:
                self._after(self._hooked(claim, record, task, ctx, jctx), JobOutcome(DEAD, error, None, seconds))
            return
        running = self._hooked(claim, record, task, ctx, jctx)
        running.started, running.future = started, job_task
        if job_task.done():
            self._settle(running, job_task)
        else:
            self._track(running)

    def _hooked(self, claim: Claim, record: JobRecord, task: Task[..., Any], ctx: Context,
                jctx: contextvars.Context) -> Running:
        """The Running of a job with hooks, its Context and contextvars context set."""
        running = new_running(claim, record, task, None, task.default_options.lease or self.app.lease)
        running.ctx, running.jctx = ctx, jctx
        return running

    # -- outcomes and hooks -----------------------------------------------------------

    def _failed_attempt(self, running: Running, exc: BaseException, seconds: float, timed_out: bool = False,
                        thread_running: bool = False) -> None:
        retry = self._ackbuf.fail(running.claim, running.record, exc, seconds, timed_out, running.task.backoff_fn)
        if self._around:
            status = (TIMED_OUT if timed_out else FAILED) if retry else DEAD
            self._after(running, JobOutcome(status, exc, None, seconds, retry, timed_out), thread_running)

    def _succeeded(self, running: Running, value: Any, seconds: float) -> None:
        error = self._ackbuf.succeed(running.claim, running.record, value, seconds)
        if not self._around:
            return
        if error is not None:
            self._after(running, JobOutcome(DEAD, error, None, seconds))
            return
        if running.jctx is not None:
            self._after_success(running.ctx, running.jctx, running.claim.id, value, seconds)  # type: ignore[arg-type]

    def _after_success(self, ctx: Context, jctx: contextvars.Context, job_id: str, value: Any, seconds: float) -> None:
        """The after_job hooks of a success: :meth:`_after` without its layers (a success has no
        on_dead, and a job that ran had its before_job hooks, so its context); no JobOutcome
        without after_job hooks."""
        afters = self._afters
        if not afters:
            return
        if len(afters) == 1:  # as it is, as in _start_hooked; its outcome built in C
            hook = afters[0]
            try:
                result = after_success(hook, jctx, ctx, value, seconds)
            except Exception:
                log_raised("after_job", hook, job_id)
                return
            if result is not None and inspect.isawaitable(result):
                self._hook_task(await_logged("after_job", result, hook, job_id), jctx)
            return
        pending = jctx.run(run_hooks, "after_job", afters, job_id, ctx, JobOutcome(SUCCESS, None, value, seconds))
        if pending:
            self._await_hooks(jctx, "after_job", pending, job_id)

    def _cancelled(self, running: Running, error: BaseException, thread_running: bool = False) -> None:
        """A job stopped (cancelled, lease lost, given back at shutdown): its outcome is not recorded."""
        if self.metrics is not None:
            self.metrics.add_outcome(running.record.queue, running.record.task, CANCELLED)
        if self._around:
            started = running.started
            seconds = 0.0 if started is None else time.monotonic() - started
            self._after(running, JobOutcome(CANCELLED, error, None, seconds), thread_running)

    def _after(self, running: Running, outcome: JobOutcome, thread_running: bool = False) -> None:
        """Run the after_job hooks (and on dead, the task's and the App's on_dead) in the job's context.

        ``thread_running``: a plain def handler still runs on its thread (timed out, or its lease
        lost) and is inside the job's context; the hooks get a copy of it."""
        jctx = running.jctx
        ctx = running.ctx
        if jctx is None or ctx is None:  # no before_job ran: a chain step that timed out fetching its input
            if outcome.status == DEAD and isinstance(outcome.error, Exception):
                self._dead_unstarted(running.claim, running.record, running.task, outcome.error)
            return
        if thread_running:
            jctx = jctx.copy()
        if self._afters:
            self._call_hooks(jctx, "after_job", self._afters, ctx, outcome)
        if outcome.status == DEAD:
            self._call_hooks(jctx, "on_dead", self._dead_hooks(running.task), ctx, outcome)

    def _dead_hooks(self, task: Task[..., Any] | None) -> list[Any]:
        """The on_dead hooks of a job of ``task``: the task's own first, then the App's."""
        if task is None or task.on_dead is None:
            return self._on_deads
        return [task.on_dead, *self._on_deads]

    def _call_hooks(self, jctx: contextvars.Context, kind: str, hooks: list[Any], ctx: Context, *args: Any) -> None:
        """Run ``hooks`` in the job's context (entered once); async ones go on as Tasks in it."""
        pending = jctx.run(run_hooks, kind, hooks, ctx.job_id, ctx, *args)
        if pending:
            self._await_hooks(jctx, kind, pending, ctx.job_id)

    def _await_hooks(self, jctx: contextvars.Context, kind: str, pending: list[tuple[Any, Any]], job_id: str) -> None:
        """What ``async def`` hooks returned goes on as Tasks in the job's context."""
        for hook, awaitable in pending:
            self._hook_task(await_logged(kind, awaitable, hook, job_id), jctx)

    def _hook_task(self, coro: Any, jctx: contextvars.Context) -> None:
        task = start_task(self._loop, coro, jctx)
        if not task.done():
            self._hook_tasks.add(task)
            task.add_done_callback(self._hook_tasks.discard)

    def _start_piped(self, claim: Claim, record: JobRecord, task: Task[..., Any]) -> None:
        """A chain step: read the previous step's result (one round trip), pass it first, then start.

        While the read is in flight the job is tracked like a running sync job (no
        future), so its lease is renewed, its slot counted and shutdown waits for it.
        """
        lease = task.default_options.lease or self.app.lease
        fetching = Running(claim, record, task, None, lease)
        fetching.started = time.monotonic()  # the step's timeout bounds the fetch too
        self._track(fetching)

        async def start() -> None:
            parent_id = str(record.meta[PIPE])
            try:
                stored = await self._backend.get(parent_id)  # type: ignore[union-attr]
            except Exception as exc:  # the backend failed: this attempt fails, and is retried
                if self._forget(fetching) and not fetching.lost:
                    if not self._ackbuf.fail(claim, record, exc, time.monotonic() - fetching.started,  # type: ignore[operator]
                                             backoff_fn=task.backoff_fn):
                        self._dead_unstarted(claim, record, task, exc)
                    self._ackbuf.schedule()
                return
            if not self._forget(fetching) or fetching.lost:
                return  # timed out, or its lease was lost meanwhile
            if self._stop.is_set():  # shutting down: give it back unstarted
                self._ackbuf.release(claim)
                self._cancelled(fetching, WorkerShutdown(f"chain step {claim.id} was given back unstarted at shutdown"))
            elif stored is None or stored.state != SUCCEEDED:
                message = (f"chain step {claim.id} needs the result of {parent_id!r}, which is gone: results are "
                           "kept result_ttl seconds after a job succeeded; raise the App's result_ttl")
                self._ackbuf.dead_letter(claim, DependencyError.__name__, message, record)
                self._dead_unstarted(claim, record, task, DependencyError(claim.id, parent_id))
            else:
                try:
                    value = None if stored.result is None else decode_value(stored.result, self.app.max_payload)
                except (CorruptJobError, PayloadTooLargeError, UnencodableError) as exc:
                    self._ackbuf.dead_letter(claim, type(exc).__name__, f"the result of {parent_id!r} is unreadable: {exc}",
                                             record)
                    self._dead_unstarted(claim, record, task, exc)
                else:
                    record.args = (value, *record.args)
                    self._start_one(claim, record, task)
            self._ackbuf.schedule()

        starting = self._loop.create_task(start())
        self._starting.add(starting)
        starting.add_done_callback(self._starting.discard)

    def _context(self, claim: Claim, record: JobRecord) -> Context:
        # Built in C, its fields read when asked (fastjobs._core.job_context). Claimed with the App's
        # lease, as last confirmed; the first renewal applies the task's own.
        ctx: Context = job_context(Context, claim, record, self, self._pending_confirmed, self.app.lease)
        return ctx

    def _runner(self, task: Task[..., Any]) -> ThreadRunner | ProcessPool:
        """Where a plain def handler of ``task`` runs: the process pool (``executor="process"``) or the threads."""
        if self._procs is not None and task in self._process_tasks:
            return self._procs
        assert self._threads is not None
        return self._threads

    def _submit_sync(self, claim: Claim, record: JobRecord, task: Task[..., Any]) -> None:
        lease = task.default_options.lease or self.app.lease
        running = new_running(claim, record, task, None, lease)
        # Claimed with the App's lease; a thread must not start it once that may have run out.
        running.start_by = self._pending_confirmed + self.app.lease * LEASE_SAFETY
        if task.context:
            running.ctx = self._context(claim, record)
        self._track(running)
        self._runner(task).submit(running)

    def _track(self, running: Running) -> None:
        job_id = running.claim.id
        self._running[job_id] = running
        timeout = running.record.timeout
        if timeout is not None:
            running.timer = self._loop.call_later(timeout, self._time_out, running)
        if running.future is not None:
            running.future.add_done_callback(functools.partial(self._done, running))

    def _time_out(self, running: Running) -> None:
        if running.future is not None:
            running.timed_out = True
            running.future.cancel()
            return
        # A sync job's timeout counts from when a thread took it, not from when it
        # queued for one; the timer was armed at submit, so check and re-arm.
        timeout = running.record.timeout
        assert timeout is not None
        runner = running.runner
        if runner is not None:
            runner.refresh(running)
        started = running.started
        remaining = timeout if started is None else started + timeout - time.monotonic()
        if remaining > 0:
            running.timer = self._loop.call_later(remaining, self._time_out, running)
            return
        running.timed_out = True
        if running.ctx is not None:
            running.ctx.cancelled = True  # the thread runs on: tell a handler that checks
        # A thread cannot be killed: fail the attempt now and free the slot; the thread runs on and
        # its late outcome is discarded. A process can: the pool kills the child running it.
        self._forget(running)
        runs_on = runner is None or runner.stop_job(running)
        self._failed_attempt(running, self._timeout_error(running), timeout - remaining, timed_out=True,
                             thread_running=runs_on)
        self._ackbuf.schedule()

    def _timeout_error(self, running: Running) -> JobTimeoutError:
        return JobTimeoutError(f"job {running.claim.id} ran longer than its timeout of {running.record.timeout} s")

    def _forget(self, running: Running) -> bool:
        if self._running.get(running.claim.id) is not running:
            return False
        del self._running[running.claim.id]
        if running.timer is not None:
            running.timer.cancel()
        self._slot_free.set()
        return True

    def _done(self, running: Running, fut: asyncio.Future[Any]) -> None:
        if running.lost:  # its lease was lost (see Worker._renew): the outcome is discarded, its handler unwound
            self._cancelled(running, LeaseExpiredError(
                f"job {running.claim.id} lost its lease (cancelled, or taken back after its lease expired)"))
            return
        if not self._forget(running):
            return  # given back at shutdown: the outcome is discarded
        self._settle(running, fut)
        self._ackbuf.schedule()

    def _settle(self, running: Running, fut: asyncio.Future[Any]) -> None:
        """Turn a finished handler Task into its ack."""
        claim, record = running.claim, running.record
        seconds = time.monotonic() - running.started  # type: ignore[operator]  # set for every async job
        if fut.cancelled():
            if running.timed_out:
                self._failed_attempt(running, self._timeout_error(running), seconds, timed_out=True)
            else:  # interrupted by shutdown: give it back without using the attempt
                self._ackbuf.release(claim)
                self._cancelled(running, WorkerShutdown(f"job {claim.id} was interrupted by the worker's shutdown"))
            return
        exc = fut.exception()
        if exc is None:
            if self._around:
                self._succeeded(running, fut.result(), seconds)
            else:
                self._ackbuf.succeed(claim, record, fut.result(), seconds)
        else:
            self._failed_attempt(running, exc, seconds)

    def _sync_done(self, outcomes: list[tuple[Running, Any, BaseException | None]]) -> None:
        for running, value, exc in outcomes:
            if not self._forget(running) or running.lost:
                continue  # timed out, or its lease was lost: the outcome is discarded
            if exc is None:
                if self._around:
                    self._succeeded(running, value, running.ran)
                else:
                    self._ackbuf.succeed(running.claim, running.record, value, running.ran)
            elif exc is LEASE_UNCONFIRMED:  # a thread found it too late to start: give it back
                self._ackbuf.release(running.claim)
                self._cancelled(running, LeaseExpiredError(
                    f"job {running.claim.id} was given back unstarted: its lease was not confirmed in time"))
            elif exc is NOT_STARTED:  # the process pool did not start it: the worker is shutting down
                self._ackbuf.release(running.claim)
                self._cancelled(running, WorkerShutdown(f"job {running.claim.id} was given back unstarted at shutdown"))
            else:
                self._failed_attempt(running, exc, running.ran)
        self._ackbuf.schedule()

async def _preceded(hooks: list[Any], ctx: Context, coro: Any) -> Any:
    """An async handler's coroutine, after the async before_job hooks (in the handler's Task)."""
    for hook in hooks:
        result = call_logged("before_job", hook, ctx.job_id, ctx)
        if result is not None:
            await await_logged("before_job", result, hook, ctx.job_id)
    return await coro


async def _then_submit(hooks: list[Any], ctx: Context, threads: ThreadRunner | ProcessPool, running: Running) -> None:
    """A plain def handler's async before_job hooks, on the loop; then its turn for a thread."""
    for hook in hooks:
        result = call_logged("before_job", hook, ctx.job_id, ctx)
        if result is not None:
            await await_logged("before_job", result, hook, ctx.job_id)
    # Not from here: this Task is inside the job's context, and a thread taking the job at once
    # would try to enter it too ("cannot enter context"). The loop's next turn is outside it.
    asyncio.get_running_loop().call_soon(threads.submit, running)
