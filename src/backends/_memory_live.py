"""The memory backend's history points and live events (see "History" and "Events" in ``base.py``).

History: points per (minute or hour, queue, task, outcome) in a dict, each
added to by the ack flushes of its period; a deque of the points in the order
they were made lets every write drop a bounded number of expired ones from
its old end, so the store stays bounded without a sweeper.

Events: in-process fan-out. Each listener of :meth:`LiveFeed.events` has a
bounded deque (the oldest events drop out when it falls behind, best effort)
and an :class:`asyncio.Event` on its own loop. Operations collect their events
under the backend's lock and hand them out once per call, one wake-up per
listener per call (through ``call_soon_threadsafe`` from another thread).
Nothing is collected while nobody listens.

Example:
    >>> from fastjobs.backends.memory import MemoryBackend
    >>> issubclass(MemoryBackend, LiveFeed)
    True
"""

from __future__ import annotations

import asyncio
import collections
import threading
from collections.abc import AsyncIterator, Sequence

from .values import HISTOGRAM_BOUNDS, BackendOptions, Event, HistoryPoint, HistoryRow

EVENTS_KEPT = 10_000
"""Events one listener may fall behind by before the oldest drop out."""

_EXPIRE_PER_WRITE = 100
"""Expired history points dropped per ack flush at most (more than a flush can add)."""

_BUCKETS = len(HISTOGRAM_BOUNDS) + 1

_HistoryKey = tuple[int, str, str, int]


class _Listener:
    __slots__ = ("queues", "pending", "signal", "loop", "thread")

    def __init__(self, queues: frozenset[str] | None) -> None:
        self.queues = queues
        self.pending: collections.deque[Event] = collections.deque(maxlen=EVENTS_KEPT)
        self.signal = asyncio.Event()
        self.loop = asyncio.get_running_loop()
        self.thread = threading.get_ident()


class LiveFeed:
    """History points and event listeners of a :class:`MemoryBackend` (a mixin; see the module docstring)."""

    _lock: threading.Lock
    options: BackendOptions
    _woken: bool
    """Set by an operation that made a job ready: idle waiters are woken after the lock is released."""

    def _init_live(self) -> None:
        self._minutes: dict[_HistoryKey, list[float]] = {}
        self._hours: dict[_HistoryKey, list[float]] = {}
        self._made: dict[int, collections.deque[_HistoryKey]] = {60: collections.deque(), 3600: collections.deque()}
        self._listeners: list[_Listener] = []
        self._outbox: list[Event] = []
        self._eventing = False
        """True while someone listens and events are on: operations collect events only then."""

    # -- history ------------------------------------------------------------

    def _add_history(self, rows: Sequence[HistoryRow], now: float) -> None:
        """Add an ack flush's rows to the current minute and hour (under the lock)."""
        for step, points, kept in ((60, self._minutes, self.options.history_minutes),
                                   (3600, self._hours, self.options.history_hours)):
            at = int(now // step * step)
            made = self._made[step]
            for row in rows:
                if len(row.buckets) != _BUCKETS:
                    raise ValueError(f"a HistoryRow has {_BUCKETS} buckets, not {len(row.buckets)}")
                key = (at, row.queue, row.task, int(row.outcome))
                point = points.get(key)
                if point is None:
                    point = points[key] = [0.0] * (_BUCKETS + 2)
                    made.append(key)
                point[0] += row.runs
                point[1] += row.runtime_sum
                for i, count in enumerate(row.buckets, 2):
                    point[i] += count
            horizon = now - kept
            for _ in range(_EXPIRE_PER_WRITE):
                if not made or made[0][0] + step > horizon:
                    break
                points.pop(made.popleft(), None)

    def _history_locked(self, since: float, until: float, step: int, queue: str | None,
                        task: str | None) -> list[HistoryPoint]:
        if step not in (60, 3600):
            raise ValueError(f"history step is 60 or 3600 seconds, not {step!r}")
        points = self._minutes if step == 60 else self._hours
        found = [
            HistoryPoint(float(at), HistoryRow(q, t, outcome, int(p[0]), p[1], tuple(int(c) for c in p[2:])))
            for (at, q, t, outcome), p in points.items()
            if since <= at < until and (queue is None or q == queue) and (task is None or t == task)
        ]
        found.sort(key=lambda point: (point.at, point.row.queue, point.row.task, point.row.outcome))
        return found

    # -- events ---------------------------------------------------------------

    def _emit(self, kind: str, job_id: str, task: str, queue: str, at: float) -> None:
        """Collect one event for this call's publish (callers check ``_eventing`` first)."""
        self._outbox.append(Event(kind, job_id, task, queue, at))

    def _close_batch(self) -> bool:
        """The end of an operation, under the lock: publish its events; whether idle waiters need waking."""
        woken, self._woken = self._woken, False
        if self._eventing:
            self._publish()
        return woken

    def _publish(self) -> None:
        """Hand this call's events to the listeners (under the lock): one wake-up each."""
        events, self._outbox = self._outbox, []
        if not events:
            return
        me = threading.get_ident()
        for listener in self._listeners:
            queues = listener.queues
            before = len(listener.pending)
            if queues is None:
                listener.pending.extend(events)
            else:
                listener.pending.extend(e for e in events if e.queue in queues)
            if len(listener.pending) == before and before < EVENTS_KEPT:
                continue
            if listener.thread == me:
                listener.signal.set()
            elif not listener.loop.is_closed():
                try:
                    listener.loop.call_soon_threadsafe(listener.signal.set)
                except RuntimeError:  # closed between the check and the call
                    pass

    async def events(self, queues: Sequence[str] | None = None) -> AsyncIterator[Event]:
        listener = _Listener(None if queues is None else frozenset(queues))
        with self._lock:
            self._listeners.append(listener)
            self._eventing = self.options.events
        try:
            while True:
                listener.signal.clear()
                while listener.pending:
                    yield listener.pending.popleft()
                await listener.signal.wait()
        finally:
            with self._lock:
                self._listeners.remove(listener)
                self._eventing = self.options.events and bool(self._listeners)

