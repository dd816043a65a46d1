"""The garbage collector's settings while workers run: fewer young-generation collections.

A worker allocates a few dozen small container objects per job (its claim, record, Task,
outcome, ack), so CPython's default young-generation threshold of 700 allocations runs a
collection every ten-odd jobs, each walking every young object and some older ones: about a
third of a no-op job's wall time in a profile of the memory backend. While at least one
:class:`~fastjobs.Worker` runs in the process, and while :meth:`App.enqueue_many
<fastjobs.App.enqueue_many>` encodes and stores a batch of :data:`ENQUEUE_BATCH` calls or
more, the threshold is raised to :data:`THRESHOLD` (never lowered); when the last of them
ends, the settings it found are put back. Cycles are still collected, just in larger
batches; the older generations keep their own thresholds.
``Worker(tune_gc=False)`` leaves the collector alone.

Example:
    >>> import gc
    >>> from fastjobs.gctune import tuned, THRESHOLD
    >>> before = gc.get_threshold()
    >>> with tuned():
    ...     gc.get_threshold()[0] >= THRESHOLD
    True
    >>> gc.get_threshold() == before
    True
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

THRESHOLD = 50_000
"""Young-generation allocations between collections while workers run (CPython's default: 700)."""

ENQUEUE_BATCH = 64
"""``App.enqueue_many`` batches of at least this many calls are encoded and stored :func:`tuned`: a
batch's Calls and NewJobs all live until it is stored, so collections in between walked and
promoted them all (12-16 % of a memory:// enqueue's time, 5 % after)."""

_lock = threading.Lock()
_holders = 0
_saved: tuple[int, ...] = ()


@contextlib.contextmanager
def tuned() -> Iterator[None]:
    """Raise the young-generation threshold while the block runs (nested and concurrent uses share it)."""
    global _holders, _saved
    with _lock:
        if _holders == 0:
            _saved = gc.get_threshold()
            if _saved[0] and _saved[0] < THRESHOLD:  # 0: collection disabled by the application
                gc.set_threshold(THRESHOLD, *_saved[1:])
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0 and _saved:
                gc.set_threshold(*_saved)
