"""The memory backend's actions on jobs by id: ``retry_jobs``, ``cancel_jobs``, ``delete_jobs``.

Each call takes the backend's one lock once for all its ids (so each job's
change is atomic, as the contract asks) and publishes its events once.

Example:
    >>> from fastjobs.backends.memory import MemoryBackend
    >>> issubclass(MemoryBackend, JobActions)
    True
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .._core import ACTIVE, CANCELLED, DEAD, QUEUED, RETRY_PENDING, SCHEDULED, WAITING, JobSlot
from .values import MAX_IDS, JobEdit, Limit

if TYPE_CHECKING:
    from ._memory_search import KeyIndex

_LIVE = frozenset((SCHEDULED, QUEUED, ACTIVE, RETRY_PENDING, WAITING))
_INDEXED = frozenset((SCHEDULED, QUEUED, RETRY_PENDING))


def check_ids(job_ids: Sequence[str]) -> list[str]:
    """``job_ids`` as a list, or ValueError above :data:`MAX_IDS`."""
    ids = list(job_ids)
    if len(ids) > MAX_IDS:
        raise ValueError(f"at most {MAX_IDS} job ids per call, not {len(ids)}: page through them")
    return ids


class JobActions:
    """Retry, cancel and delete by id over a :class:`MemoryBackend`'s store (a mixin)."""

    _lock: threading.Lock
    _jobs: dict[str, JobSlot]
    _active: dict[str, JobSlot]
    _unique: dict[tuple[str, str], str]
    _unique_until: dict[tuple[str, str], float]
    _finished: collections.deque[tuple[float, str | list[str]]]
    _limit_of: dict[str, tuple[str, str]]
    _key_limit: dict[tuple[str, str], Limit]
    _dependants: dict[str, list[str]]
    _woken: bool
    _eventing: bool

    if TYPE_CHECKING:
        def _holder(self, key: tuple[str, str], now: float) -> str | None: ...
        def _push(self, job: JobSlot) -> None: ...
        def _unindex(self, job: JobSlot) -> None: ...
        def _unindex_search(self, job: JobSlot) -> None: ...
        def _live_index(self, queue: str) -> KeyIndex: ...
        def _finish(self, job: JobSlot, now: float) -> None: ...
        def _settle(self, parent_id: str, failed: bool, now: float) -> None: ...
        def _left_active(self, job_id: str) -> None: ...
        def _forget(self, job_id: str) -> None: ...
        def _emit_job(self, kind: str, job: JobSlot, now: float) -> None: ...
        def _publish(self) -> None: ...
        def _close_batch(self) -> bool: ...
        def _wake(self) -> None: ...

    async def retry_jobs(self, job_ids: Sequence[str], edit: JobEdit | None = None) -> list[bool]:
        ids = check_ids(job_ids)
        if edit is not None and len(ids) != 1:
            raise ValueError("retry_jobs(edit=) takes exactly one job id")
        done: list[bool] = []
        with self._lock:
            now = time.time()
            for job_id in ids:
                job = self._jobs.get(job_id)
                if job is None or job.state not in (DEAD, CANCELLED):
                    done.append(False)
                    continue
                queue = job.queue if edit is None else edit.queue
                key = None if job.unique_key is None else (queue, job.unique_key)
                if key is not None and self._holder(key, now) not in (None, job_id):
                    done.append(False)  # a live job (or a success's window) holds its key
                    continue
                self._unindex_search(job)
                if edit is not None:
                    self._edit(job, edit)
                if key is not None:
                    self._unique[key] = job_id
                    self._unique_until.pop(key, None)
                job.state = QUEUED
                job.attempt = 0
                job.finished_at = None
                job.lease_until = None
                job.run_at = now
                self._push(job)
                self._live_index(job.queue).add(round(job.enqueued_at * 1e6), job_id)
                if self._eventing:
                    self._emit_job("enqueued", job, now)
                done.append(True)
            if self._eventing:
                self._publish()
        if any(done):
            self._wake()
        return done

    def _edit(self, job: JobSlot, edit: JobEdit) -> None:
        """Replace a finished job's body, queue, priority and max_attempts (before it is pushed again)."""
        if edit.queue != job.queue:
            limited = self._limit_of.get(job.id)
            if limited is not None:
                moved = (edit.queue, limited[1])
                self._limit_of[job.id] = moved
                if moved not in self._key_limit:
                    self._key_limit[moved] = self._key_limit[limited]
            job.queue = edit.queue
        job.body = edit.body
        job.priority = edit.priority
        job.max_attempts = edit.max_attempts

    async def cancel_jobs(self, job_ids: Sequence[str]) -> list[bool]:
        ids = check_ids(job_ids)
        done: list[bool] = []
        with self._lock:
            for job_id in ids:
                job = self._jobs.get(job_id)
                if job is None or job.state not in _LIVE:
                    done.append(False)
                    continue
                if job.state == ACTIVE:
                    del self._active[job_id]
                    job.lease_until = None
                    if self._limit_of:
                        self._left_active(job_id)
                elif job.state != WAITING:
                    self._unindex(job)
                job.state = CANCELLED
                now = time.time()
                self._finish(job, now)
                self._finished.append((now, job_id))
                done.append(True)
            woken = self._close_batch()
        if woken:
            self._wake()
        return done

    async def delete_jobs(self, job_ids: Sequence[str]) -> list[bool]:
        ids = check_ids(job_ids)
        done: list[bool] = []
        with self._lock:
            now = time.time()
            for job_id in ids:
                job = self._jobs.get(job_id)
                if job is None or job.state == ACTIVE:
                    done.append(False)
                    continue
                if job.state in _INDEXED:
                    self._unindex(job)
                if job.unique_key is not None:
                    key = (job.queue, job.unique_key)
                    if self._unique.get(key) == job_id:
                        del self._unique[key]
                        self._unique_until.pop(key, None)
                if self._eventing:
                    self._emit_job("deleted", job, now)
                self._forget(job_id)
                if job_id in self._dependants:  # a live parent: its dependants see it cancelled
                    self._settle(job_id, True, now)
                done.append(True)
            woken = self._close_batch()
        if woken:
            self._wake()
        return done

