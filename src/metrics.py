"""What a worker process counts for monitoring: :class:`WorkerMetrics`, cumulative since it started.

Plain Python, no dependency: the worker adds to it **per batch** (the runs of an ack flush
arrive as the history rows it sends anyway, see :mod:`fastjobs.acks`; the jobs a claim
started, with their wait, once per start batch; a round trip's time once per call), never
with a lock per job. :meth:`WorkerMetrics.snapshot` turns it into plain lists and dicts
(JSON-able), which :mod:`fastjobs.prometheus` exposes in Prometheus' format, and which a
supervisor merges across its worker processes with :func:`merge`.

A finished attempt counts under exactly one outcome (:data:`OUTCOMES`): ``succeeded``;
``failed`` (it raised and will be retried); ``timed_out`` (it ran past its timeout and
will be retried); ``dead`` (dead-lettered: its last attempt failed or timed out, or it
cannot run); ``cancelled`` (the worker stopped it and discarded its outcome: the job was
cancelled, its lease was lost, or shutdown gave it back).

Example:
    >>> from fastjobs._core import JobRecord
    >>> m = WorkerMetrics(slots=10)
    >>> m.add_started([JobRecord("j1", "send", "emails", attempt=1, enqueued_at=99.5)], now=100.0)
    >>> m.add_outcome("emails", "send", "cancelled")
    >>> snap = m.snapshot()
    >>> snap["started"], snap["finished"]
    ([['emails', 'send', 1]], [['emails', 'send', 'cancelled', 1]])
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ._core import tally_starts
from .backends.values import HISTOGRAM_BOUNDS, HistoryRow, Outcome

if TYPE_CHECKING:
    from ._core import JobRecord

OUTCOMES = ("succeeded", "failed", "timed_out", "dead", "cancelled")
"""The values of the ``outcome`` label of ``fastjobs_jobs_finished_total``."""

DURATION_BOUNDS = HISTOGRAM_BOUNDS
"""Buckets (upper bounds, seconds) of ``fastjobs_job_duration_seconds``: the history's, so one
tally serves both."""

WAIT_BOUNDS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
)
"""Buckets of ``fastjobs_job_wait_seconds`` (from enqueue, or from when it was due, to its start)."""

ROUND_TRIP_BOUNDS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)
"""Buckets of ``fastjobs_backend_round_trip_seconds``."""

OPERATIONS = ("claim", "ack", "renew", "enqueue")
"""The values of the ``operation`` label of ``fastjobs_backend_round_trip_seconds``."""

_STATUS = {Outcome.SUCCEEDED: "succeeded", Outcome.RETRIED: "failed", Outcome.DEAD: "dead"}


def _cell(bounds: Sequence[float]) -> list[float]:
    return [0.0] + [0] * (len(bounds) + 1)


class WorkerMetrics:
    """One process's monitoring counters (cumulative) and its gauges (read when asked).

    Args:
        slots: the workers' concurrency (``fastjobs_worker_slots``); :meth:`add_worker` adds to it.
    """

    def __init__(self, slots: int = 0) -> None:
        self.slots = slots
        self._running: list[Callable[[], int]] = []
        self._discarded: list[Callable[[], int]] = []
        self._discarded_before = 0
        """What workers that stopped had discarded: the counter keeps it."""
        self.started: dict[tuple[str, str], int] = {}
        self.finished: dict[tuple[str, str, str], int] = {}
        self.duration: dict[tuple[str, str], list[float]] = {}
        """(queue, task) -> [seconds summed, count per DURATION_BOUNDS bucket..., count above]."""
        self.wait: dict[tuple[str, str], list[float]] = {}
        self.round_trips: dict[str, list[float]] = {}
        self._timed_out_retried: dict[tuple[str, str], int] = {}
        """Timed-out attempts to retry, noted as they happen: their history row says RETRIED,
        so :meth:`add_rows` moves them from ``failed`` to ``timed_out``."""

    # -- the worker's side ----------------------------------------------------------

    def add_worker(self, slots: int, running: Callable[[], int], discarded: Callable[[], int]) -> None:
        """Count a worker of this process: its concurrency, and how to read its running jobs
        (``fastjobs_jobs_running``) and its outcomes discarded because a lease was lost
        (``fastjobs_acks_discarded_total``)."""
        self.slots += slots
        self._running.append(running)
        self._discarded.append(discarded)

    def remove_worker(self, slots: int, running: Callable[[], int], discarded: Callable[[], int]) -> None:
        """A worker of :meth:`add_worker` stopped: its slots and running jobs no longer count;
        what it discarded still does (a counter never goes back)."""
        self.slots -= slots
        self._running.remove(running)
        self._discarded.remove(discarded)
        self._discarded_before += discarded()

    def add_started(self, records: Iterable[JobRecord], now: float) -> None:
        """Jobs handed to their handler (one start batch), with their wait: for a first attempt
        from enqueue (or when due) to ``now``; a retry's due time is not in its record, so its
        wait is not counted. The per-job part is compiled (:func:`fastjobs._core.tally_starts`);
        here, one merge per run of jobs of one task."""
        started = self.started
        wait = self.wait
        for queue, task, n, added in tally_starts(records, now, WAIT_BOUNDS):
            key = (queue, task)
            started[key] = started.get(key, 0) + n
            cell = wait.get(key)
            if cell is None:
                wait[key] = added
            else:
                for i, value in enumerate(added):
                    if value:
                        cell[i] += value

    def add_rows(self, rows: Iterable[HistoryRow]) -> None:
        """The runs one ack flush sends (succeeded, retried and dead, with their run-time histograms)."""
        finished = self.finished
        for row in rows:
            key = (row.queue, row.task)
            status = _STATUS[Outcome(row.outcome)]
            runs = row.runs
            if status == "failed" and key in self._timed_out_retried:
                timed_out = min(runs, self._timed_out_retried.pop(key))
                runs -= timed_out
                k = (row.queue, row.task, "timed_out")
                finished[k] = finished.get(k, 0) + timed_out
            k = (row.queue, row.task, status)
            finished[k] = finished.get(k, 0) + runs
            cell = self.duration.get(key)
            if cell is None:
                cell = self.duration[key] = _cell(DURATION_BOUNDS)
            cell[0] += row.runtime_sum
            for i, count in enumerate(row.buckets, 1):
                cell[i] += count

    def add_timed_out(self, queue: str, task: str) -> None:
        """An attempt timed out and will be retried (its run also arrives in :meth:`add_rows`)."""
        key = (queue, task)
        self._timed_out_retried[key] = self._timed_out_retried.get(key, 0) + 1

    def add_outcome(self, queue: str, task: str, outcome: str, count: int = 1) -> None:
        """Attempts that ended without a history row (``cancelled``)."""
        key = (queue, task, outcome)
        self.finished[key] = self.finished.get(key, 0) + count

    def add_round_trip(self, operation: str, seconds: float) -> None:
        """One backend call of ``operation`` (one of :data:`OPERATIONS`) took ``seconds``."""
        cell = self.round_trips.get(operation)
        if cell is None:
            cell = self.round_trips[operation] = _cell(ROUND_TRIP_BOUNDS)
        cell[0] += seconds
        cell[bisect_left(ROUND_TRIP_BOUNDS, seconds) + 1] += 1

    # -- the reader's side ----------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Everything counted so far, as JSON-able lists (labels first, then values).

        Histogram entries are ``[*labels, seconds summed, [count per bucket..., count above]]``
        (per-bucket counts, not cumulative); the bounds are the module's constants.
        """
        return {
            "started": [[q, t, n] for (q, t), n in self.started.items()],
            "finished": [[q, t, o, n] for (q, t, o), n in self.finished.items()],
            "duration": [[q, t, c[0], [int(x) for x in c[1:]]] for (q, t), c in self.duration.items()],
            "wait": [[q, t, c[0], [int(x) for x in c[1:]]] for (q, t), c in self.wait.items()],
            "round_trips": [[op, c[0], [int(x) for x in c[1:]]] for op, c in self.round_trips.items()],
            "running": sum(f() for f in self._running),
            "slots": self.slots,
            "discarded": self._discarded_before + sum(f() for f in self._discarded),
        }


