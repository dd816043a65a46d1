"""The embedded backend: jobs in this process's memory (``memory://``, the default).

For tests, scripts, and apps that enqueue and run jobs in one process. It is
**in-process only** (a worker in another process cannot see these jobs; the CLI
refuses to start one) and **not durable** (jobs are gone when the process
exits). Safe to enqueue into from other threads (``enqueue_sync`` from a web
view) while a worker's event loop runs: every operation holds one lock, and
enqueues wake a waiting worker through ``call_soon_threadsafe``.

Paused queues, progress, unique-key windows (``unique_ttl``), dependencies
and limit counters live in this backend object too: a second ``MemoryBackend`` is a separate store and does not
see them (nor any job of this one).

Ready and delayed jobs of a queue share one compiled :class:`PriorityIndex`;
a delayed job's reported state (scheduled / retry_pending) turns into
``queued`` once its time has come, whether or not a claim has promoted it yet.
Jobs with a :class:`~fastjobs.backends.Limit` wait in an index of their own
per (queue, key), off the plain claim path, so a capped key never blocks its
queue and an idle ``wait`` does not wake for jobs it could not claim; a key's
limit values are those of its most recently enqueued job. Dependencies and
limits are kept by ``FlowControl`` (``_memory_flow.py``), which this backend inherits.
So are the search indexes (``SearchIndex``, ``_memory_search.py``: which filters
seek and which scan), history points and event listeners (``LiveFeed``,
``_memory_live.py``: events fan out in-process, a bounded buffer per listener)
and the actions by id (``JobActions``, ``_memory_actions.py``). A retried job
keeps its ``enqueued_at`` (its search time while it lives again); its claim
position is new.

Example:
    >>> import fastjobs
    >>> app = fastjobs.App("memory://")
"""

from __future__ import annotations

import collections
import dataclasses
import operator
import threading
import time
from collections.abc import Iterable
from typing import Any, Sequence, cast

from .._core import (
    ACTIVE,
    CANCELLED,
    DEAD,
    QUEUED,
    RETRY_PENDING,
    SCHEDULED,
    STATE_NAMES,
    SUCCEEDED,
    WAITING,
    JobSlot,
    PriorityIndex,
    insert_slots,
    lease_slots,
    succeed_slots,
)
from ..errors import ConfigurationError, DependencyError, DuplicateJobError
from ..job import lease_expired_error
from ._memory_actions import JobActions
from ._memory_flow import FlowControl, _Deps
from ._memory_live import LiveFeed
from ._memory_search import SearchIndex, micros
from ._memory_wake import WakeUps
from .base import GONE_KEPT, Ack, AckKind, Backend, BackendOptions, Beat, Claim, NewJob, StoredJob, WorkerInfo
from .base import HistoryPoint, HistoryRow, JobFilter, Position
from .base import by_start, check_beat, check_search_limit, check_worker, check_worker_id

_ID, _DEPENDS_ON, _LIMIT = (operator.itemgetter(NewJob._fields.index(name)) for name in ("id", "depends_on", "limit"))
"""NewJob fields by position, for map() over a batch (no Python frame per job)."""
# Plain ints: comparing with AckKind.X looks the member up on the Enum class per ack.
_SUCCEED, _RETRY, _DEAD, _RELEASE = (int(k) for k in (AckKind.SUCCEED, AckKind.RETRY, AckKind.DEAD, AckKind.RELEASE))
_LIVE = frozenset((SCHEDULED, QUEUED, ACTIVE, RETRY_PENDING, WAITING))
_FINISHED = frozenset((SUCCEEDED, DEAD, CANCELLED))
_FINISH_EVENTS = {SUCCEEDED: "succeeded", DEAD: "dead", CANCELLED: "cancelled"}


def _snapshot(job: JobSlot, now: float, progress: bytes | None = None, deps: _Deps | None = None,
              limit_key: str | None = None, task: str = "", tags: tuple[str, ...] = ()) -> StoredJob:
    state = job.state
    if state in (SCHEDULED, RETRY_PENDING) and job.run_at <= now:
        state = QUEUED
    stored = StoredJob(
        job.id, job.queue, state, job.priority, job.attempt, job.max_attempts,
        job.token, job.body, job.result, list(job.errors or ()), job.enqueued_at,
        job.run_at, job.started_at, job.finished_at, job.lease_until, job.unique_key, progress,
    )
    if deps is not None:
        stored.parents, stored.pending_parents, stored.failed_parents = deps.parents, deps.pending, deps.failed
    stored.limit_key = limit_key
    stored.task, stored.tags = task, tags
    return stored


