"""The worker: claims jobs in batches, runs their handlers, acknowledges in batches.

One asyncio event loop (uvloop when installed, via the CLI) runs ``async def``
handlers; a thread pool runs plain ``def`` handlers.

Why it is fast: a claim fetches as many jobs as there are free slots in one
round trip; an async handler is started *eagerly* by sending into its coroutine
right away, so a handler that finishes without suspending costs no asyncio Task
at all (a Task per job caps a loop near 90k jobs/s, see shared PERF_NOTES); only
a handler that really awaits is wrapped in a Task, resumed where it stopped.
Outcomes are acknowledged in batches by a background flush, so the ack round
trip of one batch overlaps the claim of the next.

Why it is safe: the backend counts the attempt at claim and fences every ack
with the claim's lease token; the worker renews the leases of running jobs, and
a job whose lease is lost (cancelled, or taken back after a stall) is stopped
and its outcome discarded. On SIGTERM/SIGINT it stops claiming, gives back jobs
that never started, lets running ones finish within ``shutdown_grace`` seconds,
then gives back the rest; a second signal skips the grace period.

Example:
    >>> worker = app.worker(["emails", "default"], concurrency=100)  # doctest: +SKIP
    >>> await worker.run()  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import signal
import time
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Any

from .acks import AckBuffer
from .backends import redact_url
from .backends.base import Backend, Claim
from . import gctune
from . import metrics as _metrics
from .errors import (
    ConfigurationError,
    HookError,
    InvalidOptionError,
    LeaseExpiredError,
    WorkerShutdown,
)
from .executors import LEASE_SAFETY, Running, ThreadRunner, start_task
from .process_pool import ProcessPool, check_pool_settings
from .hooks import STATE, WorkerState
from .options import validate_queue
from .periodic import run_schedules
from .registry import Membership
from .runs import JobRuns
from .signals import install_stop_signals, remove_stop_signals
from .waits import Flag, wait_any

if TYPE_CHECKING:
    from .app import App

log = logging.getLogger("fastjobs.worker")


class Worker(JobRuns):
    """Runs the jobs of an :class:`~fastjobs.App` from some queues.

    Args:
        app: the App whose tasks this worker runs.
        queues: queue names, served in this order (default: every queue the
            app's tasks use, sorted).
        concurrency: most jobs in progress at once (async and sync together).
        threads: thread-pool size for plain ``def`` handlers (default: min(32, concurrency)).
        prefetch: jobs claimed ahead of free slots, so the next claim's round trip
            overlaps running the current batch. Prefetched jobs keep their lease
            renewed and are given back, attempt unused, at shutdown. Default: adaptive,
            from ``concurrency`` up to ``2 * batch_size`` (if that is more) while jobs
            finish faster than claims arrive and claims come back full (fewer, larger
            claims: each round trip and statement has a fixed cost), back to
            ``concurrency`` when a claim comes back short. An int fixes it.
        batch_size: most jobs claimed per round trip.
        ack_batch: flush acknowledgements at once when this many are pending.
        ack_interval: otherwise flush pending acknowledgements after this many seconds.
        shutdown_grace: seconds running jobs get to finish after SIGTERM/SIGINT.
        poll_interval: longest idle wait between claims when no wake-up arrives.
        burst: stop once the queues are empty (like RQ's ``--burst``).
        handle_signals: install SIGTERM/SIGINT handlers (main thread only).
        schedule: enqueue the due ticks of the App's periodic tasks (every
            worker may: each tick is stored once, see :mod:`fastjobs.periodic`).
        metrics: count jobs, run and wait times and round trips for monitoring
            (:mod:`fastjobs.metrics`: :attr:`metrics`); implied by ``metrics_port``.
        metrics_port: serve Prometheus metrics at ``http://metrics_host:metrics_port/metrics``
            while the worker runs (``pip install "fastjobs[prometheus]"``, :mod:`fastjobs.prometheus`).
        metrics_host: the address the metrics port binds (default 127.0.0.1: this machine only).
        metrics_token: the token every scrape must send (``Authorization: Bearer``, or as the
            basic-auth password); default ``$FASTJOBS_METRICS_TOKEN``. Without one the worker
            refuses to serve metrics, unless ``metrics_no_auth``.
        metrics_no_auth: serve the metrics to anyone who can reach the port.
        executor: where plain ``def`` handlers run unless their task says (``@app.task(executor=)``):
            ``"thread"`` (default) or ``"process"``, a pool of child processes with hard timeouts,
            crash isolation and recycling (:mod:`fastjobs.process_pool`). Async handlers always run
            on the worker's loop.
        process_pool: how many child processes run ``executor="process"`` handlers (default: the
            number of CPUs).
        max_tasks_per_child: replace a child after it ran this many jobs (default: never).
        max_memory_per_child: replace a child, between two jobs, once its resident memory
            passed this many MiB (default: never).
        tune_gc: while it runs, collect garbage in larger batches (:mod:`fastjobs.gctune`:
            the young-generation threshold raised from 700 to 50,000 allocations, put back
            when the last worker of the process stops); False leaves the collector alone.
        process_app: the ``module:attribute`` the children import the App from (default: found
            among the modules of its tasks; ``fastjobs worker`` passes its own).
    """

    def __init__(
        self,
        app: App,
        queues: Sequence[str] | None = None,
        *,
        concurrency: int = 100,
        threads: int | None = None,
        prefetch: int | None = None,
        batch_size: int = 500,
        ack_batch: int = 1000,
        ack_interval: float = 0.002,
        shutdown_grace: float = 30.0,
        poll_interval: float = 1.0,
        burst: bool = False,
        handle_signals: bool = True,
        schedule: bool = True,
        metrics: bool = False,
        metrics_port: int | None = None,
        metrics_host: str = "127.0.0.1",
        metrics_token: str | None = None,
        metrics_no_auth: bool = False,
        executor: str = "thread",
        process_pool: int | None = None,
        max_tasks_per_child: int | None = None,
        max_memory_per_child: int | None = None,
        process_app: str | None = None,
        tune_gc: bool = True,
    ) -> None:
        if not app.tasks:
            raise ConfigurationError("this App has no tasks: register some with @app.task before starting a worker")
        if queues is None:
            queues = sorted({t.default_options.queue for t in app.tasks.values()})
        if isinstance(queues, str):
            queues = [q for q in queues.split(",") if q]
        self.queues = [validate_queue(q) for q in queues]
        if not self.queues:
            raise ConfigurationError("a worker needs at least one queue")
        self._adaptive = prefetch is None
        prefetch = concurrency if prefetch is None else prefetch
        for name, value in (("concurrency", concurrency), ("batch_size", batch_size), ("ack_batch", ack_batch),
                            ("prefetch", prefetch + 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidOptionError(f"{name} must be a positive int, not {value!r}")
        self.prefetch = prefetch
        self.app = app
        self.concurrency = concurrency
        self.threads = threads or min(32, concurrency)
        self.batch_size = batch_size
        self.ack_batch = ack_batch
        self.ack_interval = ack_interval
        self.shutdown_grace = shutdown_grace
        self.poll_interval = poll_interval
        self.burst = burst
        self.handle_signals = handle_signals
        self.schedule = schedule
        self._backend: Backend | None = None
        self._running: dict[str, Running] = {}
        self._starting: set[asyncio.Task[None]] = set()
        """Chain steps reading their parent's result before they start (kept referenced)."""
        self._pending: list[Claim] = []
        """Claimed (prefetched) but not started yet."""
        self._pending_confirmed = 0.0
        """``time.monotonic()`` by which the lease of every pending claim was last confirmed (claimed
        or renewed): a lower bound, so that a stalled worker cannot start jobs it may have lost."""
        self._claim_sent: float | None = None
        """``time.monotonic()`` when the claim in flight was sent (None: no claim in flight)."""
        self._claim_failed = False
        self._renew_failed = False
        self._slot_free = Flag()
        self._stop = Flag()
        self._forced = Flag()
        self._threads: ThreadRunner | None = None
        self._pool_settings = check_pool_settings(app, executor, process_pool, max_tasks_per_child, max_memory_per_child,
                                                  process_app)
        self.executor = executor
        self.tune_gc = tune_gc
        self._process_tasks = {t for t in app.tasks.values() if not t.is_async and (t.executor or executor) == "process"}
        self._procs: ProcessPool | None = None
        self._started = False
        leases = [app.lease] + [t.default_options.lease for t in app.tasks.values() if t.default_options.lease]
        self._membership = Membership(self.queues, concurrency, leases)
        self.id = self._membership.id
        """This worker in the backend's registry (:meth:`~fastjobs.App.workers`)."""
        self.state = WorkerState(self.id)
        """What the App's ``on_worker_start`` hooks open for the handlers (:mod:`fastjobs.hooks`)."""
        self._metrics_serve: dict[str, Any] | None = None
        if metrics_port is not None:
            # Checked here, before anything starts: a missing token or prometheus_client fails at once.
            from .prometheus import metrics_token as resolve_metrics_token

            self._metrics_serve = {"host": metrics_host, "port": metrics_port,
                                   "token": resolve_metrics_token(metrics_token, no_auth=metrics_no_auth)}
            metrics = True
        self.metrics = _metrics.enable() if metrics else None
        self.metrics_url: str | None = None
        """While it runs with ``metrics_port``: where its metrics are served (port 0: the one chosen)."""
        """This process's monitoring counters (None unless ``metrics``), see :mod:`fastjobs.metrics`."""
        self._ackbuf = AckBuffer(ack_batch, ack_interval, app.max_payload, self.id, history=app.history_enabled,
                                 metrics=self.metrics)
        self._around = False
        """Whether job hooks run around each job (set when the worker starts)."""
        self._befores: list[Any] = []
        self._befores_async: list[Any] = []
        self._afters: list[Any] = []
        self._on_deads: list[Any] = []
        self._hook_tasks: set[asyncio.Task[Any]] = set()
        """Async hooks under way (kept referenced; shutdown waits for them)."""

    # -- control ---------------------------------------------------------------

    def request_stop(self, force: bool = False) -> None:
        """Stop claiming and shut down gracefully (``force``: skip the grace period)."""
        if self._stop.is_set() or force:
            self._forced.set()
        self._stop.set()

    @property
    def succeeded(self) -> int:
        """Jobs that succeeded here (outcomes the backend refused, their lease lost, excluded)."""
        return self._ackbuf.succeeded

    @property
    def failed(self) -> int:
        """Attempts that failed here, retried or dead-lettered (refused outcomes excluded)."""
        return self._ackbuf.failed

    @property
    def acked(self) -> int:
        """Acknowledgements the backend applied (stale ones excluded)."""
        return self._ackbuf.acked

    @property
    def stale(self) -> int:
        """Outcomes the backend refused because their lease was lost (discarded)."""
        return self._ackbuf.stale

    async def wait_acked(self, count: int) -> None:
        """Return once the backend has applied ``count`` acknowledgements from this worker.

        Example:
            >>> await worker.wait_acked(10_000)  # doctest: +SKIP
        """
        await self._ackbuf.wait_acked(count)

    @property
    def process_pids(self) -> list[int]:
        """The process ids of its process-pool children alive now (``executor="process"``); [] without a pool."""
        return [] if self._procs is None else self._procs.pids

    @property
    def running_count(self) -> int:
        """Jobs currently suspended or on the thread pool."""
        return len(self._running)

    # -- main loop ---------------------------------------------------------------

    async def run(self) -> None:
        """Claim and run jobs until a stop is requested (or, in burst mode, the queues are empty)."""
        if self._started:
            raise RuntimeError("a Worker runs once; create a new one")
        self._started = True
        loop = asyncio.get_running_loop()
        self._loop = loop
        hooks = self.app.hooks
        self._around = hooks.around_jobs or any(t.on_dead for t in self.app.tasks.values())
        self._befores = [h for h in hooks.before_job if not inspect.iscoroutinefunction(h)]
        self._befores_async = [h for h in hooks.before_job if inspect.iscoroutinefunction(h)]
        self._afters = list(hooks.after_job)  # the hooks a run keeps: every before_job gets its after_job
        self._on_deads = list(hooks.on_dead)
        server = None
        if self._metrics_serve is not None:
            from .prometheus import QueueDepthCollector, start_metrics_server

            assert self.metrics is not None
            server = start_metrics_server(self.metrics.snapshot, **self._metrics_serve,
                                          queue_depth=QueueDepthCollector(loop, self.app.backend))
            self.metrics_url = server.url
        # Tasks started from here on (handlers included) inherit it: fastjobs.worker_state().
        state_token = STATE.set(self.state)
        with gctune.tuned() if self.tune_gc else contextlib.nullcontext():
            try:
                await self._lifecycle("on_worker_start")
                await self._run(loop)
            finally:
                try:
                    await self._lifecycle("on_worker_stop")
                finally:
                    STATE.reset(state_token)
                    if server is not None:
                        server.close()
                        self.metrics_url = None

    async def _lifecycle(self, kind: str) -> None:
        """Run the App's on_worker_start or on_worker_stop hooks, in order."""
        for hook in getattr(self.app.hooks, kind):
            try:
                result = hook(self.state)
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:
                name = getattr(hook, "__qualname__", repr(hook))
                if kind == "on_worker_start":
                    raise HookError(
                        f"the on_worker_start hook {name} raised {type(exc).__name__}: {exc}; the worker stopped "
                        "before claiming any job (fix the hook, or what it opens)"
                    ) from exc
                log.exception("the %s hook %s raised; ignored", kind, name)

    async def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        backend = self._backend = await self.app.backend()
        self._ackbuf.start(backend, loop)
        self._threads = ThreadRunner(loop, self.threads, self._sync_done, self.state)
        try:
            if self._process_tasks:
                self._procs = ProcessPool(loop, deliver=self._sync_done, worker_id=self.id, max_payload=self.app.max_payload,
                                          tasks=[t.name for t in self._process_tasks], broken=self._pool_broken,
                                          **self._pool_settings)
                await self._procs.start()
            await self._serve(loop, backend)
        finally:
            if self._procs is not None and self._procs.pids:  # torn down without its shutdown (cancelled)
                self._procs.kill_all()

    def _pool_broken(self, reason: str) -> None:
        log.error("the process pool's children keep failing to start (%s); the worker stops and gives its jobs back",
                  reason)
        self.request_stop()

    async def _serve(self, loop: asyncio.AbstractEventLoop, backend: Backend) -> None:
        counted: tuple[int, Any, Any] | None = None
        if self.metrics is not None:
            ackbuf = self._ackbuf
            counted = (self.concurrency, self._running.__len__, lambda: ackbuf.discarded)
            self.metrics.add_worker(*counted)
        signals = install_stop_signals(loop, self._on_signal) if self.handle_signals else []
        await self._membership.register(backend)
        heartbeat = loop.create_task(self._heartbeat())
        maintenance = loop.create_task(self._maintenance())
        scheduler = loop.create_task(run_schedules(self.app, backend)) if self.schedule and self.app.schedules else None
        log.info("worker started: queues=%s concurrency=%d backend=%s", ",".join(self.queues), self.concurrency, redact_url(backend.url))
        try:
            await self._claim_loop(backend)
        finally:
            maintenance.cancel()
            if scheduler is not None:
                scheduler.cancel()
            try:
                # The heartbeat runs on through the grace period: jobs finishing in it keep
                # their leases (and the worker its place in the registry) however long they take.
                await self._shutdown()
            finally:
                heartbeat.cancel()
            await self._membership.deregister(backend)
            remove_stop_signals(loop, signals)
            if counted is not None:
                self.metrics.remove_worker(*counted)  # type: ignore[union-attr]
            log.info("worker stopped: %d succeeded, %d failed, %d outcomes discarded (lease lost)",
                     self.succeeded, self.failed, self._ackbuf.discarded)

    async def _claim_loop(self, backend: Backend) -> None:
        queues = self.queues
        lease = self.app.lease
        stop = self._stop
        pending = self._pending
        # Jobs claimed and not finished: at most hold. With an adaptive prefetch, hold doubles, up
        # to most_held, each time a full claim comes back to a worker that ran dry waiting for it,
        # and falls back when a claim comes back short (the queue is shallow).
        least_held = hold = self.concurrency + self.prefetch
        most_held = max(hold, self.concurrency + 2 * self.batch_size) if self._adaptive else hold
        asked = 0
        inflight: asyncio.Future[list[Claim]] | None = None
        # Set when a claim came back empty: no claim is sent again until this
        # wait on the backend ends (an enqueue, a due delayed job, or the poll
        # interval), however often slots free up meanwhile. Without it a worker
        # with free room would claim again on every completion, or spin.
        waiter: asyncio.Future[None] | None = None
        # Whether nothing was running, pending or unacknowledged when the in-flight
        # claim was sent: only such a claim coming back empty proves a burst is done.
        quiescent = False
        try:
            while not stop.is_set():
                if waiter is not None and (waiter.done() or (self.burst and not self._running and not pending)):
                    waiter.cancel()  # a burst worker whose last job ended checks at once whether it is done
                    waiter = None
                room = hold - len(self._running) - len(pending)
                if inflight is None and waiter is None and room > 0:
                    if self._claim_failed or self._renew_failed or self._ackbuf.failing:
                        await self._resync()
                        continue
                    # Sent before running the pending batch, so its round trip overlaps the work. Started
                    # eagerly (as handlers are): the request goes out now, not a loop turn later, and a
                    # claim that does not suspend (memory://) is done at once.
                    quiescent = not (pending or self._running) and self._ackbuf.idle
                    self._claim_sent = time.monotonic()
                    asked = min(room, self.batch_size)
                    claiming = backend.claim(queues, asked, lease)
                    inflight = start_task(self._loop, claiming if self.metrics is None else self._timed_claim(claiming))
                free = self.concurrency - len(self._running)
                if pending and free > 0:
                    if time.monotonic() - self._pending_confirmed > lease * LEASE_SAFETY:
                        self._give_back_unconfirmed()
                        continue
                    batch = pending[:free]
                    del pending[:free]
                    self._start_batch(batch)
                    self._ackbuf.schedule(now=True)
                    # Let producers, completions and the flush run between batches.
                    await asyncio.sleep(0)
                    continue
                if inflight is None:
                    # Full, or nothing ready: wait for a slot to free up or the backend to wake us.
                    self._slot_free.clear()
                    if waiter is None:
                        await self._wait_any(self._slot_free)
                    else:
                        await self._wait_any(self._slot_free, waiter)
                    continue
                await self._wait_any(inflight)
                if not inflight.done():
                    break  # stop requested; the finally block collects the claim
                claim_task, inflight = inflight, None
                claim_sent, self._claim_sent = self._claim_sent, None
                try:
                    claims = claim_task.result()
                except Exception as exc:
                    log.warning("claim failed (%s: %s); retrying", type(exc).__name__, exc)
                    self._claim_failed = True
                    await self._wait_any(timeout=0.5)
                    continue
                self._claim_failed = False
                if len(claims) < asked:
                    hold = least_held
                elif not (quiescent or pending) and len(self._running) < self.concurrency:
                    hold = min(most_held, 2 * hold)  # it had work when it asked, and ran dry waiting
                if claims:
                    if not pending:  # else the older claims' confirmation is the lower bound
                        self._pending_confirmed = claim_sent or 0.0
                    pending.extend(claims)
                    continue
                if self.burst and not self._running and not pending:
                    if quiescent and not await self._held_back(backend, queues):
                        break
                    # A retry or release not yet acknowledged may refill the queue.
                    await self._ackbuf.drain(timeout=30.0)
                    continue
                waiter = start_task(self._loop, backend.wait(queues, self.poll_interval))
        finally:
            if waiter is not None:
                waiter.cancel()
            if inflight is not None:
                # A claim the backend may already have applied: take its jobs, so
                # shutdown gives them back instead of leaving them to lease expiry.
                try:
                    pending.extend(await asyncio.wait_for(inflight, 10.0))
                except Exception as exc:
                    log.warning("an in-flight claim was lost at shutdown (%s); its jobs return after their lease", exc)

    async def _timed_claim(self, claiming: Awaitable[list[Claim]]) -> list[Claim]:
        """A claim, its round trip counted from when it is sent (its Task's first step), not from
        when the claim loop asked for it while still starting the previous batch."""
        sent = time.monotonic()
        claims = await claiming
        assert self.metrics is not None
        self.metrics.add_round_trip("claim", time.monotonic() - sent)
        return claims

    async def _wait_any(self, *things: Flag | asyncio.Future[Any], timeout: float | None = None,
                        until: Flag | None = None) -> None:
        """Wait for the first of ``things`` (or ``timeout``), returning early once ``until`` (default:
        the stop request) is set; nothing is cancelled (see :func:`fastjobs.waits.wait_any`)."""
        await wait_any(*things, self._stop if until is None else until, timeout=timeout)

    # -- running jobs ---------------------------------------------------------------

    async def _held_back(self, backend: Backend, queues: Sequence[str]) -> bool:
        """Burst mode, nothing claimable: are jobs still queued (held by a rate limit or a
        concurrency cap) in a queue that is not paused? Then the burst is not done yet."""
        try:
            stats = await backend.stats()
            paused = set(await backend.paused())
        except Exception as exc:  # as a failed claim is: retried after a pause
            log.warning("checking for held jobs failed (%s: %s); retrying", type(exc).__name__, exc)
            held = True
        else:
            # A damaged queue reports no counts ({"broken": ...}): its jobs cannot be
            # claimed, so they do not hold the burst open.
            held = any(stats.get(q, {}).get("queued", 0) for q in queues if q not in paused)
        if held:
            await self._wait_any(timeout=self.poll_interval)
        return held

    # -- leases and maintenance -------------------------------------------------

    async def _heartbeat(self) -> None:
        membership = self._membership
        while True:
            await asyncio.sleep(membership.beat_period)
            if not membership.registered:
                assert self._backend is not None
                await membership.register(self._backend)
            await self._renew()

    async def _renew(self) -> bool:
        """Renew the leases of running and pending jobs, and beat, in one round trip; stop the jobs lost.

        It beats even with nothing to renew, so an idle worker stays listed as alive.
        False if the backend could not be reached.
        """
        backend = self._backend
        assert backend is not None
        running = list(self._running.values())
        waiting = list(self._pending)
        leases = [(r.claim.id, r.claim.token, r.lease) for r in running]
        leases += [(c.id, c.token, self.app.lease) for c in waiting]
        beat = self._membership.beat(r.claim.id for r in running)
        if not leases and beat is None:
            self._renew_failed = False
            return True
        sent = time.monotonic()
        # Claims that land while this renewal is out were confirmed when their claim was sent.
        confirmed = sent if self._claim_sent is None else min(sent, self._claim_sent)
        try:
            applied = await backend.renew(leases, beat)
            if self.metrics is not None:
                self.metrics.add_round_trip("renew", time.monotonic() - sent)
        except Exception as exc:
            log.warning("lease renewal failed (%s: %s)", type(exc).__name__, exc)
            self._renew_failed = True
            return False
        self._renew_failed = False
        lost = {c.id for c, ok in zip(waiting, applied[len(running):]) if not ok}
        if lost:  # cancelled while waiting: never start them
            self._pending[:] = [c for c in self._pending if c.id not in lost]
        if self._pending:
            self._pending_confirmed = max(self._pending_confirmed, confirmed)
        renewed_at = time.time()
        for r, ok in zip(running, applied):
            if ok:
                r.start_by = sent + r.lease * LEASE_SAFETY
            if r.ctx is not None:
                if ok:
                    r.ctx.lease_until = renewed_at + r.lease
                else:
                    r.ctx.cancelled = True  # what a plain def handler checks
            if not ok and self._running.get(r.claim.id) is r:
                # Cancelled, or taken back by another worker: stop it, drop its outcome.
                log.warning("job %s lost its lease (cancelled or expired); stopping it", r.claim.id)
                r.lost = True
                self._forget(r)
                if r.future is not None:
                    r.future.cancel()  # its done callback reports it once the handler unwound
                else:
                    # A plain def job still waiting never starts now; one on a thread runs on, one in a
                    # pool's child is stopped with its child.
                    runner = r.runner
                    runs_on = runner is not None and not runner.withdraw(r) and runner.stop_job(r)
                    self._cancelled(r, LeaseExpiredError(f"job {r.claim.id} lost its lease (cancelled, or taken "
                                                         "back after its lease expired)"), thread_running=runs_on)
        if self._procs is not None:
            self._procs.confirm()  # the children's queued jobs may start until their new start-by time
        return True

    async def _resync(self) -> None:
        """After the backend failed: land this worker's acks and renew its leases before claiming again.

        A claim first takes back expired leases. After an outage longer than the
        lease, a claim sent before this worker's own acks and renewals landed would
        take back the jobs it finished or still runs, and they would run twice.
        """
        while not self._stop.is_set():
            if await self._ackbuf.flush_all(timeout=self.poll_interval) and await self._renew():
                self._claim_failed = False
                return
            await self._wait_any(timeout=0.5)

    def _give_back_unconfirmed(self) -> None:
        """Release the pending claims without starting them: their leases may have expired.

        Jobs that were already running when the worker stalled cannot be taken
        back; their outcomes are refused if their lease was lost meanwhile.
        """
        pending = self._pending
        log.warning(
            "%d claimed jobs were not started: their leases were last confirmed %.1f s ago (the worker "
            "stalled?), so another worker may hold them now; they were given back unstarted",
            len(pending), time.monotonic() - self._pending_confirmed,
        )
        for claim in pending:
            self._ackbuf.release(claim)
        pending.clear()
        self._ackbuf.schedule(now=True)

    async def _maintenance(self) -> None:
        backend = self._backend
        assert backend is not None
        while True:
            await asyncio.sleep(30.0)
            try:
                removed = await backend.cleanup()
                if removed:
                    log.debug("cleanup removed %d finished jobs", removed)
            except Exception as exc:
                log.warning("cleanup failed (%s: %s)", type(exc).__name__, exc)

    # -- shutdown -----------------------------------------------------------------

    def _on_signal(self, sig: int) -> None:
        if self._stop.is_set():
            log.warning("second %s: giving back running jobs and exiting now", signal.Signals(sig).name)
            self.request_stop(force=True)
        else:
            log.warning(
                "%s: stopping; %d running jobs get %.0f s to finish (send it again to exit now)",
                signal.Signals(sig).name, len(self._running), self.shutdown_grace,
            )
            self.request_stop()

    async def _shutdown(self) -> None:
        # Prefetched jobs and sync jobs still waiting for a thread or a child never started: give them back now.
        if self._procs is not None:
            self._procs.drain()  # children queued ahead: they report those back unstarted
        for claim in self._pending:
            self._ackbuf.release(claim)
        self._pending.clear()
        for running in list(self._running.values()):
            if running.future is None and running.runner is not None and running.runner.withdraw(running):
                self._forget(running)
                self._ackbuf.release(running.claim)
                self._cancelled(running, WorkerShutdown(f"job {running.claim.id} was given back unstarted at shutdown"))
        self._ackbuf.schedule(now=True)
        deadline = time.monotonic() + self.shutdown_grace
        while self._running and not self._forced.is_set() and time.monotonic() < deadline:
            self._slot_free.clear()
            await self._wait_any(self._slot_free, timeout=max(0.0, deadline - time.monotonic()), until=self._forced)
        # Out of time: async jobs are cancelled and given back (their _done callback releases
        # them), and so are jobs in the process pool (their children are killed); threads
        # cannot be stopped, so their jobs come back when their leases expire.
        tasks = [r.future for r in self._running.values() if r.future is not None]
        abandoned = [r for r in self._running.values() if r.future is None]
        if self._procs is not None:
            self._procs.closing = True  # no replacement for the children killed now
        for running in abandoned:  # their outcome is not waited for: their hooks hear of it now
            self._forget(running)
            runs_on = running.runner is None or running.runner.stop_job(running)
            if not runs_on:
                self._ackbuf.release(running.claim)
            self._cancelled(running, WorkerShutdown(f"job {running.claim.id} was still running at the end of the "
                                                    "shutdown grace"), thread_running=runs_on)
        abandoned = [r for r in abandoned if r.runner is None or r.runner is self._threads]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)  # their done callbacks release them
        if abandoned:
            log.warning("%d sync jobs are still running in threads; they will run again after their lease expires",
                        len(abandoned))
        await self._ackbuf.drain(timeout=5.0 if not self._forced.is_set() else 1.0)
        self._ackbuf.close()
        if self._hook_tasks:  # async after_job / on_dead hooks still under way
            await asyncio.wait(self._hook_tasks, timeout=max(1.0, deadline - time.monotonic()))
            late = list(self._hook_tasks)
            if late:
                log.warning("%d async job hooks were still running after the shutdown grace; cancelled", len(late))
                for task in late:
                    task.cancel()
                await asyncio.wait(late, timeout=1.0)
        if self._threads is not None:
            self._threads.stop()
        if self._procs is not None:
            await self._procs.close()
