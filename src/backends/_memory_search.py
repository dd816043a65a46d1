"""The memory backend's search: jobs ordered by ``(at, id)`` for :meth:`Backend.search`.

Every stored job sits in exactly one ordered index, keyed ``(at in integer
microseconds, id)``:

* a live job (queued, scheduled, retry-pending, waiting, active) in its
  queue's *live* index, keyed by its ``enqueued_at``, which does not change
  while it lives (a claim, a retry ack or a release moves nothing here);
* a finished job in the *done* index of its (queue, state), keyed by its
  ``finished_at`` (set once, when it finishes).

A :class:`KeyIndex` keeps the distinct times in order (a :class:`SortedInts`)
and, per time, its ids in a dict: the jobs one call stores or finishes share
their time, so the hot path adds or removes an id in a dict (no tuple, no
comparison of ids; bisecting (at, id) tuples cost ~1 us a job, measured) and
touches the ordered times once per call: ~0.2 us per enqueued job, measured.
The plain successes of one ``ack_many`` are filed together
(:meth:`SearchIndex._index_succeeded`: their times turned into microseconds
and their buckets looked up once per distinct time, not per job). A search sorts one time's ids when it first
reads them (cached while they do not grow). A page seeks each index it needs
to the position and merges them newest first: its cost depends on the page,
the number of queues and the largest set of jobs sharing one time (one
``enqueue_many`` or ``ack_many``), never on the number of stored jobs.

Filters seeked on: ``queue``, ``since`` / ``until`` and the finished states
(succeeded, dead, cancelled), and ``active`` alone (the running jobs, sorted
per call: there are few). Filters checked per candidate, at most
:data:`SEARCH_SCAN` candidates per call: ``task``, ``tag``, and a live state
when not every live state is wanted (a scheduled or retry-pending job whose
time has come reports ``queued`` without any operation moving it, so live
states cannot have indexes of their own).

Example:
    >>> index = KeyIndex()
    >>> for at, job_id in [(3, "c"), (1, "a"), (2, "b"), (2, "a")]:
    ...     index.add(at, job_id)
    >>> list(index.below((3, "c")))
    [(2, 'b'), (2, 'a'), (1, 'a')]
"""

from __future__ import annotations

import heapq
from bisect import bisect_left
from collections.abc import Iterator
from typing import TYPE_CHECKING

from .._core import ACTIVE, CANCELLED, DEAD, QUEUED, RETRY_PENDING, SCHEDULED, SUCCEEDED, WAITING, JobSlot
from .values import SEARCH_SCAN, JobFilter, Position, StoredJob

_LOAD = 512
"""Keys per block: small enough that an insert or a delete inside a block is a short memmove."""

_LIVE_STATES = frozenset((SCHEDULED, QUEUED, ACTIVE, RETRY_PENDING, WAITING))
_DONE_STATES = (SUCCEEDED, DEAD, CANCELLED)
_ACTIVE_ONLY = frozenset((ACTIVE,))


def micros(seconds: float) -> int:
    """A time as the integer microseconds of a :data:`Position`."""
    return round(seconds * 1e6)


class SortedInts:
    """An ordered set of ints in sorted blocks (the idea of ``sortedcontainers``).

    ``add`` and ``discard`` cost a bisection over the blocks and one inside a
    block (int comparisons, cheap); ``below`` walks down from any value.
    """

    __slots__ = ("_blocks", "_maxes")

    def __init__(self) -> None:
        self._blocks: list[list[int]] = []
        self._maxes: list[int] = []

    def __bool__(self) -> bool:
        return bool(self._maxes)

    def add(self, value: int) -> None:
        maxes = self._maxes
        if not maxes:
            self._blocks.append([value])
            maxes.append(value)
            return
        if value > maxes[-1]:  # the usual case: times only grow
            i = len(maxes) - 1
            block = self._blocks[i]
            block.append(value)
            maxes[i] = value
        else:
            i = bisect_left(maxes, value)
            block = self._blocks[i]
            j = bisect_left(block, value)
            if j < len(block) and block[j] == value:
                return
            block.insert(j, value)
        if len(block) > 2 * _LOAD:
            self._blocks.insert(i + 1, block[_LOAD:])
            del block[_LOAD:]
            maxes.insert(i, block[-1])

    def discard(self, value: int) -> None:
        maxes = self._maxes
        i = bisect_left(maxes, value)
        if i == len(maxes):
            return
        block = self._blocks[i]
        j = bisect_left(block, value)
        if j == len(block) or block[j] != value:
            return
        del block[j]
        if not block:
            del self._blocks[i], maxes[i]
        elif j == len(block):
            maxes[i] = block[-1]

    def below(self, value: int | None) -> Iterator[int]:
        """Values strictly below ``value`` (None: all), highest first."""
        blocks = self._blocks
        if not blocks:
            return
        if value is None:
            i = len(blocks) - 1
            j = len(blocks[i])
        else:
            i = bisect_left(self._maxes, value)
            if i == len(blocks):
                i -= 1
                j = len(blocks[i])
            else:
                j = bisect_left(blocks[i], value)
        while True:
            block = blocks[i]
            for k in range(j - 1, -1, -1):
                yield block[k]
            i -= 1
            if i < 0:
                return
            j = len(blocks[i])


    def ascending(self) -> Iterator[int]:
        """All values, lowest first."""
        for block in self._blocks:
            yield from block


