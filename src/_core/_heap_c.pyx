"""The priority/delay index, compiled: an indexed binary heap over a slab of entries.

``_heap_py`` is the pure-Python twin with the same observable behaviour; keep
the two in step (``tests/core/test_heap.py`` runs every test against both and
checks that they agree on random operation sequences).

Layout, and why:

* Every queued job owns one ``_Entry`` slot in a slab (one C array, free list
  threaded through ``pos``), so pushing a job allocates no Python object
  besides the slot number stored in the id -> slot dict.
* Two min-heaps (ready, delayed) hold ``_Node`` values, not slot numbers: the
  sort key is copied into the node so that sifting compares neighbouring
  memory (two children share a cache line) instead of chasing each slot
  through the slab. Each move writes the node's new position back into its
  slot, which is what makes ``remove`` O(log n) without touching the dict.
* The dict is looked up on push, pop, remove and queries, never per sift step.
"""

from cpython.dict cimport PyDict_DelItem, PyDict_SetDefault
from cpython.list cimport PyList_New
from cpython.long cimport PyLong_AsLongLongAndOverflow, PyLong_Check
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.number cimport PyNumber_Index
from cpython.ref cimport PyObject, Py_INCREF, Py_XDECREF
from libc.stdint cimport int64_t
from libc.string cimport memcpy


cdef extern from "Python.h":
    const Py_ssize_t PY_SSIZE_T_MAX
    # Declared here with a raw pointer (the cpython.list version takes
    # ``object``) so that handing a slot's reference to the result list is an
    # explicit ownership transfer rather than a Cython refcounting subtlety.
    void _list_set_item_stealing "PyList_SET_ITEM" (object lst, Py_ssize_t i, PyObject* item)


cdef enum:
    _FREE = 0
    _READY = 1
    _DELAYED = 2
    # Taken by push_many while its ids go into the dict, not yet in a heap.
    _RESERVED = 3
    _MIN_CAPACITY = 16


# The smallest positive double: where shift_delayed stops a due time (a delayed due is > 0.0).
cdef double _MIN_DUE = 5e-324


cdef struct _Entry:
    # An owned reference, although the dict holds the same object as a key:
    # nothing that happens to the dict (a GC clear, a misbehaving __eq__) can
    # then leave a slot pointing at a freed id.
    PyObject* job_id
    int64_t priority
    Py_ssize_t pos     # position in its heap; next free slot while _FREE
    int where


cdef struct _Node:
    # Ready: ~priority (monotonically decreasing in priority and, unlike
    # -priority, defined for -2**63). Delayed: the bits of ``due``; every
    # delayed due is > 0.0 and not NaN, and positive IEEE doubles order like
    # their bit patterns read as signed integers.
    int64_t key
    int64_t seq
    Py_ssize_t slot


cdef struct _Heap:
    _Node* nodes
    Py_ssize_t size
    Py_ssize_t cap


cdef inline bint _before(const _Node* a, const _Node* b) noexcept nogil:
    return a.key < b.key or (a.key == b.key and a.seq < b.seq)


cdef inline int64_t _due_key(double due) noexcept nogil:
    cdef int64_t key = 0
    memcpy(&key, &due, sizeof(double))
    return key


cdef inline double _key_due(int64_t key) noexcept nogil:
    cdef double due = 0.0
    memcpy(&due, &key, sizeof(double))
    return due


cdef void _sift_up(_Heap* heap, _Entry* entries, Py_ssize_t pos, _Node node) noexcept nogil:
    cdef Py_ssize_t parent
    cdef _Node* nodes = heap.nodes
    while pos > 0:
        parent = (pos - 1) >> 1
        if not _before(&node, &nodes[parent]):
            break
        nodes[pos] = nodes[parent]
        entries[nodes[pos].slot].pos = pos
        pos = parent
    nodes[pos] = node
    entries[node.slot].pos = pos


