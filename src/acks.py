"""The worker's outgoing acknowledgements: outcomes made into acks, flushed in batches, retried.

Each finished job becomes an :class:`~fastjobs.backends.Ack` (succeeded with its
encoded result, failed and retried after its backoff, dead-lettered with the
reason, or given back unstarted) in :attr:`AckBuffer.pending`; a flush sends
them with one ``ack_many`` round trip, at once when ``ack_batch`` are pending or
when asked, else after ``ack_interval`` seconds, so the ack of one batch
overlaps the claim of the next. A flush that fails keeps its acks, in order,
and retries with a backoff while the backend is down.

Each outcome of a run is also added to a :class:`~fastjobs.history.Tally` (queue,
task, outcome, seconds); a flush sends the tally as history rows in the same
``ack_many`` call (see :mod:`fastjobs.history`).

Example:
    >>> from fastjobs.acks import AckBuffer
    >>> buffer = AckBuffer(ack_batch=1000, ack_interval=0.002, max_payload=1 << 20)
    >>> buffer.acked, len(buffer.pending)
    (0, 0)
"""

from __future__ import annotations

import asyncio
import logging
import time
from bisect import bisect_left
from collections import Counter

from typing import TYPE_CHECKING, Any

from ._core import PayloadTooLargeError, UnencodableError, encode_value
from .backends.base import HISTOGRAM_BOUNDS, Ack, AckKind, Backend, Claim, HistoryRow, Outcome
from .history import Tally
from .job import error_record, exception_record
from .logs import job_fields
from .metrics import WorkerMetrics
from .retries import RetryPolicy

if TYPE_CHECKING:
    from .options import BackoffFunction
    from ._core import JobRecord

log = logging.getLogger("fastjobs.worker")

SUCCEED, RETRY, DEAD, RELEASE = AckKind.SUCCEED, AckKind.RETRY, AckKind.DEAD, AckKind.RELEASE
SUCCEEDED, RETRIED, DIED = Outcome.SUCCEEDED, Outcome.RETRIED, Outcome.DEAD
_FIRST_BOUND = HISTOGRAM_BOUNDS[0]
_new_tuple = tuple.__new__

MAX_RETRY_DELAY = 1.0
"""Longest wait between two attempts to send acks while the backend is down. Short, because
the worker claims nothing until its acks landed (see ``Worker._resync``): every second
spent here is a second of no work after the backend is back."""


