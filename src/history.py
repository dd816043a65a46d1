"""Throughput and run-time history: what workers tally per ack flush, what :meth:`App.history` returns.

Write side: the worker adds each finished attempt (queue, task,
:class:`~fastjobs.backends.Outcome`, seconds its handler ran) to a :class:`Tally`
as it acks it: a cell per (queue, task, outcome) holding the run-time sum and a
fixed-bucket histogram over :data:`~fastjobs.backends.HISTOGRAM_BOUNDS`. Each ack
flush sends the tally as :class:`~fastjobs.backends.HistoryRow` values in the
same round trip as the acks; the backend adds them to the current minute and hour.

Read side: :func:`read_history` merges the stored points' outcomes into one
:class:`HistoryBucket` per (minute or hour, queue, task), with counts per outcome
and p50/p95 estimated from the fixed-bucket histogram.

Example:
    >>> from fastjobs.history import tally, HistoryBucket
    >>> rows = tally([("emails", "send", 0, 0.004), ("emails", "send", 0, 0.006), ("emails", "send", 1, 0.2)])
    >>> [(r.outcome, r.runs) for r in rows]
    [(0, 2), (1, 1)]
    >>> b = HistoryBucket.from_rows(0.0, "emails", "send", rows)
    >>> b.succeeded, b.retried, b.runs, round(b.p50, 4)
    (2, 1, 3, 0.0075)
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .backends.base import HISTOGRAM_BOUNDS, Backend, HistoryPoint, HistoryRow, Outcome
from .errors import InvalidOptionError
from .options import TASK_NAME, validate_queue
from .search import Instant, parse_instant

Run = tuple[str, str, int, float]
"""One finished attempt as the worker notes it: (queue, task name, :class:`Outcome`, seconds it ran)."""

SLOTS = len(HISTOGRAM_BOUNDS) + 1
"""Buckets of a histogram: one per bound, and one for longer runs."""

STEPS = {"1m": 60, "1h": 3600}
"""What :meth:`App.history` takes as ``step``, in seconds."""

DEFAULT_SPAN = {60: 3600.0, 3600: 86400.0}
"""How far back :meth:`App.history` reads by default, per step: an hour of minutes, a day of hours."""

SUCCEEDED, RETRIED, DEAD = Outcome.SUCCEEDED, Outcome.RETRIED, Outcome.DEAD


def bucket_of(seconds: float) -> int:
    """The histogram bucket of a run time: the first bound it does not exceed (bounds are inclusive).

    Example:
        >>> bucket_of(0.001), bucket_of(0.0011), bucket_of(1e9) == SLOTS - 1
        (0, 1, True)
    """
    return bisect_left(HISTOGRAM_BOUNDS, seconds)


class Tally:
    """Run-time totals per (queue, task, outcome): what an ack flush sends as history rows.

    A cell is ``[seconds summed, count per bucket...]``; the worker's hot path keeps a reference
    to the cell it used last and adds to it in place (see :class:`~fastjobs.acks.AckBuffer`).
    """

    __slots__ = ("cells",)

    def __init__(self) -> None:
        self.cells: dict[tuple[str, str, int], list[float]] = {}

    def cell(self, queue: str, task: str, outcome: int) -> list[float]:
        """The cell of (queue, task, outcome), made empty on first use."""
        key = (queue, task, outcome)
        cell = self.cells.get(key)
        if cell is None:
            cell = self.cells[key] = [0.0] + [0] * SLOTS
        return cell

    def add(self, queue: str, task: str, outcome: int, seconds: float) -> None:
        """Count one run of ``seconds``."""
        cell = self.cell(queue, task, outcome)
        cell[0] += seconds
        cell[bisect_left(HISTOGRAM_BOUNDS, seconds) + 1] += 1

    def rows(self) -> list[HistoryRow]:
        """One :class:`HistoryRow` per cell, in order of first use."""
        rows = []
        for (queue, task, outcome), cell in self.cells.items():
            buckets = tuple(int(n) for n in cell[1:])
            rows.append(HistoryRow(queue, task, outcome, sum(buckets), cell[0], buckets))
        return rows


def tally(runs: Iterable[Run | None]) -> list[HistoryRow]:
    """Sum ``runs`` (None entries skipped) into one :class:`HistoryRow` per (queue, task, outcome),
    in order of first appearance."""
    totals = Tally()
    for run in runs:
        if run is not None:
            totals.add(*run)
    return totals.rows()


def percentile(buckets: Sequence[int], q: float) -> float | None:
    """The ``q`` quantile (0-1) of the run times a histogram counts; None if it counts none.

    Linear inside the bucket that holds it (as Prometheus' ``histogram_quantile``): the first
    bucket spans 0 to its bound; the last, unbounded one reports its lower bound (at least that).

    Example:
        >>> counts = [0] * SLOTS
        >>> counts[bucket_of(0.3)] = 4   # four runs in (0.25, 0.5]
        >>> percentile(counts, 0.5)
        0.375
    """
    total = sum(buckets)
    if total == 0:
        return None
    rank = q * total
    below = 0
    for i, count in enumerate(buckets):
        if count and below + count >= rank:
            if i >= len(HISTOGRAM_BOUNDS):
                return HISTOGRAM_BOUNDS[-1]
            lower = HISTOGRAM_BOUNDS[i - 1] if i else 0.0
            return lower + (HISTOGRAM_BOUNDS[i] - lower) * max(0.0, rank - below) / count
        below += count
    return HISTOGRAM_BOUNDS[-1]  # unreachable with consistent counts


@dataclass(frozen=True, slots=True)
class HistoryBucket:
    """Throughput and run times of one task in one queue over one minute or hour.

    Counts are attempts: a job that failed twice, then succeeded, counts 2 ``retried``
    and 1 ``succeeded`` (3 ``runs``). Run times are the seconds from the worker calling
    the handler to its outcome (the worker's monotonic clock): exact for a handler that
    finishes without awaiting on Python 3.12+; otherwise they include the worker loop's
    turns before the handler's first step (before 3.12) and before its outcome is seen,
    so on a busy worker a no-op handler reads about a millisecond. A timed-out attempt
    counts its timeout. ``p50`` / ``p95`` are estimated from a fixed-bucket histogram
    (exact to the bucket, linear inside it), None when nothing ran.

    Example:
        >>> for b in await app.history(queue="emails", step="1m"):  # doctest: +SKIP
        ...     print(b.at, b.task, b.succeeded, b.dead, b.p95)
        1765000020.0 tasks.send_email 1523 2 0.041
    """

    at: float
    """Start of the minute or hour (epoch seconds, the backend's clock)."""
    queue: str
    task: str
    succeeded: int
    """Attempts that succeeded."""
    retried: int
    """Attempts that failed with another attempt to follow."""
    dead: int
    """Attempts that failed for good (the job was dead-lettered)."""
    runs: int
    """All attempts counted: ``succeeded + retried + dead``."""
    runtime_sum: float
    """Seconds the handlers ran, summed over the runs."""
    mean: float | None
    p50: float | None
    p95: float | None
    buckets: tuple[int, ...]
    """The run-time histogram: counts per bucket of :data:`~fastjobs.backends.HISTOGRAM_BOUNDS`
    (inclusive upper bounds) and one more for longer runs; sum several to merge them."""

    @classmethod
    def from_rows(cls, at: float, queue: str, task: str, rows: Iterable[HistoryRow]) -> HistoryBucket:
        """Merge history rows (any outcomes, queues or tasks) into one bucket labelled ``at``, ``queue``, ``task``."""
        outcomes = [0, 0, 0]
        runtime_sum = 0.0
        merged = [0] * SLOTS
        for row in rows:
            if 0 <= row.outcome < 3:
                outcomes[row.outcome] += row.runs
            runtime_sum += row.runtime_sum
            for i, count in enumerate(row.buckets[:SLOTS]):
                merged[i] += count
        runs = sum(outcomes)
        return cls(
            at, queue, task, outcomes[SUCCEEDED], outcomes[RETRIED], outcomes[DEAD], runs, runtime_sum,
            runtime_sum / runs if runs else None, percentile(merged, 0.5), percentile(merged, 0.95), tuple(merged),
        )


def merge_points(points: Iterable[HistoryPoint]) -> list[HistoryBucket]:
    """One :class:`HistoryBucket` per (at, queue, task) of ``points``, outcomes merged; ordered by at, queue, task."""
    groups: dict[tuple[float, str, str], list[HistoryRow]] = {}
    for at, row in points:
        groups.setdefault((at, row.queue, row.task), []).append(row)
    return [HistoryBucket.from_rows(at, queue, task, rows) for (at, queue, task), rows in sorted(groups.items())]


def parse_step(step: object) -> int:
    """``"1m"`` or ``"1h"`` (or 60 / 3600) as seconds, else :class:`InvalidOptionError`."""
    seconds = STEPS.get(step) if isinstance(step, str) else step
    if type(seconds) is not int or seconds not in (60, 3600):
        raise InvalidOptionError(f"step must be '1m' or '1h', not {step!r}")
    return seconds


async def read_history(
    backend: Backend, queue: str | None = None, task: str | None = None, since: Instant = None,
    until: Instant = None, step: str | int = "1m",
) -> list[HistoryBucket]:
    """:meth:`App.history <fastjobs.App.history>` on a connected backend (see there)."""
    seconds = parse_step(step)
    if queue is not None:
        validate_queue(queue)
    if task is not None and (not isinstance(task, str) or not TASK_NAME.match(task)):
        raise InvalidOptionError(f"task must be a task name (1-200 characters, no spaces), not {task!r}")
    start = parse_instant("since", since)
    end = parse_instant("until", until)
    if start is not None and end is not None and start >= end:
        raise InvalidOptionError(f"since ({since!r}) must be before until ({until!r})")
    if start is None or end is None:
        now = await backend.now()
        if end is None:
            end = max(now, start or 0.0) + seconds  # the current minute or hour included
        if start is None:
            start = min(now, end) - DEFAULT_SPAN[seconds]
    # Whole steps: the minute (hour) that holds ``since`` is included.
    start = math.floor(start / seconds) * seconds
    points = await backend.history(start, end, seconds, queue, task)
    return merge_points(points)