class KeyIndex:
    """An ordered set of ``(at_us, id)`` keys: the distinct times in a :class:`SortedInts`, and per time
    the ids in a dict (sorted, and cached, only when a search reads them).

    Jobs stored or finished by one call share their time, so the hot path adds
    and removes ids in a dict (no tuple, no comparison of ids), and touches the
    ordered times once per call. A search sorts a time's ids at most once
    while they do not grow; ids removed since are skipped.
    """

    __slots__ = ("_times", "ids", "sorted_ids")

    def __init__(self) -> None:
        self._times = SortedInts()
        self.ids: dict[int, dict[str, None]] = {}
        """Time -> its ids (a dict as an ordered set). The hot path adds and pops ids here itself
        (a method call per job costs as much as the rest); it calls :meth:`bucket` to add and
        :meth:`drop` when it emptied one."""
        self.sorted_ids: dict[int, list[str]] = {}
        """Time -> its ids sorted, as a search last read them (ids popped since are skipped);
        whoever adds ids to a time drops its entry."""

    def __bool__(self) -> bool:
        return bool(self.ids)

    def __len__(self) -> int:
        return sum(len(ids) for ids in self.ids.values())

    def bucket(self, at: int) -> dict[str, None]:
        """The ids of time ``at``, to add to (made and ordered if new; its sorted cache dropped)."""
        ids = self.ids.get(at)
        if ids is None:
            ids = self.ids[at] = {}
            self._times.add(at)
        elif self.sorted_ids:
            self.sorted_ids.pop(at, None)
        return ids

    def drop(self, at: int) -> None:
        """Forget time ``at`` (its ids are gone)."""
        del self.ids[at]
        self._times.discard(at)
        if self.sorted_ids:
            self.sorted_ids.pop(at, None)

    def add(self, at: int, job_id: str) -> None:
        self.bucket(at)[job_id] = None

    def discard(self, at: int, job_id: str) -> None:
        ids = self.ids.get(at)
        if ids is not None:
            ids.pop(job_id, None)
            if not ids:
                self.drop(at)

    def _ordered(self, at: int, ids: dict[str, None]) -> list[str]:
        ordered = self.sorted_ids.get(at)
        if ordered is None or len(ordered) > 2 * len(ids) + 16:
            ordered = self.sorted_ids[at] = sorted(ids)
        return ordered

    def ascending(self) -> Iterator[Position]:
        """All keys, lowest first (``list_jobs`` of live states: the oldest)."""
        for at in self._times.ascending():
            ids = self.ids.get(at)
            if ids:
                for job_id in self._ordered(at, ids):
                    if job_id in ids:
                        yield (at, job_id)

    def below(self, key: Position | None) -> Iterator[Position]:
        """Keys strictly below ``key`` (None: all), highest first."""
        start = None
        if key is not None:
            start, below_id = key
            ids = self.ids.get(start)
            if ids is not None:
                ordered = self._ordered(start, ids)
                for k in range(bisect_left(ordered, below_id) - 1, -1, -1):
                    if ordered[k] in ids:
                        yield (start, ordered[k])
        for at in self._times.below(start):
            ids = self.ids[at]
            ordered = self._ordered(at, ids)
            for k in range(len(ordered) - 1, -1, -1):
                if ordered[k] in ids:
                    yield (at, ordered[k])