cdef void _sift_down(_Heap* heap, _Entry* entries, Py_ssize_t pos, _Node node) noexcept nogil:
    cdef Py_ssize_t child
    cdef Py_ssize_t size = heap.size
    cdef _Node* nodes = heap.nodes
    while True:
        child = 2 * pos + 1
        if child >= size:
            break
        if child + 1 < size and _before(&nodes[child + 1], &nodes[child]):
            child += 1
        if not _before(&nodes[child], &node):
            break
        nodes[pos] = nodes[child]
        entries[nodes[pos].slot].pos = pos
        pos = child
    nodes[pos] = node
    entries[node.slot].pos = pos


cdef _Node _heap_take(_Heap* heap, _Entry* entries, Py_ssize_t pos) noexcept nogil:
    """Remove and return the node at ``pos`` (0 <= pos < size)."""
    cdef _Node taken = heap.nodes[pos]
    cdef _Node last
    heap.size -= 1
    if pos < heap.size:
        last = heap.nodes[heap.size]
        if pos > 0 and _before(&last, &heap.nodes[(pos - 1) >> 1]):
            _sift_up(heap, entries, pos, last)
        else:
            _sift_down(heap, entries, pos, last)
    return taken


cdef void* _grow(void* items, Py_ssize_t* cap, Py_ssize_t needed, size_t item_size, str part) except NULL:
    """``items`` reallocated for at least ``needed`` items (``*cap`` updated):
    the growth rule of the heaps and the slab (double, from _MIN_CAPACITY)."""
    cdef Py_ssize_t grown = cap[0] * 2 if cap[0] > 0 else _MIN_CAPACITY
    cdef void* moved
    if grown < needed:
        grown = needed
    if grown > PY_SSIZE_T_MAX // <Py_ssize_t>item_size:
        raise MemoryError("PriorityIndex cannot grow any further")
    moved = PyMem_Realloc(items, <size_t>grown * item_size)
    if moved == NULL:
        raise MemoryError(f"PriorityIndex could not grow its {part}")
    cap[0] = grown
    return moved


cdef int _heap_reserve(_Heap* heap, Py_ssize_t needed) except -1:
    if needed > heap.cap:
        heap.nodes = <_Node*>_grow(heap.nodes, &heap.cap, needed, sizeof(_Node), "heap")
    return 0


cdef int64_t _priority_value(object priority) except? -1:
    cdef int overflow = 0
    cdef long long value
    if not PyLong_Check(priority):
        try:
            priority = PyNumber_Index(priority)
        except TypeError:
            raise TypeError(f"priority must be an int, not {type(priority).__name__}") from None
    value = PyLong_AsLongLongAndOverflow(priority, &overflow)
    if overflow != 0:
        raise OverflowError(
            f"priority {priority} is outside the signed 64-bit range; "
            "use a value from -2**63 to 2**63 - 1"
        )
    return <int64_t>value


cdef int _check_due(double due) except -1:
    if due != due:
        raise ValueError("due must not be NaN; pass 0.0 for a job that is ready now")
    return 0


cdef object _already_queued(object job_id):
    return ValueError(
        f"job id {job_id!r} is already in the index; remove() it first to queue it again"
    )


cdef struct _Pending:
    int64_t priority
    double due
    Py_ssize_t slot


