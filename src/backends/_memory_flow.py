"""The memory backend's flow control: dependencies (``depends_on``) and limits (:class:`Limit`).

:class:`~fastjobs.backends.memory.MemoryBackend` inherits :class:`FlowControl`,
which keeps its own state beside the backend's store and runs under the
backend's one lock, as every method of the backend does. The plain path
(enqueue, claim, ack of jobs with neither) only tests whether this state is
empty; everything else about it is here.

A waiting job (``WAITING``) is in no index: it counts its pending and failed
parents and is released (or cancelled) when the last one finishes. A job with
a limit is indexed per (queue, limit key), never in its queue's plain index,
and claims merge those indexes with the plain one by priority, each key
within its concurrency cap and rate window.

Example:
    >>> from fastjobs.backends.memory import MemoryBackend
    >>> issubclass(MemoryBackend, FlowControl)
    True
"""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING, Any, cast

from .._core import CANCELLED, DEAD, QUEUED, RETRY_PENDING, SCHEDULED, SUCCEEDED, WAITING, JobSlot, PriorityIndex
from .base import DependencyMode, Limit, NewJob

_AFTER_SUCCEEDED, _AFTER_FAILED = int(DependencyMode.SUCCEEDED), int(DependencyMode.FAILED)


class _Deps:
    """A job's parents and how many of them are still pending or failed."""

    __slots__ = ("parents", "pending", "failed", "after")

    def __init__(self, parents: tuple[str, ...], after: int) -> None:
        self.parents = parents
        self.pending = 0
        self.failed = 0
        self.after = after


