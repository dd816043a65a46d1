"""The PostgreSQL backend's class: every operation as one round trip to a named
query or a function (see the package docstring); its connections, and how it
behaves when they fail, are :mod:`.connection`'s.

Example:
    >>> from fastjobs.backends import BackendOptions
    >>> PostgresBackend("postgresql://127.0.0.1/app", BackendOptions(prefix="jobs"))
    <PostgresBackend schema='jobs'>
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any, Sequence

import asyncpg  # type: ignore[import-untyped]
import asyncpg.pool  # type: ignore[import-untyped]

from ..._core import CANCELLED, DEAD, QUEUED, STATE_NAMES, SUCCEEDED
from ...errors import BackendUnavailableError, ConfigurationError, DependencyError, DuplicateJobError
from ..base import (
    ESTIMATE_ABOVE, GONE_KEPT, HISTOGRAM_BOUNDS, Ack, Beat, Claim, HistoryRow, NewJob, StoredJob, WorkerInfo, check_beat,
    check_worker, check_worker_id,
)
from .connection import CONNECTION_ERRORS
from .events import RETAIN
from .operations import Operations
from .rows import LEASE_ERROR, stored_job

log = logging.getLogger("fastjobs.postgres")

_FINISHED_STATES = frozenset((SUCCEEDED, DEAD, CANCELLED))
VACUUM_CHECK_ROWS = 50_000
SAMPLE_PAGES = 1000
"""stats_estimated: the heap pages of a table read to estimate its counts above
ESTIMATE_ABOVE (spread evenly over the table; a table this small is read whole).
About 10 ms a table (1000 pages from shared buffers). Measured on 1M jobs
(500k queued in 23.6k pages, 500k finished in 12.3k): a count whose jobs are
spread over the table's pages (queued: four queues enqueued in turn) within
0.1%; one whose jobs sit in pages of their own (succeeded and dead, one eighth
of finished_jobs each) within 8%. The error falls as the square root of the
pages read."""
_ACK_KINDS = frozenset((0, 1, 2, 3))
_TAG_SEPARATOR = "\x1f"
"""Joins a job's tags into one string for the enqueue functions (the App refuses control characters in tags)."""


def _distinct_leases(entries: Sequence[tuple[str, int]]) -> list[int]:
    """Positions of the entries to send for a batch of ``(job id, token)``, in id order.

    A repeated (id, token) pair is sent once (the first copy; the others report
    stale). Copies of one id with different tokens are all sent: at most one
    of them holds the job's current token, and the SQL applies just that one,
    whichever position it had. (Keeping the highest token instead would drop
    the current ack whenever a bogus or future token came with it.) Id order
    makes concurrent batches lock rows in the same order.
    """
    first: dict[tuple[str, int], int] = {}
    for i, lease in enumerate(entries):
        first.setdefault(lease, i)
    return sorted(first.values(), key=lambda i: entries[i][0])