class SearchIndex:
    """The ordered indexes over a :class:`MemoryBackend`'s store (a mixin; see the module docstring)."""

    _jobs: dict[str, JobSlot]
    _active: dict[str, JobSlot]

    if TYPE_CHECKING:
        def _snap(self, job: JobSlot, now: float) -> StoredJob: ...

    def _init_search(self) -> None:
        self._live_keys: dict[str, KeyIndex] = {}
        """Queue -> its live jobs by (enqueued_at, id)."""
        self._done_keys: dict[tuple[str, int], KeyIndex] = {}
        """(queue, finished state) -> its jobs by (finished_at, id)."""
        # JobSlot has no slot for them. Strings only (and tuples of them), never the NewJob: a
        # dict of atomic values is not tracked by the cyclic GC, and a NewJob (a tuple subclass)
        # kept per job made full collections walk every stored job (-20 % end to end, measured).
        self._task: dict[str, str] = {}
        """Job id -> its task name."""
        self._tags: dict[str, tuple[str, ...]] = {}
        """Job id -> its tags, for jobs that have any."""

    def _live_index(self, queue: str) -> KeyIndex:
        index = self._live_keys.get(queue)
        if index is None:
            index = self._live_keys[queue] = KeyIndex()
        return index

    def _index_finished(self, job: JobSlot) -> None:
        """A live job just finished (its state and finished_at are set): move its key.

        On every ack, so written out with no call but round()'s."""
        queue = job.queue
        job_id = job.id
        live = self._live_keys.get(queue)
        if live is not None:
            at = round(job.enqueued_at * 1e6)
            ids = live.ids.get(at)
            if ids is not None:
                ids.pop(job_id, None)
                if not ids:
                    live.drop(at)
        key = (queue, job.state)
        done = self._done_keys.get(key)
        if done is None:
            done = self._done_keys[key] = KeyIndex()
        at = round(job.finished_at * 1e6)  # type: ignore[operator]  # set: it finished
        ids = done.ids.get(at)
        if ids is None:
            ids = done.bucket(at)
        elif done.sorted_ids:
            done.sorted_ids.pop(at, None)
        ids[job_id] = None

    def _index_succeeded(self, jobs: list[JobSlot], now: float) -> None:
        """Jobs that one ``ack_many`` saw succeed at ``now``: move their keys, once per call.

        They share their finish time, and most of them their enqueue time (one ``enqueue_many``
        stored them): the times are turned into microseconds and their buckets looked up
        when they change, not per job (the per-job version, :meth:`_index_finished`, was
        ~15 % of a no-op job's instructions on memory://)."""
        at = round(now * 1e6)
        live_keys, done_keys = self._live_keys, self._done_keys
        emptied: list[tuple[KeyIndex, int, dict[str, None]]] = []
        queue: str | None = None
        live: KeyIndex | None = None
        done: dict[str, None] = {}
        enqueued_at = -1.0
        ids: dict[str, None] | None = None
        for job in jobs:
            if job.queue != queue:
                queue = job.queue
                live = live_keys.get(queue)
                index = done_keys.get((queue, SUCCEEDED))
                if index is None:
                    index = done_keys[(queue, SUCCEEDED)] = KeyIndex()
                done = index.bucket(at)
                enqueued_at = -1.0
            if job.enqueued_at != enqueued_at:
                enqueued_at = job.enqueued_at
                ids = None
                if live is not None:
                    start = round(enqueued_at * 1e6)
                    ids = live.ids.get(start)
                    if ids is not None:
                        emptied.append((live, start, ids))
            if ids is not None:
                ids.pop(job.id, None)
            done[job.id] = None
        for live, start, ids in emptied:
            if not ids and live.ids.get(start) is ids:
                live.drop(start)

    def _unindex_search(self, job: JobSlot) -> None:
        """Take a job out of whichever index holds it (before it is deleted, retried or moved)."""
        if job.state in _LIVE_STATES:
            index = self._live_keys.get(job.queue)
            at = micros(job.enqueued_at)
        else:
            index = self._done_keys.get((job.queue, job.state))
            at = micros(job.finished_at)  # type: ignore[arg-type]  # set: it finished
        if index is not None:
            index.discard(at, job.id)

    def _search_locked(self, where: JobFilter, limit: int, after: Position | None,
                       now: float) -> tuple[list[StoredJob], Position | None]:
        states = set(where.states)
        queues = [where.queue] if where.queue is not None else list(
            {q for q in self._live_keys} | {q for q, _ in self._done_keys}
        )
        live_states = _LIVE_STATES & states if states else _LIVE_STATES
        check_live = live_states != _LIVE_STATES
        start = after
        if where.until is not None:
            bound = (micros(where.until), "")
            if start is None or bound < start:
                start = bound
        floor = None if where.since is None else micros(where.since)
        sources: list[Iterator[Position]] = []
        if live_states == _ACTIVE_ONLY:
            # The running jobs: few (the workers' concurrency), so sorted here rather than
            # scanned for among every live one.
            live_states = frozenset()
            running = [
                (round(job.enqueued_at * 1e6), job.id) for job in self._active.values()
                if where.queue is None or job.queue == where.queue
            ]
            running = sorted((key for key in running if start is None or key < start), reverse=True)
            sources.append(iter(running))
        for queue in queues:
            if live_states:
                live = self._live_keys.get(queue)
                if live:
                    sources.append(live.below(start))
            for state in _DONE_STATES:
                if states and state not in states:
                    continue
                done = self._done_keys.get((queue, state))
                if done:
                    sources.append(done.below(start))
        task, tag = where.task, where.tag
        jobs, task_of, tags_of = self._jobs, self._task, self._tags
        found: list[StoredJob] = []
        examined = 0
        merged = heapq.merge(*sources, reverse=True)
        for key in merged:
            if floor is not None and key[0] < floor:
                return found, None
            examined += 1
            job = jobs[key[1]]
            if task is not None or tag is not None:
                if (task is not None and task_of.get(key[1]) != task) or (
                    tag is not None and tag not in tags_of.get(key[1], ())
                ):
                    if examined >= SEARCH_SCAN:
                        return found, key
                    continue
            snap = self._snap(job, now)
            if check_live and snap.state not in states:
                if examined >= SEARCH_SCAN:
                    return found, key
                continue
            found.append(snap)
            if len(found) >= limit:
                upcoming = next(merged, None)
                if upcoming is None or (floor is not None and upcoming[0] < floor):
                    return found, None
                return found, key
            if examined >= SEARCH_SCAN:
                return found, key
        return found, None
