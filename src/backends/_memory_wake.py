"""The memory backend's wake-ups: how a worker waiting for work hears of it.

:meth:`WakeUps.wait` parks one future per wait, per event loop, and returns when the next
enqueue (or anything else that may make a job claimable: a retry, a release, a resume, a
finished dependency) releases it, or when its timeout passes: the poll interval, or sooner if
a delayed job falls due, a rate window opens or a lease may have expired. A wake-up from
another thread reaches the loop through ``call_soon_threadsafe``. The waiting Task resumes one
loop turn after the release; an ``asyncio.Event`` under ``wait_for`` took three.

Example:
    >>> from fastjobs.backends.memory import MemoryBackend
    >>> issubclass(MemoryBackend, WakeUps)
    True
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._core import JobSlot, PriorityIndex


def _release(futures: list[asyncio.Future[None]]) -> None:
    """End the waits of ``futures`` (on their loop's thread)."""
    for future in futures:
        if not future.done():
            future.set_result(None)
    futures.clear()



class WakeUps:
    """Waits for claimable work over a :class:`MemoryBackend`'s store (a mixin; see the module docstring)."""

    # The backend's, declared here so that the mixin type-checks on its own.
    _lock: threading.Lock
    _indexes: dict[str, PriorityIndex]
    _paused: set[str]
    _limited: dict[str, dict[str, PriorityIndex]]
    _active: dict[str, JobSlot]
    _next_lease_check: float

    if TYPE_CHECKING:
        def _limited_wait(self, queue: str, per_key: dict[str, PriorityIndex], now: float, timeout: float) -> float: ...

    def _init_wake(self) -> None:
        # Per event loop that waits: the futures of its waits, released from any thread, and the
        # loop's thread. Weak keys: a loop that was closed and dropped (asyncio.run in a script)
        # leaves no entry.
        self._waiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[list[asyncio.Future[None]], int]] = (
            weakref.WeakKeyDictionary()
        )

    def _wake(self) -> None:
        if not self._waiters:
            return
        me = threading.get_ident()
        for loop, (futures, thread_id) in list(self._waiters.items()):
            if thread_id == me:
                _release(futures)
            elif not loop.is_closed():
                try:
                    loop.call_soon_threadsafe(_release, futures)
                except RuntimeError:  # closed between the check and the call
                    pass

    async def wait(self, queues: Sequence[str], timeout: float) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            entry = self._waiters.get(loop)
            if entry is None:
                entry = ([], threading.get_ident())
                self._waiters[loop] = entry
            now = time.time()
            paused = self._paused
            for queue in queues:
                index = self._indexes.get(queue)
                if index is None or queue in paused:
                    continue
                if index.ready_count:
                    return
                due = index.peek_due()
                if due is not None:
                    timeout = min(timeout, max(0.0, due - now))
            for queue in queues:
                per_key = self._limited.get(queue)
                if per_key and queue not in paused:
                    timeout = min(timeout, self._limited_wait(queue, per_key, now, timeout))
                    if timeout <= 0:
                        return
            if self._active:
                timeout = min(timeout, max(0.0, self._next_lease_check - now))
            if timeout <= 0:
                return
            woken: asyncio.Future[None] = loop.create_future()
            entry[0].append(woken)  # under the lock: an enqueue from another thread sees it
        timer = loop.call_later(timeout, _release, [woken])
        try:
            await woken
        finally:
            timer.cancel()
            if not woken.done():  # cancelled: the next release must not find it
                woken.cancel()
            with contextlib.suppress(ValueError):
                entry[0].remove(woken)