class AckBuffer:
    """Acknowledgements waiting to be sent, and what the backend made of those sent.

    Args:
        ack_batch: flush at once when this many are pending.
        ack_interval: otherwise flush this many seconds after the first one.
        max_payload: the largest result that can be stored, in bytes.
        worker: the worker's id, written in the error record of each failed attempt.
        history: send the runs as history rows with the acks (False: send none).
        metrics: add each flush's runs to these monitoring counters (None: count nothing).
    """

    def __init__(self, ack_batch: int, ack_interval: float, max_payload: int, worker: str | None = None,
                 history: bool = True, metrics: WorkerMetrics | None = None) -> None:
        self.ack_batch = ack_batch
        self.ack_interval = ack_interval
        self.max_payload = max_payload
        self.worker = worker
        self.history = history
        """False: runs are not sent as history rows (App(history=False))."""
        self.metrics = metrics
        self.retries = RetryPolicy()
        self._succeeded = 0
        self._failed = 0
        self.pending: list[Ack] = []
        """Not sent yet, in outcome order. Replaced (not cleared) by each flush: hold no reference."""
        self.tally = Tally()
        """The runs of the acks added to :attr:`pending` since the last flush took its rows."""
        self._last: tuple[str, str, list[float]] = ("", "", [])
        """The queue, task and tally cell of the last success: consecutive jobs of one task
        skip the dict lookup (two string compares instead of hashing a fresh key)."""
        self._unsure: list[tuple[int, list[HistoryRow]]] = []
        """The first acks of :attr:`pending` went out in calls that failed: per call, how many
        acks and the rows it carried for them (see :meth:`_flush`)."""
        self._carry: list[HistoryRow] = []
        """History rows still to send: those of a failed call, once its acks turned out not applied."""
        self.acked = 0
        """Acknowledgements the backend applied (stale ones excluded)."""
        self.stale = 0
        """Acknowledgements the backend refused: their lease was lost, their outcome discarded."""
        self.stale_kinds: Counter[int] = Counter()
        """:attr:`stale` by :class:`~fastjobs.backends.AckKind`."""
        self.flushing: asyncio.Task[None] | None = None
        self.failing = False
        """The last attempt to send failed (the backend is unreachable); cleared by the next success."""
        self._backend: Backend | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    # -- outcomes -------------------------------------------------------------------

    def succeed(self, claim: Claim, record: JobRecord, value: Any, seconds: float) -> Exception | None:
        """An attempt returned ``value`` after running ``seconds``; the error if the result cannot
        be stored (the job is dead-lettered: running it again would return the same)."""
        try:
            payload = None if value is None else encode_value(value, self.max_payload)
        except (UnencodableError, PayloadTooLargeError) as exc:
            self.dead_letter(claim, type(exc).__name__, f"the result cannot be stored: {exc}", record, seconds)
            return exc
        # tuple.__new__ with all five fields: NamedTuple's own __new__ is a Python frame per job.
        self.pending.append(_new_tuple(Ack, (claim.id, claim.token, SUCCEED, payload, 0.0)))
        self._succeeded += 1
        # The hot path: the cell of the previous success if the job is of the same task, then
        # one compare for the (most common) first bucket, a bisect only past it.
        queue, task, cell = self._last
        if record.task != task or record.queue != queue:
            cell = self.tally.cell(record.queue, record.task, SUCCEEDED)
            self._last = (record.queue, record.task, cell)
        cell[0] += seconds
        cell[1 if seconds <= _FIRST_BOUND else bisect_left(HISTOGRAM_BOUNDS, seconds) + 1] += 1
        return None

    def fail(self, claim: Claim, record: JobRecord, exc: BaseException, seconds: float, timed_out: bool = False,
             backoff_fn: BackoffFunction | None = None) -> bool:
        """An attempt raised ``exc`` (or ran past its timeout) after running ``seconds``: retry it
        after its backoff (True), or dead-letter it (False). ``backoff_fn``: the task's backoff
        function (``@app.task(backoff=fn)``), which decides instead of the job's backoff."""
        self._failed += 1
        attempt = claim.attempt
        # The start, from the wall clock now and the monotonic run time: no clock read per job.
        payload = exception_record(attempt, exc, self.worker, time.time() - seconds)
        retry, delay = self.retries.decide(claim.id, record, attempt, exc, backoff_fn)
        self.tally.add(record.queue, record.task, RETRIED if retry else DIED, seconds)
        if timed_out and retry and self.metrics is not None:
            self.metrics.add_timed_out(record.queue, record.task)
        extra = job_fields(claim.id, record.task, record.queue, attempt, self.worker)
        if retry:
            self.pending.append(Ack(claim.id, claim.token, RETRY, payload, delay))
            log.warning(
                "job %s (%s) attempt %d/%d failed: %s: %s; retrying in %.3g s",
                claim.id, record.task, attempt, record.max_attempts, type(exc).__name__, exc, delay, extra=extra,
            )
        else:
            self.pending.append(Ack(claim.id, claim.token, DEAD, payload))
            log.error(
                "job %s (%s) attempt %d/%d failed: %s: %s; dead-lettered",
                claim.id, record.task, attempt, record.max_attempts, type(exc).__name__, exc, extra=extra,
            )
        return retry

    def dead_letter(self, claim: Claim, kind: str, message: str, record: JobRecord | None = None,
                    seconds: float = 0.0) -> None:
        """Dead-letter a job that cannot run (undecodable, unknown task...) with the reason.

        Counted in the history as dead under its queue and task when ``record`` is known."""
        self._failed += 1
        extra = job_fields(claim.id, None if record is None else record.task, None if record is None else record.queue,
                           claim.attempt, self.worker)
        log.error("job %s dead-lettered: %s: %s", claim.id, kind, message, extra=extra)
        payload = error_record(claim.attempt, kind, message, worker=self.worker, started_at=time.time() - seconds)
        self.pending.append(Ack(claim.id, claim.token, DEAD, payload))
        if record is not None:
            self.tally.add(record.queue, record.task, DIED, seconds)

    def release(self, claim: Claim) -> None:
        """Give back a job that did not start (or was interrupted by shutdown), its attempt unused."""
        self.pending.append(Ack(claim.id, claim.token, RELEASE))

    @property
    def succeeded(self) -> int:
        """Jobs that succeeded (outcomes the backend refused, their lease lost, excluded)."""
        return self._succeeded - self.stale_kinds[SUCCEED]

    @property
    def failed(self) -> int:
        """Attempts that failed, retried or dead-lettered (refused outcomes excluded)."""
        return self._failed - self.stale_kinds[RETRY] - self.stale_kinds[DEAD]

    @property
    def discarded(self) -> int:
        """Outcomes the backend refused because the job's lease was lost (a refused give-back is not one)."""
        return self.stale - self.stale_kinds[RELEASE]

    # -- sending ---------------------------------------------------------------------

    def start(self, backend: Backend, loop: asyncio.AbstractEventLoop) -> None:
        self._backend = backend
        self._loop = loop

    @property
    def idle(self) -> bool:
        """Nothing pending (acks or carried history rows) and no flush under way."""
        return not self.pending and not self._carry and self.flushing is None

    def schedule(self, now: bool = False) -> None:
        """Flush soon: at once if ``now`` or ``ack_batch`` are pending, else after ``ack_interval``."""
        if not (self.pending or self._carry) or self.flushing is not None:
            return
        loop = self._loop
        assert loop is not None
        if now or len(self.pending) >= self.ack_batch:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self.flushing = loop.create_task(self._flush())
        elif self._timer is None:
            self._timer = loop.call_later(self.ack_interval, self.schedule, True)

    async def _flush(self) -> None:
        """Send pending acks in batches until none are left; retry while the backend is down.

        History is counted once per run, even when a call fails after the backend applied it
        (its reply was lost). The rows of a failed call are not sent again with the retry:
        once the retry answers, if any of that call's acks applied, the failed call did not
        apply (a call's acks and history apply together) and its rows go in the next call;
        if none did, it had applied (each ack's token was used), rows included. The price: if
        every ack of the failed call lost its lease during the outage, its runs go uncounted;
        rows carried this way are sent again should their own call fail.
        """
        backend = self._backend
        assert backend is not None
        failures = 0
        try:
            while self.pending or self._carry:
                batch, self.pending = self.pending, []
                rows = self._take_rows()  # the runs of the acks new in this batch
                unsure, self._unsure = self._unsure, []
                carry, self._carry = self._carry, []
                try:
                    sent = time.perf_counter()
                    applied = await backend.ack_many(batch, history=rows + carry if carry else rows)
                    if self.metrics is not None:
                        self.metrics.add_round_trip("ack", time.perf_counter() - sent)
                except Exception as exc:
                    self.pending[:0] = batch  # keep them, in order, for the next try
                    self._unsure = [*unsure, (len(batch) - sum(n for n, _ in unsure), rows)]
                    self._carry[:0] = carry
                    self.failing = True
                    failures += 1
                    delay = min(MAX_RETRY_DELAY, 0.05 * 2**failures)
                    log.warning("ack of %d jobs failed (%s: %s); retrying in %.2f s", len(batch), type(exc).__name__, exc, delay)
                    await asyncio.sleep(delay)
                    continue
                failures = 0
                self.failing = False
                start = 0
                for n, unsure_rows in unsure:
                    if any(applied[start:start + n]):
                        self._carry += unsure_rows
                    start += n
                stale = applied.count(False)
                self.acked += len(applied) - stale
                if self._waiters:
                    self._wake_waiters()
                if stale:
                    self.stale += stale
                    for ack, ok in zip(batch, applied):
                        if not ok:
                            self.stale_kinds[ack.kind] += 1
                            log.warning("job %s: outcome discarded, its lease was lost (token %d)", ack.id, ack.token)
        finally:
            self.flushing = None
            if self.pending or self._carry:
                self.schedule()

    def _take_rows(self) -> list[HistoryRow]:
        rows = self.tally.rows() if self.history or self.metrics is not None else []
        if self.metrics is not None:
            self.metrics.add_rows(rows)
            if not self.history:
                rows = []
        self.tally = Tally()
        self._last = ("", "", [])
        return rows

    async def wait_acked(self, count: int) -> None:
        """Return once the backend has applied ``count`` acknowledgements from this buffer."""
        if self.acked >= count:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((count, waiter))
        await waiter

    def _wake_waiters(self) -> None:
        still = []
        for count, waiter in self._waiters:
            if self.acked >= count:
                if not waiter.done():
                    waiter.set_result(None)
            elif not waiter.done():
                still.append((count, waiter))
        self._waiters = still

    async def flush_all(self, timeout: float) -> bool:
        """Flush until nothing is pending or ``timeout`` seconds passed; True if all were sent."""
        deadline = time.monotonic() + timeout
        while not self.idle and time.monotonic() < deadline:
            if self.flushing is None:
                self.schedule(now=True)
            task = self.flushing
            if task is not None:
                await asyncio.wait((task,), timeout=max(0.0, deadline - time.monotonic()))
        return not self.pending

    async def drain(self, timeout: float) -> None:
        """:meth:`flush_all`, saying what is lost if some could not be sent."""
        if not await self.flush_all(timeout):
            log.error("%d acknowledgements could not be sent; those jobs will run again after their lease", len(self.pending))

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
