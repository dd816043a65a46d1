"""The memory backend's search: jobs ordered by ``(at, id)`` for :meth:`Backend.search`.

Every stored job sits in exactly one ordered index, keyed ``(at in integer
microseconds, id)``:

* a live job (queued, scheduled, retry-pending, waiting, active) in its
  queue's *live* index, keyed by its ``enqueued_at``, which does not change
  while it lives (a claim, a retry ack or a release moves nothing here);
* a finished job in the *done* index of its (queue, state), keyed by its
  ``finished_at`` (set once, when it finishes).

So the hot path touches the indexes twice per job: one insert at enqueue (an
append, enqueue times only grow) and one move at the end (out of the live
index, near its oldest end since jobs finish roughly in order, and an append
to a done index). A page seeks each index it needs to the position and merges
them newest first: its cost depends on the page and on the number of queues,
never on the number of stored jobs.

Filters seeked on: ``queue``, ``since`` / ``until`` and the finished states
(succeeded, dead, cancelled). Filters checked per candidate, at most
:data:`SEARCH_SCAN` candidates per call: ``task``, ``tag``, and a live state
when not every live state is wanted (a scheduled or retry-pending job whose
time has come reports ``queued`` without any operation moving it, so live
states cannot have indexes of their own).

Example:
    >>> index = KeyIndex()
    >>> for key in [(3, "c"), (1, "a"), (2, "b")]:
    ...     index.add(key)
    >>> list(index.below((3, "c")))
    [(2, 'b'), (1, 'a')]
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, insort
from collections.abc import Iterator
from typing import TYPE_CHECKING

from .._core import ACTIVE, CANCELLED, DEAD, QUEUED, RETRY_PENDING, SCHEDULED, SUCCEEDED, WAITING, JobSlot
from .values import SEARCH_SCAN, JobFilter, NewJob, Position, StoredJob

_LOAD = 512
"""Keys per block: small enough that an insert or a delete inside a block is a short memmove."""

_LIVE_STATES = frozenset((SCHEDULED, QUEUED, ACTIVE, RETRY_PENDING, WAITING))
_DONE_STATES = (SUCCEEDED, DEAD, CANCELLED)


def micros(seconds: float) -> int:
    """A time as the integer microseconds of a :data:`Position`."""
    return round(seconds * 1e6)


class KeyIndex:
    """An ordered set of ``(at_us, id)`` keys in sorted blocks (the idea of ``sortedcontainers``).

    ``add`` and ``discard`` cost a bisection over the blocks and one inside a
    block; ``below`` walks down from any key. No positional index is kept: a
    search never needs one.
    """

    __slots__ = ("_blocks", "_maxes")

    def __init__(self) -> None:
        self._blocks: list[list[Position]] = []
        self._maxes: list[Position] = []

    def __len__(self) -> int:
        return sum(len(block) for block in self._blocks)

    def __bool__(self) -> bool:
        return bool(self._maxes)

    def add(self, key: Position) -> None:
        maxes = self._maxes
        if not maxes:
            self._blocks.append([key])
            maxes.append(key)
            return
        if key > maxes[-1]:  # the usual case: times only grow
            i = len(maxes) - 1
            block = self._blocks[i]
            block.append(key)
            maxes[i] = key
        else:
            i = bisect_left(maxes, key)
            block = self._blocks[i]
            insort(block, key)
        if len(block) > 2 * _LOAD:
            self._blocks.insert(i + 1, block[_LOAD:])
            del block[_LOAD:]
            maxes.insert(i, block[-1])

    def discard(self, key: Position) -> None:
        maxes = self._maxes
        i = bisect_left(maxes, key)
        if i == len(maxes):
            return
        block = self._blocks[i]
        j = bisect_left(block, key)
        if j == len(block) or block[j] != key:
            return
        del block[j]
        if not block:
            del self._blocks[i], maxes[i]
        elif j == len(block):
            maxes[i] = block[-1]

    def below(self, key: Position | None) -> Iterator[Position]:
        """Keys strictly below ``key`` (None: all), highest first."""
        blocks = self._blocks
        if not blocks:
            return
        if key is None:
            i = len(blocks) - 1
            j = len(blocks[i])
        else:
            i = bisect_left(self._maxes, key)
            if i == len(blocks):
                i -= 1
                j = len(blocks[i])
            else:
                j = bisect_left(blocks[i], key)
        while True:
            block = blocks[i]
            for k in range(j - 1, -1, -1):
                yield block[k]
            i -= 1
            if i < 0:
                return
            j = len(blocks[i])


class SearchIndex:
    """The ordered indexes over a :class:`MemoryBackend`'s store (a mixin; see the module docstring)."""

    _jobs: dict[str, JobSlot]

    if TYPE_CHECKING:
        def _snap(self, job: JobSlot, now: float) -> StoredJob: ...

    def _init_search(self) -> None:
        self._live_keys: dict[str, KeyIndex] = {}
        """Queue -> its live jobs by (enqueued_at, id)."""
        self._done_keys: dict[tuple[str, int], KeyIndex] = {}
        """(queue, finished state) -> its jobs by (finished_at, id)."""
        self._new: dict[str, NewJob] = {}
        """Job id -> the NewJob it was enqueued as (for its task and tags; JobSlot has no slot for them)."""

    def _live_index(self, queue: str) -> KeyIndex:
        index = self._live_keys.get(queue)
        if index is None:
            index = self._live_keys[queue] = KeyIndex()
        return index

    def _index_finished(self, job: JobSlot) -> None:
        """A live job just finished (its state and finished_at are set): move its key."""
        live = self._live_keys.get(job.queue)
        if live is not None:
            live.discard((micros(job.enqueued_at), job.id))
        key = (job.queue, job.state)
        done = self._done_keys.get(key)
        if done is None:
            done = self._done_keys[key] = KeyIndex()
        done.add((micros(job.finished_at), job.id))  # type: ignore[arg-type]  # set: it finished

    def _unindex_search(self, job: JobSlot) -> None:
        """Take a job out of whichever index holds it (before it is deleted, retried or moved)."""
        if job.state in _LIVE_STATES:
            index = self._live_keys.get(job.queue)
            key = (micros(job.enqueued_at), job.id)
        else:
            index = self._done_keys.get((job.queue, job.state))
            key = (micros(job.finished_at), job.id)  # type: ignore[arg-type]  # set: it finished
        if index is not None:
            index.discard(key)

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
        jobs, new_of = self._jobs, self._new
        found: list[StoredJob] = []
        examined = 0
        merged = heapq.merge(*sources, reverse=True)
        for key in merged:
            if floor is not None and key[0] < floor:
                return found, None
            examined += 1
            job = jobs[key[1]]
            if task is not None or tag is not None:
                new = new_of.get(key[1])
                if new is None or (task is not None and new.task != task) or (
                    tag is not None and tag not in new.tags
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