CHECK_STATS = False
"""Tests: check every ``stats()`` against a count of every stored job."""


def _count_every_job(jobs: Iterable[JobSlot], now: float) -> dict[str, list[int]]:
    """What ``stats()`` counts from the indexes, counted job by job (:data:`CHECK_STATS`)."""
    rows: dict[str, list[int]] = {}
    for job in jobs:
        state = QUEUED if job.state in (SCHEDULED, RETRY_PENDING) and job.run_at <= now else job.state
        rows.setdefault(job.queue, [0] * len(STATE_NAMES))[state] += 1
    return rows


class MemoryBackend(FlowControl, SearchIndex, LiveFeed, JobActions, WakeUps, Backend):
    """In-process job store behind ``memory://`` (see the module docstring)."""

    loop_bound = False

    def __init__(self, url: str, options: BackendOptions) -> None:
        super().__init__(url, options)
        self._lock = threading.Lock()
        self._jobs: dict[str, JobSlot] = {}
        self._indexes: dict[str, PriorityIndex] = {}
        self._active: dict[str, JobSlot] = {}
        # Earliest lease deadline that may have passed: recovery scans the
        # (small) active set only once the clock reaches it.
        self._next_lease_check = float("inf")
        self._unique: dict[tuple[str, str], str] = {}
        """(queue, unique key) -> the job holding it (live, or succeeded within its unique_ttl)."""
        self._unique_until: dict[tuple[str, str], float] = {}
        """(queue, unique key) -> when a succeeded job's hold ends (keys held past their job's success only)."""
        self._unique_ttl: dict[str, float] = {}
        """Job id -> its unique_ttl, for unfinished or dead jobs with a unique key and unique_ttl > 0."""
        self._progress: dict[str, bytes] = {}
        """Job id -> the latest set_progress bytes (JobSlot has no slot for them)."""
        self._paused: set[str] = set()
        self._workers: dict[str, tuple[WorkerInfo, float]] = {}
        """Worker id -> (its record as last beaten, its ttl)."""
        self._init_flow()
        self._init_search()
        self._init_live()
        self._init_wake()
        self._woken = False
        """Set under the lock when a waiting job was released: wake the idle waiters after it."""
        # Finished jobs in finish order, per retention class: cleanup pops from the left. An
        # entry is (finished_at, job id), or (finished_at, [ids]) for one ack_many's successes.
        self._finished: collections.deque[tuple[float, str | list[str]]] = collections.deque()
        self._dead: collections.deque[tuple[float, str | list[str]]] = collections.deque()

    # -- time and wake-ups ------------------------------------------------

    async def now(self) -> float:
        return time.time()

    # -- enqueue, claim, ack ----------------------------------------------

    def _index(self, queue: str) -> PriorityIndex:
        index = self._indexes.get(queue)
        if index is None:
            index = self._indexes[queue] = PriorityIndex()
        return index

    async def enqueue_many(self, jobs: Sequence[NewJob], *, connection: Any = None) -> list[str]:
        if connection is not None:
            raise ConfigurationError("transactional enqueue (connection=) needs the postgresql:// backend")
        ids = list(map(_ID, jobs))
        with self._lock:
            store = self._jobs
            # Validate the whole batch before storing any of it: all or nothing.
            if len(set(ids)) != len(ids) or not store.keys().isdisjoint(ids):
                taken = next(i for i in ids if i in store or ids.count(i) > 1)
                raise DuplicateJobError(taken, in_batch=taken not in store)
            # map() first: most batches have neither, and a Limit (a non-empty tuple) is true.
            flow = [new for new in jobs if new.depends_on or new.limit is not None] if (
                any(map(_DEPENDS_ON, jobs)) or any(map(_LIMIT, jobs))) else []
            if flow:
                batch = set(ids)
                for new in flow:
                    for parent in new.depends_on:
                        if parent not in batch and parent not in store:
                            raise DependencyError(new.id, parent)
            now = time.time()
            unique = self._unique
            staged: dict[tuple[str, str], str] = {}
            index = None
            index_queue = None
            live_queue = None
            live: dict[str, None] = {}
            task_of, tags_of = self._task, self._tags
            at_us = micros(now)
            eventing = self._eventing
            # The leading plain jobs in one compiled loop (all of most batches); the rest here.
            first = 0 if eventing or type(jobs) is not list else insert_slots(
                jobs, now, store, task_of, lambda queue: self._live_index(queue).bucket(at_us), self._index)
            for pos, new in enumerate(jobs if first == 0 else jobs[first:], first):
                # One unpacking instead of a NamedTuple attribute lookup per use.
                job_id, queue, priority, delay, _, _, unique_key, unique_ttl, _, _, _, task, tags = new
                if unique_key is not None:
                    key = (queue, unique_key)
                    holder = self._holder(key, now) or staged.get(key)
                    if holder is not None:
                        ids[pos] = holder
                        continue
                    staged[key] = job_id
                    if unique_ttl > 0:
                        self._unique_ttl[job_id] = float(unique_ttl)
                job = JobSlot(new, now)
                store[job_id] = job
                task_of[job_id] = task
                if tags:
                    tags_of[job_id] = tuple(tags)
                if queue != live_queue:
                    live_queue = queue
                    live = self._live_index(live_queue).bucket(at_us)
                live[job_id] = None
                if eventing:
                    self._emit("enqueued", job_id, task, queue, now)
                if flow and (new.depends_on or new.limit is not None):
                    unique.update(staged)
                    staged.clear()
                    self._enqueue_flow(new, job, now)
                    live_queue = None  # it may have finished at once, and its time's ids gone with it
                    continue
                if queue != index_queue:
                    index_queue = queue
                    index = self._index(index_queue)
                index.push(job_id, priority, job.run_at if delay > 0 else 0.0)  # type: ignore[union-attr]
            unique.update(staged)
            self._woken = False
            if self._eventing:
                self._publish()
        self._wake()
        return ids

    async def claim(self, queues: Sequence[str], n: int, lease: float) -> list[Claim]:
        claims: list[Claim] = []
        if n <= 0:
            return claims
        with self._lock:
            now = time.time()
            if now >= self._next_lease_check:
                self._recover_locked(now)  # its events go out with the claim's
            store = self._jobs
            active = self._active
            until = now + lease
            paused = self._paused
            limited = self._limited
            for queue in queues:
                if queue in paused:
                    continue
                index = self._indexes.get(queue)
                if limited and queue in limited:
                    # Any: the index holds str job ids, though typed for any hashable (a
                    # cast() would be a call per queue per claim).
                    taken: list[Any] = self._claim_merged(queue, index, n - len(claims), now)
                else:
                    taken = [] if index is None else index.pop(n - len(claims), now)
                lease_slots(store, active, taken, now, until, Claim, claims)
                if len(claims) >= n:
                    break
            if self._eventing:
                for claimed in claims:
                    self._emit_job("started", store[claimed.id], now)
                self._publish()
            if claims and until < self._next_lease_check:
                self._next_lease_check = until
            woken, self._woken = self._woken, False
        if woken:
            self._wake()
        return claims

    async def ack_many(self, acks: Sequence[Ack], history: Sequence[HistoryRow] = ()) -> list[bool]:
        applied: list[bool] = []
        requeued = False
        with self._lock:
            now = time.time()
            if history:
                self._add_history(history, now)
            active = self._active
            # Plain successes (no unique key, no dependants, nobody listening, results kept) are
            # filed in the search index and the retention queue once per call, not once per job:
            # they share their finish time, so the hot path is a state change and an append.
            keep_results = self.options.result_ttl > 0
            plain = keep_results and not self._eventing
            succeeded: list[JobSlot] = []
            dependants = self._dependants
            limit_of = self._limit_of
            # The leading plain successes in one compiled loop (all of a drain's acks); the rest here.
            first = succeed_slots(active, acks, now, _SUCCEED, dependants, applied, succeeded) if (
                plain and not limit_of and type(acks) is list) else 0
            for ack in acks if first == 0 else acks[first:]:
                job = active.get(ack.id)
                if job is None or job.token != ack.token:
                    applied.append(False)
                    continue
                del active[ack.id]
                job.lease_until = None
                if limit_of:
                    self._left_active(ack.id)
                kind = ack.kind
                if kind == _SUCCEED:
                    job.state = SUCCEEDED
                    job.result = ack.payload
                    if plain and job.unique_key is None and not (dependants and ack.id in dependants):
                        job.finished_at = now
                        succeeded.append(job)
                    else:
                        self._finish(job, now)
                        if keep_results:
                            self._finished.append((now, job.id))
                        else:
                            self._forget(job.id)
                elif kind == _RETRY:
                    self._add_error(job, ack.payload)
                    if self._eventing:
                        self._emit_job("failed", job, now)
                    if ack.delay > 0:
                        job.state = RETRY_PENDING
                        job.run_at = now + ack.delay
                    else:
                        job.state = QUEUED
                        job.run_at = now
                        requeued = True
                    self._push(job)
                elif kind == _DEAD:
                    self._add_error(job, ack.payload)
                    self._kill(job, now)
                elif kind == _RELEASE:
                    if self._eventing:
                        self._emit_job("released", job, now)
                    job.attempt -= 1
                    job.state = QUEUED
                    self._push(job)
                    requeued = True
                else:
                    raise ValueError(f"unknown ack kind {kind!r}")
                applied.append(True)
            if succeeded:
                self._index_succeeded(succeeded, now)
                self._finished.append((now, [job.id for job in succeeded]))
            if self._woken:
                requeued, self._woken = True, False
            if self._eventing:
                self._publish()
        if requeued:
            self._wake()
        return applied

    @staticmethod
    def _add_error(job: JobSlot, record: bytes | None) -> None:
        if record is None:
            return
        if job.errors is None:
            job.errors = [record]
        else:
            job.errors.append(record)

    def _holder(self, key: tuple[str, str], now: float) -> str | None:
        """The job holding a unique key, dropping a succeeded job's hold once its window is over."""
        holder = self._unique.get(key)
        if holder is not None:
            until = self._unique_until.get(key)
            if until is not None and until <= now:
                del self._unique[key], self._unique_until[key]
                return None
        return holder

    def _finish(self, job: JobSlot, now: float) -> None:
        self._close(job, now)
        if self._dependants and job.id in self._dependants:
            self._settle(job.id, job.state != SUCCEEDED, now)

    def _close(self, job: JobSlot, now: float) -> None:
        job.finished_at = now
        self._index_finished(job)
        if self._eventing:
            self._emit_job(_FINISH_EVENTS[job.state], job, now)
        # A dead or cancelled job keeps its unique_ttl for retry_jobs; it is dropped with the job.
        ttl = self._unique_ttl.get(job.id, 0.0) if job.state != SUCCEEDED else self._unique_ttl.pop(job.id, 0.0)
        if job.unique_key is not None:
            key = (job.queue, job.unique_key)
            if self._unique.get(key) == job.id:
                if ttl > 0 and job.state == SUCCEEDED:
                    self._unique_until[key] = now + ttl  # held on after success
                else:
                    del self._unique[key]

    def _kill(self, job: JobSlot, now: float) -> None:
        job.state = DEAD
        self._finish(job, now)
        self._dead.append((now, job.id))

    async def renew(self, leases: Sequence[tuple[str, int, float]], beat: Beat | None = None) -> list[bool]:
        applied: list[bool] = []
        renewed: set[str] = set()
        if beat is not None:
            check_beat(beat)
        with self._lock:
            now = time.time()
            if beat is not None and beat.worker_id in self._workers:
                info, _ = self._workers[beat.worker_id]
                self._workers[beat.worker_id] = (dataclasses.replace(info, last_seen=now, running=beat.running), beat.ttl)
            for job_id, token, seconds in leases:
                job = self._active.get(job_id)
                # A repeat within one batch is reported stale, as on every backend.
                if job is None or job.token != token or job_id in renewed:
                    applied.append(False)
                    continue
                renewed.add(job_id)
                job.lease_until = now + seconds
                applied.append(True)
        return applied

    # -- workers ----------------------------------------------------------------------

    async def register_worker(self, info: WorkerInfo, ttl: float) -> None:
        check_worker(info, ttl)
        with self._lock:
            now = time.time()
            self._workers = {
                wid: (w, t) for wid, (w, t) in self._workers.items() if w.last_seen + t + GONE_KEPT >= now
            }
            self._workers[info.id] = (dataclasses.replace(info, started_at=now, last_seen=now, running=(), alive=True), ttl)

    async def deregister_worker(self, worker_id: str) -> bool:
        check_worker_id(worker_id)
        with self._lock:
            return self._workers.pop(worker_id, None) is not None

    async def workers(self) -> list[WorkerInfo]:
        with self._lock:
            now = time.time()
            listed = [
                dataclasses.replace(w, alive=w.last_seen + t >= now)
                for w, t in self._workers.values() if w.last_seen + t + GONE_KEPT >= now
            ]
        return by_start(listed)

    async def set_progress(self, job_id: str, token: int, progress: bytes) -> bool:
        with self._lock:
            job = self._active.get(job_id)
            if job is None or job.token != token:
                return False
            self._progress[job_id] = progress
            if self._eventing:
                self._emit_job("progress", job, time.time())
                self._publish()
            return True

    # -- maintenance --------------------------------------------------------

    async def recover(self) -> int:
        with self._lock:
            recovered = self._recover_locked(time.time())
            woken = self._close_batch()
        if recovered or woken:
            self._wake()
        return recovered

    def _recover_locked(self, now: float) -> int:
        recovered = 0
        next_check = float("inf")
        for job in list(self._active.values()):
            until = job.lease_until
            assert until is not None
            if until > now:
                next_check = min(next_check, until)
                continue
            del self._active[job.id]
            job.lease_until = None
            if self._limit_of:
                self._left_active(job.id)
            self._add_error(job, lease_expired_error(job.attempt, now))
            if job.attempt >= job.max_attempts:
                self._kill(job, now)
            else:
                if self._eventing:
                    self._emit_job("released", job, now)
                job.state = QUEUED
                self._push(job)
            recovered += 1
        self._next_lease_check = next_check
        return recovered

    async def promote_due(self) -> int:
        with self._lock:
            now = time.time()
            promoted = sum(index.promote(now) for index in self._indexes.values())
            return promoted + sum(
                index.promote(now) for per_key in self._limited.values() for index in per_key.values()
            )

    async def shift_due(self, seconds: float) -> int:
        with self._lock:
            indexes = [*self._indexes.values(), *(i for per_key in self._limited.values() for i in per_key.values())]
            store = self._jobs
            for index in indexes:
                for job_id in index.delayed_ids():
                    store[cast(str, job_id)].run_at -= seconds
            shifted = sum(index.shift_delayed(seconds) for index in indexes)
        if shifted:
            self._wake()
        return shifted

    async def cleanup(self) -> int:
        removed = 0
        with self._lock:
            now = time.time()
            for entries, ttl in ((self._finished, self.options.result_ttl), (self._dead, self.options.dead_ttl)):
                limit = now - ttl
                while entries and entries[0][0] <= limit:
                    finished_at, held = entries.popleft()
                    for job_id in (held,) if isinstance(held, str) else held:
                        job = self._jobs.get(job_id)
                        # The job may have been retried, purged, or finished again since.
                        if job is not None and job.state in _FINISHED and job.finished_at == finished_at:
                            self._forget(job_id)
                            removed += 1
            self._drop_idle_limits(now)
            # Unique-key windows that ended with no enqueue to notice it.
            for key in [k for k, until in self._unique_until.items() if until <= now]:
                del self._unique[key], self._unique_until[key]
        return removed

    # -- inspection and control --------------------------------------------

    async def get(self, job_id: str) -> StoredJob | None:
        with self._lock:
            job = self._jobs.get(job_id)
            return None if job is None else self._snap(job, time.time())

    def _snap(self, job: JobSlot, now: float) -> StoredJob:
        key = self._limit_of.get(job.id)
        return _snapshot(
            job, now, self._progress.get(job.id), self._deps.get(job.id), None if key is None else key[1],
            self._task.get(job.id, ""), self._tags.get(job.id, ()),
        )

    async def list_jobs(
        self, state: int, queue: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[StoredJob]:
        with self._lock:
            now = time.time()
            if state == QUEUED and queue is not None:
                # The queue's live jobs oldest first, until the page is full (health checks and
                # the dashboard ask for the oldest ready job): not a snapshot of every job.
                page: list[StoredJob] = []
                index = self._live_keys.get(queue)
                for _, job_id in index.ascending() if index is not None else ():
                    job = self._jobs[job_id]
                    if job.state == QUEUED or (job.state in (SCHEDULED, RETRY_PENDING) and job.run_at <= now):
                        page.append(self._snap(job, now))
                        if len(page) == offset + limit:
                            break
                return page[offset:]
            found = [
                snap
                for job in self._jobs.values()
                if (queue is None or job.queue == queue) and (snap := self._snap(job, now)).state == state
            ]
        found.sort(key=lambda s: (s.finished_at or s.enqueued_at, s.id))
        return found[offset : offset + limit]

    def _forget(self, job_id: str) -> None:
        """Delete a job (not active, out of its claim index) and everything kept beside it."""
        self._unindex_search(self._jobs.pop(job_id))
        self._task.pop(job_id, None)
        if self._tags:
            self._tags.pop(job_id, None)
        self._progress.pop(job_id, None)
        self._unique_ttl.pop(job_id, None)
        if self._deps:
            self._deps.pop(job_id, None)
        if self._limit_of:
            self._limit_of.pop(job_id, None)

    async def search(self, where: JobFilter, limit: int, after: Position | None = None) -> tuple[list[StoredJob], Position | None]:
        check_search_limit(limit)
        with self._lock:
            return self._search_locked(where, limit, after, time.time())

    async def history(self, since: float, until: float, step: int = 60, queue: str | None = None,
                      task: str | None = None) -> list[HistoryPoint]:
        with self._lock:
            return self._history_locked(since, until, step, queue, task)

    def _emit_job(self, kind: str, job: JobSlot, now: float) -> None:
        self._emit(kind, job.id, self._task.get(job.id, ""), job.queue, now)

    async def pause(self, queue: str) -> None:
        with self._lock:
            self._paused.add(queue)

    async def resume(self, queue: str) -> None:
        with self._lock:
            if queue not in self._paused:
                return
            self._paused.discard(queue)
        self._wake()

    async def paused(self) -> list[str]:
        with self._lock:
            return sorted(self._paused)

    async def stats(self) -> dict[str, dict[str, int]]:
        with self._lock:
            now = time.time()
            rows = self._count_from_indexes(now)
            if CHECK_STATS and rows != (every := _count_every_job(self._jobs.values(), now)):
                raise AssertionError(f"stats from the indexes {rows} != a count of every job {every}")
        return {queue: dict(zip(STATE_NAMES, row)) for queue, row in rows.items()}

    def _count_from_indexes(self, now: float) -> dict[str, list[int]]:
        """Jobs per queue and state from the indexes the store keeps anyway, not from every job:
        finished ones by the sizes of their search indexes, running ones from ``_active``, ready
        and delayed ones from the claim indexes (a delayed job looked at one by one), waiting
        ones as the queue's live jobs that are none of those."""
        rows: dict[str, list[int]] = {}

        def row(queue: str) -> list[int]:
            counts = rows.get(queue)
            if counts is None:
                counts = rows[queue] = [0] * len(STATE_NAMES)
            return counts

        for (queue, state), index in self._done_keys.items():
            if index:
                row(queue)[state] += len(index)
        for job in self._active.values():
            row(job.queue)[ACTIVE] += 1
        jobs = self._jobs
        for queue, live in self._live_keys.items():
            total = len(live)
            if not total:
                continue
            counts = row(queue)
            plain = self._indexes.get(queue)
            claimable = [*([plain] if plain is not None else []), *self._limited.get(queue, {}).values()]
            for claim_index in claimable:
                counts[QUEUED] += claim_index.ready_count
                for job_id in claim_index.delayed_ids():
                    job = jobs[cast(str, job_id)]
                    counts[QUEUED if job.run_at <= now else job.state] += 1
            counts[WAITING] = total - counts[QUEUED] - counts[SCHEDULED] - counts[RETRY_PENDING] - counts[ACTIVE]
        return {queue: counts for queue, counts in rows.items() if any(counts)}