class FlowControl:
    """Dependencies and limits over a :class:`MemoryBackend`'s store (a mixin; see the module docstring)."""

    # The backend's own store, which this state refers into (set in its __init__).
    _jobs: dict[str, JobSlot]
    _indexes: dict[str, PriorityIndex]
    _finished: collections.deque[tuple[float, str | list[str]]]
    _woken: bool

    if TYPE_CHECKING:
        # The backend's; declared here so that the mixin type-checks on its own.
        def _index(self, queue: str) -> PriorityIndex: ...
        def _finish(self, job: JobSlot, now: float) -> None: ...
        def _close(self, job: JobSlot, now: float) -> None: ...

    def _init_flow(self) -> None:
        self._deps: dict[str, _Deps] = {}
        """Job id -> its dependency counts, for jobs enqueued with depends_on (kept while the job is)."""
        self._dependants: dict[str, list[str]] = {}
        """Parent id -> the waiting jobs registered on it (dropped when the parent finishes)."""
        self._limit_of: dict[str, tuple[str, str]] = {}
        """Job id -> (queue, limit key), for jobs with a Limit."""
        self._limited: dict[str, dict[str, PriorityIndex]] = {}
        """Queue -> limit key -> the key's ready and delayed jobs (never in ``_indexes``)."""
        self._key_limit: dict[tuple[str, str], Limit] = {}
        self._key_active: dict[tuple[str, str], int] = {}
        self._key_leases: dict[tuple[str, str], collections.deque[float]] = {}
        """(queue, key) -> lease times within the rate window, oldest first."""

    def _limited_wait(self, queue: str, per_key: dict[str, PriorityIndex], now: float, timeout: float) -> float:
        """How long an idle worker may wait as far as ``queue``'s limited jobs go: 0 if one
        could be leased now, else until a delayed one falls due or a rate window opens.
        A key held by its concurrency cap needs no timer: the ack that frees it wakes us."""
        for name, index in per_key.items():
            due = index.peek_due()
            if due is not None:
                timeout = min(timeout, max(0.0, due - now))
            if not index.ready_count:
                continue
            key = (queue, name)
            if self._allowance(key, now) > 0:
                return 0.0
            limit = self._key_limit[key]
            leases = self._key_leases.get(key)
            if limit.rate and leases and len(leases) >= limit.rate and (
                not limit.concurrency or self._key_active.get(key, 0) < limit.concurrency
            ):
                timeout = min(timeout, max(0.0, leases[0] + limit.per - now))
        return timeout

    def _enqueue_flow(self, new: NewJob, job: JobSlot, now: float) -> None:
        """Store a job with a limit or parents: the limit's index, or waiting on its parents."""
        if new.limit is not None:
            key = (new.queue, new.limit.key)
            self._limit_of[new.id] = key
            self._key_limit[key] = new.limit
        if not new.depends_on:
            self._push(job)
            return
        deps = self._deps[new.id] = _Deps(tuple(new.depends_on), int(new.after))
        store = self._jobs
        pending: list[str] = []
        for parent_id in new.depends_on:
            parent = store.get(parent_id)
            # A parent later in this batch is not stored yet: pending, like any unfinished one.
            state = parent.state if parent is not None else QUEUED
            if state == SUCCEEDED:
                continue
            if state in (DEAD, CANCELLED):
                deps.failed += 1
            else:
                pending.append(parent_id)
        deps.pending = len(pending)
        job.state = WAITING
        if (deps.after == _AFTER_SUCCEEDED and deps.failed) or (not pending and not self._resolve(job, deps, now)):
            job.state = CANCELLED
            self._finish(job, now)
            self._finished.append((now, job.id))
        elif pending:
            for parent_id in pending:
                self._dependants.setdefault(parent_id, []).append(new.id)

    def _push(self, job: JobSlot) -> None:
        """Put a job into the index it is claimed from, by its state and run_at."""
        due = job.run_at if job.state in (SCHEDULED, RETRY_PENDING) else 0.0
        key = self._limit_of.get(job.id) if self._limit_of else None
        if key is None:
            self._index(job.queue).push(job.id, job.priority, due)
            return
        per_key = self._limited.setdefault(key[0], {})
        index = per_key.get(key[1])
        if index is None:
            index = per_key[key[1]] = PriorityIndex()
        index.push(job.id, job.priority, due)

    def _unindex(self, job: JobSlot) -> None:
        key = self._limit_of.get(job.id) if self._limit_of else None
        if key is None:
            self._indexes[job.queue].remove(job.id)
        else:
            self._limited[key[0]][key[1]].remove(job.id)

    def _resolve(self, job: JobSlot, deps: _Deps, now: float) -> bool:
        """Release a waiting job with no pending parent left; False if it must be cancelled instead
        (``after=FAILED`` and no parent failed)."""
        if deps.after == _AFTER_FAILED and not deps.failed:
            return False
        delay = job.run_at - job.enqueued_at  # its own delay counts from the release
        job.run_at = now + delay
        job.state = SCHEDULED if delay > 0 else QUEUED
        self._push(job)
        self._woken = True
        return True

    def _settle(self, parent_id: str, failed: bool, now: float) -> None:
        """Tell the waiting dependants of a job that just finished; cancelled ones tell theirs (iteratively)."""
        stack = [(parent_id, failed)]
        store = self._jobs
        while stack:
            finished_id, parent_failed = stack.pop()
            for child_id in self._dependants.pop(finished_id, ()):
                child = store.get(child_id)
                deps = self._deps.get(child_id)
                if child is None or deps is None or child.state != WAITING:
                    continue
                deps.pending -= 1
                if parent_failed:
                    deps.failed += 1
                if (deps.after == _AFTER_SUCCEEDED and parent_failed) or (
                    deps.pending == 0 and not self._resolve(child, deps, now)
                ):
                    child.state = CANCELLED
                    self._close(child, now)
                    self._finished.append((now, child_id))
                    stack.append((child_id, True))

    def _allowance(self, key: tuple[str, str], now: float) -> int:
        """How many more jobs of ``key`` its limit lets a claim lease right now."""
        limit = self._key_limit[key]
        allowed = 1 << 62
        if limit.concurrency:
            allowed = limit.concurrency - self._key_active.get(key, 0)
        if limit.rate:
            leases = self._key_leases.get(key)
            if leases:
                horizon = now - limit.per
                while leases and leases[0] <= horizon:
                    leases.popleft()
                allowed = min(allowed, limit.rate - len(leases))
            else:
                allowed = min(allowed, limit.rate)
        return allowed

    def _claim_merged(self, queue: str, index: PriorityIndex | None, n: int, now: float) -> list[str]:
        """Up to ``n`` ready jobs of a queue that has limited keys: plain and limited jobs
        merged by priority, then enqueue time, each key within its limit (counted here)."""
        per_key = self._limited[queue]
        room = {name: left for name in per_key if (left := self._allowance((queue, name), now)) > 0}
        store = self._jobs
        taken: list[str] = []
        while len(taken) < n:
            if not room:  # every key with jobs is at its limit: the plain jobs in one go
                if index is not None:
                    taken += cast("list[str]", index.pop(n - len(taken), now))
                break
            best: str | None = None
            best_rank: tuple[int, float] = (0, 0.0)
            source: str | None = None
            head: Any = None if index is None else index.peek(now)  # a str job id, or None
            if head is not None:
                job = store[head]
                best, best_rank = head, (-job.priority, job.enqueued_at)
            for name in list(room):
                head = per_key[name].peek(now)
                if head is None:
                    del room[name]
                    continue
                job = store[head]
                rank = (-job.priority, job.enqueued_at)
                if best is None or rank < best_rank:
                    best, best_rank, source = head, rank, name
            if best is None:
                break
            if source is None:
                index.pop(1, now)  # type: ignore[union-attr]
            else:
                per_key[source].pop(1, now)
                key = (queue, source)
                self._key_active[key] = self._key_active.get(key, 0) + 1
                if self._key_limit[key].rate:
                    leases = self._key_leases.get(key)
                    if leases is None:
                        leases = self._key_leases[key] = collections.deque()
                    leases.append(now)
                room[source] -= 1
                if not room[source]:
                    del room[source]
            taken.append(best)
        for name in [name for name, keyed in per_key.items() if not len(keyed)]:
            del per_key[name]
        if not per_key:
            del self._limited[queue]
        return taken

    def _left_active(self, job_id: str) -> None:
        """A limited job left ``active``: its key's slot is free again."""
        key = self._limit_of.get(job_id)
        if key is not None:
            self._key_active[key] -= 1
            if key[0] in self._limited:
                self._woken = True  # a held job of this key may run now: wake an idle worker

    def _drop_idle_limits(self, now: float) -> None:
        """Forget the limit state of keys with nothing queued or running and no lease in the window."""
        referenced = set(self._limit_of.values()) if self._key_limit else set()  # kept while any job of the key is
        for key in [k for k in self._key_limit if k not in referenced]:
            if self._key_active.get(key, 0) == 0 and self._allowance(key, now) >= self._key_limit[key].rate:
                del self._key_limit[key]
                self._key_active.pop(key, None)
                self._key_leases.pop(key, None)