PROCESS: WorkerMetrics | None = None
"""This process's counters once :func:`enable` ran (a Worker with ``metrics=True`` runs it): the
App's enqueues add their round trips to it. None: nothing is counted."""


def enable() -> WorkerMetrics:
    """Start counting in this process (idempotent); return :data:`PROCESS`."""
    global PROCESS
    if PROCESS is None:
        PROCESS = WorkerMetrics()
    return PROCESS


def merge(snapshots: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Sum snapshots (of several processes) into one: counters and histograms add, gauges add.

    Example:
        >>> a = {"started": [["q", "t", 2]], "finished": [], "duration": [], "wait": [],
        ...      "round_trips": [["claim", 0.5, [1, 0]]], "running": 1, "slots": 10, "discarded": 0}
        >>> m = merge([a, a])
        >>> m["started"], m["round_trips"], m["slots"]
        ([['q', 't', 4]], [['claim', 1.0, [2, 0]]], 20)
    """
    counters: dict[str, dict[tuple[Any, ...], int]] = {"started": {}, "finished": {}}
    histograms: dict[str, dict[tuple[Any, ...], list[Any]]] = {"duration": {}, "wait": {}, "round_trips": {}}
    gauges = {"running": 0, "slots": 0, "discarded": 0}
    for snap in snapshots:
        for name, table in counters.items():
            for *labels, n in snap.get(name, ()):
                key = tuple(labels)
                table[key] = table.get(key, 0) + n
        for name, hist in histograms.items():
            for *labels, total, counts in snap.get(name, ()):
                key = tuple(labels)
                seen = hist.get(key)
                if seen is None:
                    hist[key] = [total, list(counts)]
                else:
                    seen[0] += total
                    seen[1] = [a + b for a, b in zip(seen[1], counts)]
        for name in gauges:
            gauges[name] += snap.get(name, 0)
    merged: dict[str, Any] = {name: [[*k, n] for k, n in table.items()] for name, table in counters.items()}
    merged.update({name: [[*k, t, c] for k, (t, c) in hist.items()] for name, hist in histograms.items()})
    merged.update(gauges)
    return merged