cdef class PriorityIndex:
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

    cdef _Entry* _entries
    cdef Py_ssize_t _entries_cap
    cdef Py_ssize_t _entries_used  # high-water mark: slots >= this were never used
    cdef Py_ssize_t _live          # slots not _FREE
    cdef Py_ssize_t _free_head
    cdef _Heap _ready
    cdef _Heap _delayed
    cdef dict _index
    cdef int64_t _next_seq
    # Dict operations run the job ids' __hash__/__eq__, which could call back
    # into this index. The slab and heaps are only consistent between steps,
    # so mutation is refused while such a call is in progress.
    cdef Py_ssize_t _calls_out

    def __cinit__(self):
        self._index = {}
        self._free_head = -1

    def __dealloc__(self):
        cdef Py_ssize_t slot
        if self._entries != NULL:
            for slot in range(self._entries_used):
                Py_XDECREF(self._entries[slot].job_id)
            PyMem_Free(self._entries)
        PyMem_Free(self._ready.nodes)
        PyMem_Free(self._delayed.nodes)

    # -- slab ---------------------------------------------------------------

    cdef int _reserve_entries(self, Py_ssize_t extra) except -1:
        if self._entries_cap - self._live < extra:
            self._entries = <_Entry*>_grow(self._entries, &self._entries_cap, self._live + extra, sizeof(_Entry), "slab")
        return 0

    cdef inline Py_ssize_t _next_slot(self) noexcept:
        """The slot ``_take_slot`` will return (capacity must be reserved)."""
        return self._free_head if self._free_head >= 0 else self._entries_used

    cdef Py_ssize_t _take_slot(self) noexcept:
        cdef Py_ssize_t slot = self._free_head
        if slot >= 0:
            self._free_head = self._entries[slot].pos
        else:
            slot = self._entries_used
            self._entries_used += 1
        self._entries[slot].job_id = NULL
        self._entries[slot].where = _RESERVED
        self._live += 1
        return slot

    cdef inline void _release_slot(self, Py_ssize_t slot) noexcept:
        """Free ``slot``; its job id reference must already be dealt with."""
        self._entries[slot].job_id = NULL
        self._entries[slot].where = _FREE
        self._entries[slot].pos = self._free_head
        self._free_head = slot
        self._live -= 1

    cdef void _place(self, Py_ssize_t slot, object job_id, int64_t priority, double due) noexcept:
        """Fill a taken slot and put it in its heap (heap capacity must be reserved)."""
        cdef _Node node
        cdef _Heap* heap
        Py_INCREF(job_id)
        self._entries[slot].job_id = <PyObject*>job_id
        self._entries[slot].priority = priority
        node.seq = self._next_seq
        node.slot = slot
        self._next_seq += 1
        if due <= 0.0:
            self._entries[slot].where = _READY
            node.key = ~priority
            heap = &self._ready
        else:
            self._entries[slot].where = _DELAYED
            node.key = _due_key(due)
            heap = &self._delayed
        heap.size += 1
        _sift_up(heap, self._entries, heap.size - 1, node)

    cdef int _check_not_calling_out(self) except -1:
        if self._calls_out:
            raise RuntimeError(
                "PriorityIndex was modified from inside a job id's __hash__ or __eq__; "
                "job ids must not use the index that holds them"
            )
        return 0

    # -- public API ---------------------------------------------------------

    def push(self, job_id, priority=0, double due=0.0):
        """Add ``job_id``: ready now if ``due <= 0.0``, else delayed until ``due``.

        Raises:
            ValueError: ``job_id`` is already in the index, or ``due`` is NaN.
            OverflowError: ``priority`` is outside the signed 64-bit range.
            TypeError: ``priority`` is not an int, or ``due`` is not a number.
        """
        cdef int64_t prio = _priority_value(priority)
        cdef Py_ssize_t slot
        cdef PyObject* found
        cdef object slot_number
        _check_due(due)
        self._check_not_calling_out()
        self._reserve_entries(1)
        _heap_reserve(&self._ready if due <= 0.0 else &self._delayed,
                      (self._ready.size if due <= 0.0 else self._delayed.size) + 1)
        slot_number = self._next_slot()
        # setdefault hashes the id once for both the duplicate check and the insert.
        self._calls_out += 1
        try:
            found = PyDict_SetDefault(self._index, job_id, slot_number)
        finally:
            self._calls_out -= 1
        if found != <PyObject*>slot_number:
            raise _already_queued(job_id)
        slot = self._take_slot()
        self._place(slot, job_id, prio, due)

    def push_many(self, entries):
        """Add ``(job_id, priority, due)`` rows, all or none.

        Rows are checked (types, ranges, ids already queued or repeated in
        the batch) and on any error the index is left unchanged. Rows keep
        their order for FIFO.
        """
        cdef list rows = list(entries)
        cdef list ids = []
        cdef Py_ssize_t count = len(rows)
        cdef Py_ssize_t i, j, n_ready = 0, n_delayed = 0
        cdef _Pending* pending = NULL
        cdef object row
        cdef object slot_number
        cdef PyObject* found
        cdef double due_value
        if count == 0:
            self._check_not_calling_out()
            return
        pending = <_Pending*>PyMem_Malloc(<size_t>count * sizeof(_Pending))
        if pending == NULL:
            raise MemoryError("PriorityIndex.push_many could not allocate its batch")
        try:
            for i in range(count):
                row = rows[i]
                if type(row) is not tuple:
                    row = tuple(row)
                if len(row) != 3:
                    raise ValueError(
                        f"push_many rows are (job_id, priority, due) triples; got a row of {len(row)} items"
                    )
                job_id, priority, due = row
                due_value = due
                pending[i].priority = _priority_value(priority)
                _check_due(due_value)
                pending[i].due = due_value
                ids.append(job_id)
                if due_value <= 0.0:
                    n_ready += 1
                else:
                    n_delayed += 1
            self._check_not_calling_out()
            self._reserve_entries(count)
            _heap_reserve(&self._ready, self._ready.size + n_ready)
            _heap_reserve(&self._delayed, self._delayed.size + n_delayed)
            # One setdefault per id, as in push: it finds ids already queued
            # and repeats within the batch (their slot is still _RESERVED).
            # On any failure the ids inserted so far come out again.
            self._calls_out += 1
            try:
                i = 0
                try:
                    while i < count:
                        pending[i].slot = self._take_slot()
                        slot_number = pending[i].slot
                        found = PyDict_SetDefault(self._index, ids[i], slot_number)
                        if found != <PyObject*>slot_number:
                            if self._entries[<Py_ssize_t>(<object>found)].where == _RESERVED:
                                raise ValueError(
                                    f"job id {ids[i]!r} appears more than once in this batch; "
                                    "each job id can be queued once"
                                )
                            raise _already_queued(ids[i])
                        i += 1
                except BaseException:
                    self._release_slot(pending[i].slot)
                    for j in range(i):
                        try:
                            PyDict_DelItem(self._index, ids[j])
                        except BaseException:
                            # Only a job id whose __hash__/__eq__ misbehaves
                            # gets here; it is still in the dict, so keep it
                            # fully queued rather than half there.
                            self._place(pending[j].slot, ids[j], pending[j].priority, pending[j].due)
                        else:
                            self._release_slot(pending[j].slot)
                    raise
            finally:
                self._calls_out -= 1
            for i in range(count):
                self._place(pending[i].slot, ids[i], pending[i].priority, pending[i].due)
        finally:
            PyMem_Free(pending)

    cdef Py_ssize_t _promote(self, double now) except -1:
        cdef Py_ssize_t moved = 0
        cdef _Node node
        while self._delayed.size > 0 and _key_due(self._delayed.nodes[0].key) <= now:
            _heap_reserve(&self._ready, self._ready.size + 1)
            node = _heap_take(&self._delayed, self._entries, 0)
            node.key = ~self._entries[node.slot].priority  # seq kept: FIFO is push order
            self._entries[node.slot].where = _READY
            self._ready.size += 1
            _sift_up(&self._ready, self._entries, self._ready.size - 1, node)
            moved += 1
        return moved

    def promote(self, double now):
        """Move delayed entries with ``due <= now`` to the ready heap; return how many."""
        self._check_not_calling_out()
        return self._promote(now)

    def pop(self, n, double now):
        """Promote what is due at ``now``, then remove and return up to ``n`` ready ids.

        Ids come highest priority first, then in push order. ``n <= 0`` returns
        ``[]`` (after promoting).
        """
        cdef int overflow = 0
        cdef long long wanted = PyLong_AsLongLongAndOverflow(n, &overflow)
        cdef Py_ssize_t count, i, slot
        cdef list taken
        self._check_not_calling_out()
        self._promote(now)
        if overflow > 0 or wanted > self._ready.size:
            count = self._ready.size
        elif overflow < 0 or wanted <= 0:
            count = 0
        else:
            count = <Py_ssize_t>wanted
        taken = PyList_New(count)
        self._calls_out += 1
        try:
            for i in range(count):
                slot = self._ready.nodes[0].slot
                PyDict_DelItem(self._index, <object>self._entries[slot].job_id)
                _heap_take(&self._ready, self._entries, 0)
                _list_set_item_stealing(taken, i, self._entries[slot].job_id)
                self._release_slot(slot)
        finally:
            self._calls_out -= 1
        return taken

    def peek(self, double now):
        """Promote what is due at ``now``; return the id ``pop`` would take first, or ``None``."""
        self._check_not_calling_out()
        self._promote(now)
        if self._ready.size == 0:
            return None
        return <object>self._entries[self._ready.nodes[0].slot].job_id

    def peek_due(self):
        """The earliest due time among delayed entries, or ``None`` if there are none."""
        if self._delayed.size == 0:
            return None
        return _key_due(self._delayed.nodes[0].key)

    def remove(self, job_id):
        """Remove ``job_id`` from whichever heap holds it; ``False`` if it is absent."""
        cdef Py_ssize_t slot
        cdef PyObject* held
        cdef object slot_number
        self._check_not_calling_out()
        self._calls_out += 1
        try:
            slot_number = self._index.pop(job_id, None)
        finally:
            self._calls_out -= 1
        if slot_number is None:
            return False
        slot = slot_number
        _heap_take(&self._ready if self._entries[slot].where == _READY else &self._delayed,
                   self._entries, self._entries[slot].pos)
        held = self._entries[slot].job_id
        self._release_slot(slot)
        # Last, with the index consistent: this may run the id's __del__.
        Py_XDECREF(held)
        return True

    def __contains__(self, job_id):
        return job_id in self._index

    def __len__(self):
        return self._ready.size + self._delayed.size

    @property
    def ready_count(self):
        """How many entries are ready (not counting delayed ones already due)."""
        return self._ready.size

    @property
    def delayed_count(self):
        """How many entries wait for their due time."""
        return self._delayed.size

    def delayed_ids(self):
        """The ids of the entries waiting for their due time, in no particular order.

        Example:
            >>> index = PriorityIndex()
            >>> index.push("now"); index.push("later", due=100.0)
            >>> index.delayed_ids()
            ['later']
        """
        cdef Py_ssize_t i
        cdef list out = []
        for i in range(self._delayed.size):
            out.append(<object>self._entries[self._delayed.nodes[i].slot].job_id)
        return out

    def shift_delayed(self, double seconds):
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
        cdef Py_ssize_t i
        cdef _Node* nodes = self._delayed.nodes
        cdef double due
        if not seconds >= 0.0:
            raise ValueError(f"seconds must be >= 0, not {seconds!r}")
        self._check_not_calling_out()
        for i in range(self._delayed.size):
            due = _key_due(nodes[i].key) - seconds
            # Delayed keys are the bits of a due > 0.0 (they order like the doubles only then).
            nodes[i].key = _due_key(due if due > _MIN_DUE else _MIN_DUE)
        # Subtracting (and clamping) never reverses two due times, so the heap stays one by due
        # time; two due times it makes equal may now sit against their seqs, but equal dues are
        # always promoted together, and the ready heap orders by seq: no reheapify needed.
        return self._delayed.size

    def clear(self):
        """Remove every entry."""
        cdef _Entry* entries = self._entries
        cdef Py_ssize_t used = self._entries_used
        cdef Py_ssize_t slot
        self._check_not_calling_out()
        PyMem_Free(self._ready.nodes)
        PyMem_Free(self._delayed.nodes)
        self._ready.nodes = NULL
        self._ready.size = self._ready.cap = 0
        self._delayed.nodes = NULL
        self._delayed.size = self._delayed.cap = 0
        self._entries = NULL
        self._entries_cap = self._entries_used = self._live = 0
        self._free_head = -1
        self._index = {}
        # The index is empty and consistent before any id's __del__ can run.
        if entries != NULL:
            for slot in range(used):
                Py_XDECREF(entries[slot].job_id)
            PyMem_Free(entries)

    def priority_of(self, job_id):
        """The priority ``job_id`` was pushed with, or ``None`` if it is absent."""
        cdef object slot_number
        self._calls_out += 1
        try:
            slot_number = self._index.get(job_id)
        finally:
            self._calls_out -= 1
        if slot_number is None:
            return None
        return self._entries[<Py_ssize_t>slot_number].priority

    def __repr__(self):
        return f"{type(self).__name__}(ready={self._ready.size}, delayed={self._delayed.size})"

    def __reduce__(self):
        raise TypeError(
            f"{type(self).__name__} cannot be pickled or copied; "
            "rebuild it with push_many() from your job store"
        )
