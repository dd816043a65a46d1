"""The priority/delay index, pure Python: the reference twin of ``_heap_c``.

Same observable behaviour as the compiled module, including its error types,
messages and the order in which arguments are checked; the tests run both and
compare them on random operation sequences. Keep the two in step.

The structure mirrors the compiled one, an indexed binary heap: every queued
job is one small list (the Python object plays the part of the C slab's slot),
two heaps (ready, delayed) hold those lists, each list records its own heap
position so ``remove`` is O(log n), and the id -> entry dict is touched only on
push, pop and remove, never per sift step.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Hashable, Iterable
from itertools import count
from typing import Any, NoReturn, SupportsIndex, cast

# An entry is ``[key, pos, job_id, priority, where]``; a list rather than an
# object with attributes because building and indexing lists is the cheapest
# thing pure Python can do per job. ``key`` is the tuple the heap orders by:
# ``(-priority, seq)`` while ready, ``(due, seq)`` while delayed; ``seq`` is
# the push order and survives promotion, which is what keeps FIFO exact.
_Entry = list[Any]
_READY = 1
_DELAYED = 2

_MIN_DUE = 5e-324
"""The smallest positive double: where ``shift_delayed`` stops a due time (a delayed due is > 0.0)."""

_PRIORITY_MIN = -(1 << 63)
_PRIORITY_MAX = (1 << 63) - 1


def _as_double(value: float) -> float:
    # ldexp(x, 0) is x, converted exactly as a C ``double`` argument of the
    # compiled module is (PyFloat_AsDouble): __float__, then __index__, the
    # same TypeError/OverflowError otherwise. float() would also accept str.
    return math.ldexp(value, 0)


def _priority_value(priority: object) -> int:
    if not isinstance(priority, int):
        try:
            priority = operator.index(cast(SupportsIndex, priority))
        except TypeError:
            raise TypeError(f"priority must be an int, not {type(priority).__name__}") from None
    if not _PRIORITY_MIN <= priority <= _PRIORITY_MAX:
        raise OverflowError(
            f"priority {priority} is outside the signed 64-bit range; "
            "use a value from -2**63 to 2**63 - 1"
        )
    # operator.index gives an exact int (True -> 1), as the compiled int64 does.
    return operator.index(priority)


def _check_due(due: float) -> None:
    if due != due:
        raise ValueError("due must not be NaN; pass 0.0 for a job that is ready now")


def _refuse_reentry() -> NoReturn:
    raise RuntimeError(
        "PriorityIndex was modified from inside a job id's __hash__ or __eq__; "
        "job ids must not use the index that holds them"
    )


def _already_queued(job_id: object) -> ValueError:
    return ValueError(
        f"job id {job_id!r} is already in the index; remove() it first to queue it again"
    )


def _sift_up(heap: list[_Entry], pos: int, entry: _Entry) -> None:
    key = entry[0]
    while pos > 0:
        parent_pos = (pos - 1) >> 1
        parent = heap[parent_pos]
        if not key < parent[0]:
            break
        heap[pos] = parent
        parent[1] = pos
        pos = parent_pos
    heap[pos] = entry
    entry[1] = pos


def _sift_down(heap: list[_Entry], pos: int, entry: _Entry) -> None:
    size = len(heap)
    key = entry[0]
    child_pos = 2 * pos + 1
    while child_pos < size:
        child = heap[child_pos]
        right_pos = child_pos + 1
        if right_pos < size and heap[right_pos][0] < child[0]:
            child_pos = right_pos
            child = heap[right_pos]
        if not child[0] < key:
            break
        heap[pos] = child
        child[1] = pos
        pos = child_pos
        child_pos = 2 * pos + 1
    heap[pos] = entry
    entry[1] = pos


def _heap_take(heap: list[_Entry], pos: int) -> _Entry:
    """Remove and return the entry at ``pos`` (0 <= pos < len(heap))."""
    taken = heap[pos]
    last = heap.pop()
    if pos < len(heap):
        if pos > 0 and last[0] < heap[(pos - 1) >> 1][0]:
            _sift_up(heap, pos, last)
        else:
            _sift_down(heap, pos, last)
    return taken


class PriorityIndex:
    """Ready jobs by priority (higher first) then FIFO; delayed jobs by due time.

    ``due <= 0.0`` means ready now; any other due time waits in the delayed
    heap until a ``pop``/``promote`` whose ``now`` has reached it. Job ids are
    any hashable values (with a hash that stays put while queued); an id can
    be in the index only once.

    Example:
        >>> index = PriorityIndex()
        >>> index.push("low", priority=0)
        >>> index.push("high", priority=10)
        >>> index.push("later", due=100.0)
        >>> index.pop(10, now=50.0)
        ['high', 'low']
        >>> index.peek_due()
        100.0
        >>> index.pop(10, now=100.0)
        ['later']
    """

    __slots__ = ("_index", "_ready", "_delayed", "_seq", "_calls_out")

    def __init__(self) -> None:
        self._index: dict[Hashable, _Entry] = {}
        self._ready: list[_Entry] = []
        self._delayed: list[_Entry] = []
        self._seq = count()
        # Dict operations run the job ids' __hash__/__eq__, which could call
        # back into this index; the compiled twin must refuse mutation then
        # (its heaps are only consistent between steps), so this one does too.
        self._calls_out = 0

    def _place(self, entry: _Entry, due: float) -> None:
        """Give ``entry`` its key and put it in its heap."""
        if due <= 0.0:
            entry[0] = (-entry[3], next(self._seq))
            entry[4] = _READY
            heap = self._ready
        else:
            entry[0] = (due, next(self._seq))
            entry[4] = _DELAYED
            heap = self._delayed
        heap.append(entry)
        _sift_up(heap, len(heap) - 1, entry)

    def push(self, job_id: Hashable, priority: int = 0, due: float = 0.0) -> None:
        """Add ``job_id``: ready now if ``due <= 0.0``, else delayed until ``due``.

        Raises:
            ValueError: ``job_id`` is already in the index, or ``due`` is NaN.
            OverflowError: ``priority`` is outside the signed 64-bit range.
            TypeError: ``priority`` is not an int, or ``due`` is not a number.
        """
        if type(due) is not float:
            due = _as_double(due)
        if type(priority) is not int or not _PRIORITY_MIN <= priority <= _PRIORITY_MAX:
            priority = _priority_value(priority)
        if due != due:
            _check_due(due)
        if self._calls_out:
            _refuse_reentry()
        entry: _Entry = [None, 0, job_id, priority, 0]
        # setdefault hashes the id once for both the duplicate check and the insert.
        self._calls_out += 1
        try:
            found = self._index.setdefault(job_id, entry)
        finally:
            self._calls_out -= 1
        if found is not entry:
            raise _already_queued(job_id)
        self._place(entry, due)

    def push_many(self, entries: Iterable[tuple[Hashable, int, float]]) -> None:
        """Add ``(job_id, priority, due)`` rows, all or none.

        Rows are checked (types, ranges, ids already queued or repeated in
        the batch) and on any error the index is left unchanged. Rows keep
        their order for FIFO.
        """
        rows = list(entries)
        if not rows:
            if self._calls_out:
                _refuse_reentry()
            return
        pending: list[tuple[Hashable, int, float]] = []
        for raw in rows:
            row: tuple[Any, ...] = raw if type(raw) is tuple else tuple(raw)
            if len(row) != 3:
                raise ValueError(
                    f"push_many rows are (job_id, priority, due) triples; got a row of {len(row)} items"
                )
            job_id, priority, due = row
            if type(due) is not float:
                due = _as_double(due)
            priority = _priority_value(priority)
            _check_due(due)
            pending.append((job_id, priority, due))
        if self._calls_out:
            _refuse_reentry()
        index = self._index
        placed: list[_Entry] = []
        # One setdefault per id, as in push: it finds ids already queued and
        # repeats within the batch (their entry is not placed yet, where == 0).
        # On any failure the ids inserted so far come out again.
        self._calls_out += 1
        try:
            try:
                for job_id, priority, _ in pending:
                    entry: _Entry = [None, 0, job_id, priority, 0]
                    found = index.setdefault(job_id, entry)
                    if found is not entry:
                        if found[4] == 0:
                            raise ValueError(
                                f"job id {job_id!r} appears more than once in this batch; "
                                "each job id can be queued once"
                            )
                        raise _already_queued(job_id)
                    placed.append(entry)
            except BaseException:
                for entry, (job_id, _, due) in zip(placed, pending):
                    try:
                        del index[job_id]
                    except BaseException:
                        # Only a job id whose __hash__/__eq__ misbehaves gets
                        # here; it is still in the dict, so keep it fully
                        # queued rather than half there.
                        self._place(entry, due)
                raise
        finally:
            self._calls_out -= 1
        for entry, (_, _, due) in zip(placed, pending):
            self._place(entry, due)

    def _promote(self, now: float) -> int:
        delayed = self._delayed
        ready = self._ready
        moved = 0
        # `<=` and not `>`: a NaN `now` must promote nothing.
        while delayed and delayed[0][0][0] <= now:
            entry = _heap_take(delayed, 0)
            entry[0] = (-entry[3], entry[0][1])  # seq kept: FIFO is push order
            entry[4] = _READY
            ready.append(entry)
            _sift_up(ready, len(ready) - 1, entry)
            moved += 1
        return moved

    def promote(self, now: float) -> int:
        """Move delayed entries with ``due <= now`` to the ready heap; return how many."""
        if type(now) is not float:
            now = _as_double(now)
        if self._calls_out:
            _refuse_reentry()
        return self._promote(now)

    def pop(self, n: int, now: float) -> list[Hashable]:
        """Promote what is due at ``now``, then remove and return up to ``n`` ready ids.

        Ids come highest priority first, then in push order. ``n <= 0`` returns
        ``[]`` (after promoting).
        """
        if type(now) is not float:
            now = _as_double(now)
        wanted = operator.index(n)
        if self._calls_out:
            _refuse_reentry()
        self._promote(now)
        ready = self._ready
        index = self._index
        taken: list[Hashable] = []
        self._calls_out += 1
        try:
            for _ in range(min(wanted, len(ready))):
                top = ready[0]
                del index[top[2]]
                last = ready.pop()
                if ready:
                    _sift_down(ready, 0, last)
                taken.append(top[2])
        finally:
            self._calls_out -= 1
        return taken

    def peek(self, now: float) -> Hashable | None:
        """Promote what is due at ``now``; return the id ``pop`` would take first, or ``None``."""
        if type(now) is not float:
            now = _as_double(now)
        if self._calls_out:
            _refuse_reentry()
        self._promote(now)
        return self._ready[0][2] if self._ready else None

    def peek_due(self) -> float | None:
        """The earliest due time among delayed entries, or ``None`` if there are none."""
        delayed = self._delayed
        return delayed[0][0][0] if delayed else None

    def remove(self, job_id: Hashable) -> bool:
        """Remove ``job_id`` from whichever heap holds it; ``False`` if it is absent."""
        if self._calls_out:
            _refuse_reentry()
        self._calls_out += 1
        try:
            entry = self._index.pop(job_id, None)
        finally:
            self._calls_out -= 1
        if entry is None:
            return False
        _heap_take(self._ready if entry[4] == _READY else self._delayed, entry[1])
        return True

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._index

    def __len__(self) -> int:
        return len(self._ready) + len(self._delayed)

    @property
    def ready_count(self) -> int:
        """How many entries are ready (not counting delayed ones already due)."""
        return len(self._ready)

    @property
    def delayed_count(self) -> int:
        """How many entries wait for their due time."""
        return len(self._delayed)

    def delayed_ids(self) -> list[Hashable]:
        """The ids of the entries waiting for their due time, in no particular order.

        Example:
            >>> index = PriorityIndex()
            >>> index.push("now"); index.push("later", due=100.0)
            >>> index.delayed_ids()
            ['later']
        """
        return [entry[2] for entry in self._delayed]

    def shift_delayed(self, seconds: float) -> int:
        """Bring every delayed entry's due time ``seconds`` earlier; return how many entries moved.

        Entries keep their push order (FIFO once ready). A due time that would reach
        0.0 or below becomes the smallest positive double: due at any ``now``.

        Raises:
            ValueError: ``seconds`` is negative or NaN.

        Example:
            >>> index = PriorityIndex()
            >>> index.push("later", due=100.0)
            >>> index.shift_delayed(60.0), index.peek_due()
            (1, 40.0)
        """
        if type(seconds) is not float:
            seconds = _as_double(seconds)
        if not seconds >= 0.0:
            raise ValueError(f"seconds must be >= 0, not {seconds!r}")
        if self._calls_out:
            _refuse_reentry()
        delayed = self._delayed
        for entry in delayed:
            due, seq = entry[0]
            entry[0] = (max(due - seconds, _MIN_DUE), seq)
        # Subtracting (and clamping) never reverses two due times, so the heap stays one by due
        # time; two due times it makes equal may now sit against their seqs, but equal dues are
        # always promoted together, and the ready heap orders by seq: no reheapify needed.
        return len(delayed)

    def clear(self) -> None:
        """Remove every entry."""
        if self._calls_out:
            _refuse_reentry()
        old = (self._index, self._ready, self._delayed)
        self._index = {}
        self._ready = []
        self._delayed = []
        # The index is empty and consistent before any id's __del__ can run.
        del old

    def priority_of(self, job_id: Hashable) -> int | None:
        """The priority ``job_id`` was pushed with, or ``None`` if it is absent."""
        self._calls_out += 1
        try:
            entry = self._index.get(job_id)
        finally:
            self._calls_out -= 1
        return None if entry is None else entry[3]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(ready={len(self._ready)}, delayed={len(self._delayed)})"

    def __reduce__(self) -> NoReturn:
        raise TypeError(
            f"{type(self).__name__} cannot be pickled or copied; "
            "rebuild it with push_many() from your job store"
        )
