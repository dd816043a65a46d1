"""Enqueue's per-job work: new job ids, and calls made NewJobs (pure-Python twin of ``_enqueue_c``).

A job id is 32 hex digits: 12 of the enqueue's milliseconds (so ids sort by time), 8 random
ones drawn once per batch, and 12 of a per-process counter that starts at a random point.
A batch reserves its run of counter values at once, so ids of batches enqueued by several
threads at the same time stay distinct.

``new_jobs`` turns :class:`fastjobs.Call` objects into :class:`fastjobs.backends.NewJob`
tuples: the same tuples as ``call.to_new_job`` gives each, which is all the twin does. The
compiled twin builds them in one C loop for the common call (positional arguments within the
handler's range, no keywords, no typed arguments, no meta but the caller's or a hook's (a
chain step's or batch callback's own keys change the call's checks and body), options whose
JobTemplate the task holds) and hands every other call to ``to_new_job``.

Example:
    >>> from fastjobs._core._enqueue_py import new_job_ids
    >>> a, b = new_job_ids(2)
    >>> len(a) == 32 and a[:20] == b[:20] and int(b[20:], 16) == (int(a[20:], 16) + 1) % 2**48
    True
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

_MASK48 = (1 << 48) - 1
_lock = threading.Lock()
_next = int.from_bytes(os.urandom(6), "big")


def new_job_ids(n: int) -> list[str]:
    """``n`` new job ids, time-ordered by their first 12 hex digits (milliseconds)."""
    global _next
    head = f"{int(time.time() * 1000) & _MASK48:012x}{os.urandom(4).hex()}"
    with _lock:
        start = _next
        _next = (start + n) & _MASK48
    if start + n <= _MASK48 + 1:  # %-formatting through map(): no Python frame per id
        return list(map((head + "%012x").__mod__, range(start, start + n)))
    return [f"{head}{(start + i) & _MASK48:012x}" for i in range(n)]


def new_jobs(calls: list[Any], ids: list[str], now: float, max_size: int, new_job: type) -> list[Any]:
    """``[call.to_new_job(max_size, job_id, now) for call, job_id in zip(calls, ids)]``.

    ``new_job`` is the NewJob class (the compiled twin builds its tuples itself).
    """
    return [call.to_new_job(max_size, job_id, now) for call, job_id in zip(calls, ids)]