class PostgresBackend(Operations):
    """Jobs in PostgreSQL (see the package docstring, fastjobs.backends.postgres).

    Args:
        url: ``postgresql://user:password@host:port/database?sslmode=require&...``
            (``postgres://`` too; asyncpg reads the usual options from it).
        options: retention, the schema name (``prefix``) and ``connect_timeout``:
            how long an operation keeps trying to reach a server that is down
            before it raises :class:`~fastjobs.BackendUnavailableError` (the
            worker's claims give up at once; see :mod:`.connection`).
        min_connections / max_connections: the asyncpg pool's size.
        migrate: apply pending migrations, and the functions if they are newer, when connecting (default True).
        synchronous_commit: False trades durability for speed (package docstring).
        vacuum: VACUUM the hot table when its dead rows pile up (checked by
            ``cleanup`` and every 50,000 claimed jobs; see :meth:`vacuum_hot_table`),
            and ``finished_jobs`` when ``cleanup`` left many (:meth:`vacuum_finished_table`).
        poll_while_disconnected: longest idle wait while the LISTEN connection is down.
        listen_safety_timeout: longest idle wait while it is up. A NOTIFY, a
            delayed job falling due or a lease expiring ends a wait sooner; this
            only bounds the damage of a wake-up that never came.
        connect_kwargs: anything else for ``asyncpg.connect`` (e.g. ``ssl=``).
    """

    loop_bound = True
    _vacuuming = False
    _claimed_since_check = 0

    # -- time and wake-ups ----------------------------------------------------

    async def now(self) -> float:
        value: float = await self._fetchval(self._q["now"])
        return value

    async def wait(self, queues: Sequence[str], timeout: float) -> None:
        await self._wakeups.wait(queues, timeout, self._seconds_until_ready)

    async def _seconds_until_ready(self, queues: list[str]) -> Any:
        # Not patient: the wait polls on its own while the server is down.
        return await self._fetchval(self._q["wait_info"], queues, patient=False)

    # -- enqueue, claim, ack ----------------------------------------------------

    async def enqueue_many(self, jobs: Sequence[NewJob], *, connection: Any = None) -> list[str]:
        if not jobs:
            return []
        if connection is not None and not isinstance(connection, (asyncpg.Connection, asyncpg.pool.PoolConnectionProxy)):
            raise ConfigurationError(
                f"connection= must be an asyncpg connection (inside your transaction), not {type(connection).__name__}"
            )
        ids = [j.id for j in jobs]
        if len(set(ids)) != len(ids):
            taken = next(i for i in ids if ids.count(i) > 1)
            raise DuplicateJobError(taken, in_batch=True)
        if any(j.depends_on or j.limit is not None for j in jobs):
            return await self._enqueue_flow(connection, list(jobs))
        if all(j.unique_key is None for j in jobs):
            await self._enqueue(
                connection, self._q["enqueue"], ids, [j.queue for j in jobs], [j.priority for j in jobs],
                [j.delay for j in jobs], [j.max_attempts for j in jobs], [j.body for j in jobs], *self._labels(jobs),
            )
            return ids
        return await self._enqueue_unique(connection, list(jobs))

    def _labels(self, jobs: Sequence[NewJob]) -> tuple[Any, ...]:
        """The enqueue functions' last arguments: tasks, tags (each job's joined by U+001F, NULL
        without tags; NULL for a batch without tags: it sends one more array only), and
        whether to publish events."""
        tasks = [j.task for j in jobs]
        if not any(j.tags for j in jobs):
            return tasks, None, self.options.events
        tags = []
        for j in jobs:
            if any(_TAG_SEPARATOR in t for t in j.tags):
                raise ValueError(f"a tag may not contain U+001F (job {j.id!r}: {j.tags!r})")
            tags.append(_TAG_SEPARATOR.join(j.tags) if j.tags else None)
        return tasks, tags, self.options.events

    async def _enqueue(self, connection: Any, query: str, *args: Any) -> list[Any]:
        try:
            if connection is None:
                return await self._fetch(query, *args)
            try:
                rows: list[Any] = await connection.fetch(query, *args)
            except CONNECTION_ERRORS as exc:
                raise BackendUnavailableError(
                    f"your PostgreSQL connection failed ({type(exc).__name__}: {exc}); the enqueue did not happen "
                    "unless your transaction committed"
                ) from exc
            except (asyncpg.UndefinedFunctionError, asyncpg.InvalidSchemaNameError) as exc:
                raise ConfigurationError(
                    f"the database of connection= has no fastjobs schema {self.schema!r} ({exc}); pass a connection "
                    "to the App's own database, or run `fastjobs migrate` against this one"
                ) from exc
            return rows
        except asyncpg.ForeignKeyViolationError as exc:
            if exc.constraint_name == "job_deps_parent":
                # enqueue_flow names the child in DETAIL and the parent in HINT.
                raise DependencyError(exc.detail or "?", exc.hint or "?") from exc
            raise
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name in ("jobs_pkey", "finished_jobs_pkey"):
                # "Key (id)=(x) already exists." from the index, or refuse_finished_id's message.
                found = re.search(r"\(id\)=\((.*)\)", exc.detail or "") or re.search(r"job id '(.*)' already", exc.message)
                raise DuplicateJobError(found[1] if found else "?") from exc
            raise

    async def _enqueue_flow(self, connection: Any, jobs: list[NewJob]) -> list[str]:
        """A batch with parents or limits, stored by ``enqueue_flow`` (unique keys too).

        Parent ids distinct and acyclic, limits valid: the App checks that (see base.py).
        """

        def send(batch: list[NewJob]) -> tuple[Any, ...]:
            parents = [j.depends_on for j in batch]
            limits = [j.limit for j in batch]
            limited = any(limit is not None for limit in limits)
            keyed = any(j.unique_key is not None for j in batch)
            return (
                [j.id for j in batch], [j.queue for j in batch], [j.priority for j in batch],
                [j.delay for j in batch], [j.max_attempts for j in batch], [j.body for j in batch],
                [j.unique_key for j in batch] if keyed else None,
                [float(j.unique_ttl) for j in batch] if keyed else None,
                [int(j.after) for j in batch], [len(p) for p in parents],
                [None if limit is None else limit.key for limit in limits] if limited else None,
                [None if limit is None else int(limit.concurrency) for limit in limits] if limited else None,
                [None if limit is None else int(limit.rate) for limit in limits] if limited else None,
                [None if limit is None else float(limit.per) for limit in limits] if limited else None,
                [j.id for j, p in zip(batch, parents) for _ in p],
                [parent for p in parents for parent in p],
                *self._labels(batch),
            )

        return await self._enqueue_unique(connection, jobs, "enqueue_flow", send)

    async def _enqueue_unique(
        self, connection: Any, jobs: list[NewJob], query: str = "enqueue_unique", send: Any = None
    ) -> list[str]:
        result = [j.id for j in jobs]
        todo = list(range(len(jobs)))
        for _ in range(5):
            batch = [jobs[i] for i in todo]
            if send is not None:
                rows = await self._enqueue(connection, self._q[query], *send(batch))
            else:
                rows = await self._enqueue(
                    connection, self._q[query], [j.id for j in batch], [j.queue for j in batch],
                    [j.priority for j in batch], [j.delay for j in batch], [j.max_attempts for j in batch],
                    [j.body for j in batch], [j.unique_key for j in batch], [float(j.unique_ttl) for j in batch],
                    *self._labels(batch),
                )
            vanished = []
            for row in rows:
                index, holder = todo[row["job_position"] - 1], row["holder_id"]
                if holder is None:
                    # The key's holder finished between our insert and our look: try again.
                    vanished.append(index)
                else:
                    result[index] = holder
            if not vanished:
                return result
            todo = vanished
        raise RuntimeError("could not settle unique keys under heavy contention; try the enqueue again")

    async def claim(self, queues: Sequence[str], n: int, lease: float) -> list[Claim]:
        if n <= 0:
            return []
        queues = list(queues)
        # Notifications from now on are news to the next wait().
        self._wakeups.pending.difference_update(queues)
        head, mid, tail = LEASE_ERROR
        # Not patient (see .connection): the worker lands its acks before it claims again.
        claimed = (
            await self._fetch(self._q["claim"], queues, n, lease, head, mid, tail, self.options.events, patient=False)
        )[0]
        ids = claimed["claimed_ids"]
        if ids and self.vacuum:
            self._claimed_since_check += len(ids)
            if self._claimed_since_check >= VACUUM_CHECK_ROWS:
                self._claimed_since_check = 0
                self._in_background(self._vacuum_quietly())
        return list(map(Claim, ids, claimed["claimed_tokens"], claimed["claimed_attempts"], claimed["claimed_bodies"]))

    async def ack_many(self, acks: Sequence[Ack], history: Sequence[HistoryRow] = ()) -> list[bool]:
        n = len(acks)
        if not n and not history:
            return []
        for ack in acks:
            if ack.kind not in _ACK_KINDS:
                raise ValueError(f"unknown ack kind {ack.kind!r}")
        order = _distinct_leases([(a.id, a.token) for a in acks])
        picked = [acks[i] for i in order]
        # Arrays cost the client about a microsecond per element to encode:
        # leave out the ones that only repeat the defaults (NULL in the SQL).
        kinds = [int(a.kind) for a in picked]
        payloads = [a.payload for a in picked]
        delays = [float(a.delay) for a in picked]
        positions = await self._retry_deadlock(
            self._q["ack"], [a.id for a in picked], [a.token for a in picked],
            None if not any(kinds) else kinds,
            None if all(p is None for p in payloads) else payloads,
            None if not any(delays) else delays,
            self._keep_results, self.options.events, *_history_args(history),
            self.options.history_minutes, self.options.history_hours,
        )
        applied = [False] * n
        for p in positions or ():
            applied[order[p - 1]] = True
        return applied

    async def renew(self, leases: Sequence[tuple[str, int, float]], beat: Beat | None = None) -> list[bool]:
        n = len(leases)
        if beat is not None:
            check_beat(beat)
        elif not n:
            return []
        order = _distinct_leases([(job_id, token) for job_id, token, _ in leases])
        picked = [leases[i] for i in order]
        positions = await self._retry_deadlock(
            self._q["renew"], [p[0] for p in picked], [p[1] for p in picked], [float(p[2]) for p in picked],
            *((None, None, None) if beat is None else (beat.worker_id, list(beat.running), float(beat.ttl))),
        )
        applied = [False] * n
        for p in positions or ():
            applied[order[p - 1]] = True
        return applied

    # -- workers ------------------------------------------------------------------

    async def register_worker(self, info: WorkerInfo, ttl: float) -> None:
        check_worker(info, ttl)
        await self._fetchval(
            self._q["register_worker"], info.id, info.hostname, info.pid, list(info.queues), info.concurrency,
            info.version, float(ttl), GONE_KEPT,
        )

    async def deregister_worker(self, worker_id: str) -> bool:
        check_worker_id(worker_id)
        return await self._fetchval(self._q["deregister_worker"], worker_id) is not None

    async def workers(self) -> list[WorkerInfo]:
        rows = await self._fetch(self._q["workers"], GONE_KEPT)
        return [
            WorkerInfo(
                id=r["id"], hostname=r["hostname"], pid=r["pid"], queues=tuple(r["queues"]),
                concurrency=r["concurrency"], version=r["version"], started_at=r["started_at"],
                last_seen=r["last_seen"], running=tuple(r["running"]), alive=r["alive"],
            )
            for r in rows
        ]

    async def _retry_deadlock(self, query: str, *args: Any) -> Any:
        # A renewal and an ack of the same worker may share rows; both lock in
        # id order, but a plan may not, and PostgreSQL then aborts one of them.
        # Nothing was applied then, so running it again is safe.
        for attempt in range(3):
            try:
                return await self._fetchval(query, *args)
            except asyncpg.DeadlockDetectedError:
                if attempt == 2:
                    raise
                await asyncio.sleep(0.01 * (attempt + 1))

    # -- maintenance ------------------------------------------------------------

    async def recover(self) -> int:
        head, mid, tail = LEASE_ERROR
        total = 0
        while True:
            count: int = await self._fetchval(self._q["recover"], head, mid, tail, 10_000, self.options.events)
            total += count
            if count < 10_000:
                return total

    async def promote_due(self) -> int:
        total = 0
        while True:
            count: int = await self._fetchval(self._q["promote_due"], 10_000)
            total += count
            if count < 10_000:
                return total

    async def shift_due(self, seconds: float) -> int:
        moved: int = await self._fetchval(self._q["shift_due"], float(seconds))
        return moved

    async def cleanup(self) -> int:
        removed = 0
        batch = 5_000
        for states, ttl in (([SUCCEEDED, CANCELLED], self.options.result_ttl), ([DEAD], self.options.dead_ttl)):
            while True:
                count: int = await self._fetchval(self._q["delete_expired"], states, ttl, batch)
                removed += count
                if count < batch:
                    break
        await self._fetchval(self._q["forget_listeners"])
        await self._fetchval(self._q["trim_events"], RETAIN)
        if self.vacuum:
            await self.vacuum_hot_table()
            # The statistics learn of our deletes only when this session next
            # reports (at most once a second): count them ourselves too.
            await self._vacuum_if_bloated("finished_jobs", 10_000, known_dead=removed)
        return removed

    def _in_background(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _vacuum_quietly(self) -> None:
        try:
            await self.vacuum_hot_table()
        except Exception as exc:  # maintenance: the next check tries again
            log.debug("vacuum of %s.jobs failed: %s: %s", self.schema, type(exc).__name__, exc)

    async def vacuum_finished_table(self, min_dead: int = 10_000) -> bool:
        """VACUUM ``finished_jobs`` under the same rule as :meth:`vacuum_hot_table`.

        ``cleanup`` deletes expired results in batches, oldest first, through the
        index on (state, finished_at): each batch walks the dead entries of the
        batches before it until a VACUUM removes them, and the space of deleted
        rows is reused only after one. ``cleanup`` checks after deleting.
        """
        return await self._vacuum_if_bloated("finished_jobs", min_dead)

    async def vacuum_hot_table(self, min_dead: int = 10_000) -> bool:
        """VACUUM the hot table once it holds ``min_dead`` dead rows and half as many as live ones.

        A claim walks its index from the front, over the entries of jobs that
        were claimed since the last VACUUM: without one, every claim gets slower
        with every job ever processed (the total cost grows with the square of
        the jobs processed). A VACUUM costs about one pass over the table, so
        it pays once the dead rows are a fair share of it. Autovacuum does this
        where it is on and keeps up; this covers servers where it is off or
        lags (``cleanup`` checks, and so does every 50,000th claimed job). Only
        one session vacuums a schema at a time. Returns whether it vacuumed.
        """
        return await self._vacuum_if_bloated("jobs", min_dead)

    async def _vacuum_if_bloated(self, table: str, min_dead: int, known_dead: int = 0) -> bool:
        if self._vacuuming:
            return False
        rows = await self._fetch(self._q["table_health"], table)
        if not rows or max(rows[0]["dead"], known_dead) < max(min_dead, rows[0]["live"] // 2):
            return False

        async def vacuum(conn: Any) -> bool:
            key = f"fastjobs.vacuum:{self.schema}"
            if not await conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1::text))", key):
                return False
            try:
                # table is one of our two literal names, never user input.
                await conn.execute(f'VACUUM (SKIP_LOCKED) "{self.schema}"."{table}"')
            finally:
                await conn.execute("SELECT pg_advisory_unlock(hashtext($1::text))", key)
            return True

        self._vacuuming = True
        try:
            return await self._run(vacuum)
        finally:
            self._vacuuming = False

    # -- inspection and control ---------------------------------------------------

    async def get(self, job_id: str) -> StoredJob | None:
        rows = await self._fetch(self._q["get"], job_id)
        return stored_job(rows[0]) if rows else None

    async def list_jobs(
        self, state: int, queue: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[StoredJob]:
        if state not in range(len(STATE_NAMES)):
            raise ValueError(f"unknown state {state!r}")
        if state == QUEUED and queue is not None and offset == 0:
            return [stored_job(r) for r in await self._fetch(self._q["list_queued_first"], queue, limit)]
        query = self._q["list_finished" if state in _FINISHED_STATES else "list_live"]
        return [stored_job(r) for r in await self._fetch(query, state, queue, limit, offset)]

    async def set_progress(self, job_id: str, token: int, progress: bytes) -> bool:
        count: int = await self._fetchval(self._q["set_progress"], job_id, token, progress, self.options.events)
        return count > 0

    async def pause(self, queue: str) -> None:
        await self._fetch(self._q["pause"], queue)

    async def resume(self, queue: str) -> None:
        await self._fetch(self._q["resume"], queue)

    async def paused(self) -> list[str]:
        return [row["queue"] for row in await self._fetch(self._q["paused"])]

    async def stats(self) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {}
        for row in await self._fetch(self._q["stats"]):
            per_queue = counts.get(row["queue"])
            if per_queue is None:
                per_queue = counts[row["queue"]] = dict.fromkeys(STATE_NAMES, 0)
            per_queue[STATE_NAMES[row["state"]]] += row["jobs"]
        return counts

    async def stats_estimated(self) -> tuple[dict[str, dict[str, int]], dict[str, frozenset[str]]]:
        # One statement (see the stats_estimated query): exact counts capped at
        # ESTIMATE_ABOVE + 1 through the indexes, and for a capped count the
        # estimate of a sample of SAMPLE_PAGES pages of its table. Module
        # globals read per call, so a test may lower them.
        cap = ESTIMATE_ABOVE
        counts: dict[str, dict[str, int]] = {}
        estimated: dict[str, set[str]] = {}
        for row in await self._fetch(self._q["stats_estimated"], cap, SAMPLE_PAGES):
            queue, name, jobs = row["queue"], STATE_NAMES[row["state"]], int(row["jobs"])
            if row["capped"]:
                # At least what the capped count saw (more than cap): the sample
                # may have missed a count that is large only just.
                jobs = max(jobs, cap + 1, round(row["estimate"] or 0))
                estimated.setdefault(queue, set()).add(name)
            counts.setdefault(queue, dict.fromkeys(STATE_NAMES, 0))[name] += jobs
        # A queue whose jobs all went between the queue scan and the counts is
        # no longer one stats() lists.
        gone = [queue for queue, per_queue in counts.items() if not any(per_queue.values())]
        for queue in gone:
            del counts[queue]
        return counts, {queue: frozenset(names) for queue, names in estimated.items() if queue in counts}


_WIDTH = len(HISTOGRAM_BOUNDS) + 1


def _history_args(history: Sequence[HistoryRow]) -> tuple[Any, ...]:
    """ack's history arguments: the rows merged per (queue, task, outcome), in key order (NULLs: none).

    Merged because one upsert may not touch a point twice; ordered so that two
    flushes lock the points they share in the same order.
    """
    if not history:
        return None, None, None, None, None, None
    merged: dict[tuple[str, str, int], list[Any]] = {}
    for row in history:
        if len(row.buckets) != _WIDTH:
            raise ValueError(f"a history row has {_WIDTH} buckets, not {len(row.buckets)}")
        key = (row.queue, row.task, int(row.outcome))
        cell = merged.get(key)
        if cell is None:
            merged[key] = [int(row.runs), float(row.runtime_sum), list(row.buckets)]
        else:
            cell[0] += row.runs
            cell[1] += row.runtime_sum
            cell[2] = [a + b for a, b in zip(cell[2], row.buckets)]
    keys = sorted(merged)
    return (
        [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys],
        [merged[k][0] for k in keys], [merged[k][1] for k in keys],
        [int(b) for k in keys for b in merged[k][2]],
    )
