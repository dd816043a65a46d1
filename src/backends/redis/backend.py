"""RedisBackend: the Backend contract's operations on the Redis data layout.

Each operation is one script call per batch (see :mod:`.connection` for how
calls reach the queues, standalone or Cluster); the design notes are in the
package docstring, the key and record layout in ``lua/_common.lua``.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import itertools
import operator
import os
import time
from typing import Any, Sequence

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from ..._core import ACTIVE, CANCELLED, DEAD, QUEUED, RETRY_PENDING, SCHEDULED, STATE_NAMES, SUCCEEDED, WAITING
from ...errors import ConfigurationError, DependencyError, DuplicateJobError
from ...job import LEASE_EXPIRED_MESSAGE
from ..base import (
    BROKEN, Ack, Beat, Claim, HistoryRow, NewJob, StoredJob, WorkerInfo, by_start, check_beat, check_worker,
    check_worker_id,
)
from .connection import FAIL_FAST, pack_jobs
from .jobs import JobOperations
from .keys import ack_keys, cleanup_keys, promote_keys, recover_keys, renew_keys, shift_keys, stats_keys
from .records import stored_job
from .scripts import SCRIPTS, Script, pack, unpack

_CHUNK = 1000
OLDEST_MAX = 100
"""``list_jobs(QUEUED, queue)`` pages up to this far read the queue's oldest ready jobs from its
live index (``lua/oldest-1.lua``)."""
OLDEST_BUDGET = 10_000
"""Live entries that read examines at most (older ones may be running or waiting)."""
"""Entries a cleanup call handles per set, so one call never blocks Redis long."""
_new_claim = functools.partial(tuple.__new__, Claim)
"""Claim((id, token, attempt, body)) without NamedTuple's Python-level __new__ (a hot path)."""
# Fields of the NewJob and Ack tuples, read in bulk by position (C-level itemgetters).
_job_id = operator.itemgetter(NewJob._fields.index("id"))
_job_queue = operator.itemgetter(NewJob._fields.index("queue"))
_job_parents = operator.itemgetter(NewJob._fields.index("depends_on"))
_job_limit = operator.itemgetter(NewJob._fields.index("limit"))
_job_unique = operator.itemgetter(NewJob._fields.index("unique_key"))
_ack_id = operator.itemgetter(Ack._fields.index("id"))
_lease_job_id = operator.itemgetter(0)
"""Of renew's (job id, token, seconds) tuples."""


class RedisBackend(JobOperations):
    """Jobs in Redis or Redis Cluster (see the package docstring, fastjobs.backends.redis).

    Args:
        url: ``redis://[[user]:password@]host[:port][/db]``, ``rediss://...`` for
            TLS (``?ssl_cert_reqs=none`` and friends as redis-py reads them), or
            ``unix://[[user]:password@]/path/to/socket[?db=N]``.
        options: retention and the key prefix (``BackendOptions.prefix``).
        cluster: True for Redis Cluster, False for a single server, None
            (default) to ask the server at connect.
        functions: how the Lua runs (``backends/redis/scripts.py``). None (default):
            as one Redis 7 function library (``FUNCTION LOAD`` at connect, then
            ``FCALL``) where the server takes it, else as scripts (EVALSHA: Redis
            6.2, Cluster, an ACL that denies ``FUNCTION``). False: always scripts;
            True: the library, or :class:`~fastjobs.ConfigurationError` at connect.
        max_connections: size of the connection pool (per cluster node). On a single
            server, calls beyond it wait for a free connection.
        pool_timeout: seconds such a call waits before it fails with
            :class:`~fastjobs.BackendUnavailableError` (default: ``socket_timeout``).
        socket_timeout: seconds before a command without reply fails (retried only
            within ``connect_timeout`` of the call's start).
        socket_connect_timeout: seconds one connection attempt may take
            (default: ``BackendOptions.connect_timeout``).
        retries: at most this many retries of a call on a connection error
            (jittered exponential backoff); default: as many as fit in
            ``BackendOptions.connect_timeout`` (App's ``connect_timeout``, 5 s),
            after which the call raises :class:`~fastjobs.BackendUnavailableError`.
            In Cluster, redis-py's cluster client counts attempts only: 5 by
            default, each connection attempt bounded by ``connect_timeout``.
        **redis_options: passed on to ``redis.asyncio.Redis.from_url``.

    Example:
        >>> from fastjobs.backends import BackendOptions, create_backend
        >>> backend = create_backend("redis://localhost/0", BackendOptions(prefix="myapp"))
        >>> type(backend).__name__
        'RedisBackend'
    """

    loop_bound = True

    # -- time -----------------------------------------------------------------------

    async def now(self) -> float:
        client = await self._redis()
        if self.cluster:
            seconds, micros = await client.execute_command("TIME", target_nodes=RedisCluster.RANDOM)
        else:
            seconds, micros = await client.execute_command("TIME")
        return int(seconds) + int(micros) / 1_000_000


    # -- enqueue, claim, ack, renew ------------------------------------------------

    async def enqueue_many(self, jobs: Sequence[NewJob], *, connection: Any = None) -> list[str]:
        if self._client is None:
            await self._redis()  # connect first: the branches below depend on self.cluster
        if connection is not None:
            raise ConfigurationError("transactional enqueue (connection=) needs the postgresql:// backend")
        if not jobs:
            return []
        if type(jobs) is not list and type(jobs) is not tuple:
            jobs = list(jobs)  # msgpack packs lists and tuples only
        nonce = os.urandom(8).hex()
        # Per-job work here is kept to C-level bulk operations (map, set, list):
        # in the benchmark one process also encodes, runs and acks every job.
        queues = list(map(_job_queue, jobs))
        if queues.count(queues[0]) == len(queues):
            groups: dict[str, list[int]] = {queues[0]: list(range(len(jobs)))}
        else:
            groups = {}
            for i, queue in enumerate(queues):
                groups.setdefault(queue, []).append(i)
        ids = list(map(_job_id, jobs))
        if len(set(ids)) != len(ids):
            # Here rather than in the script: 15 ns per job here, ~700 instructions of
            # the server's per job there (a Lua table of the batch's ids).
            raise DuplicateJobError(next(i for i in ids if ids.count(i) > 1), in_batch=True)
        script = SCRIPTS["enqueue"]
        whole = len(groups) == 1
        features = self._features(jobs, queues) + self._events_flag
        # The features travel as one trailing argument, only when some job has
        # them: a plain batch's script call is what it was.
        tail = (features,) if features else ()
        try:
            if not self.cluster:
                keys: list[bytes] = []
                args: list[Any] = [nonce]
                for queue, indexes in groups.items():
                    keys.extend(self._queue(queue).enqueue)
                    args.append(pack_jobs(jobs if whole else [jobs[i] for i in indexes], features))
                keys.append(self._registry)
                args.extend(tail)
                reply = await self._eval(script, keys, args)
                order = list(groups.values())
                for k in range(0, len(reply), 3):
                    ids[order[reply[k] - 1][reply[k + 1] - 1]] = reply[k + 2].decode()
            else:
                client = await self._redis()

                async def one(queue: str, indexes: list[int]) -> None:
                    packed = pack_jobs(jobs if whole else [jobs[i] for i in indexes], features)
                    reply = await self._eval(script, self._queue(queue).enqueue, (nonce, packed, *tail))
                    for k in range(0, len(reply), 3):
                        ids[indexes[reply[k + 1] - 1]] = reply[k + 2].decode()

                await asyncio.gather(self._register(client, groups), *(one(q, ix) for q, ix in groups.items()))
        except ResponseError as exc:
            message = str(exc)
            if message.startswith("FJDUPLICATE"):
                raise DuplicateJobError(message.split(' ', 2)[1]) from None
            if message.startswith("FJDEPENDENCY"):
                # "FJDEPENDENCY <group> <job> <parent> <queue>", 1-based positions.
                _, _, job_pos, parent_pos, queue = message.split(" ", 4)
                job = jobs[groups[queue][int(job_pos) - 1]]
                raise await self._dependency_error(_job_id(job), _job_parents(job)[int(parent_pos) - 1]) from None
            raise
        return ids

    @staticmethod
    def _features(jobs: Sequence[NewJob], queues: list[str]) -> str:
        """'u', 'd' and/or 'l' when some job has a unique key / parents / a limit ('' for a plain
        batch; 'e' is added for events): the fields each job sends (see ``pack_jobs``).

        Also refuses, before anything is sent, a parent enqueued in the same
        batch into another queue (the scripts see one queue each)."""
        deps = any(map(_job_parents, jobs))
        limits = any(map(_job_limit, jobs))
        if deps:
            queue_of = dict(zip(map(_job_id, jobs), queues))
            for job, queue in zip(jobs, queues):
                for parent in _job_parents(job):
                    other = queue_of.get(parent)
                    if other is not None and other != queue:
                        raise DependencyError(_job_id(job), parent, "queue")
        keys = list(map(_job_unique, jobs))
        unique = keys.count(None) != len(keys)  # not any(): an empty key is still a key
        return ("u" if unique else "") + ("d" if deps else "") + ("l" if limits else "")

    async def _dependency_error(self, job_id: str, parent: str) -> DependencyError:
        """The error for a parent not in its dependant's queue: "queue" if it is in another one."""
        found = await self._find(parent)
        return DependencyError(job_id, parent, "queue" if found is not None else "unknown")

    def _claim_group(self, queues: Sequence[str]) -> tuple[tuple[bytes, ...], list[str]]:
        key = tuple(queues)
        found = self._claim_keys.get(key)
        if found is None:
            keys: list[bytes] = []
            for q in queues:
                keys.extend(self._queue(q).claim)
            found = self._claim_keys[key] = (tuple(keys), list(queues))
            if len(self._claim_keys) > 1000:  # callers passing ever new lists of queues
                self._claim_keys.clear()
        return found

    async def claim(self, queues: Sequence[str], n: int, lease: float) -> list[Claim]:
        if self._client is None:
            await self._redis()  # connect first: the branches below depend on self.cluster
        if self._broken:
            queues = self._serviceable(queues)
        if n <= 0 or not queues:
            return []
        script = SCRIPTS["claim"]
        claims: list[Claim] = []
        fail_fast = FAIL_FAST.set(True)
        try:
            await self._claim_into(script, queues, n, lease, claims)
        finally:
            FAIL_FAST.reset(fail_fast)
        return claims

    async def _claim_into(self, script: Script, queues: Sequence[str], n: int, lease: float, claims: list[Claim]) -> None:
        if not self.cluster or len(queues) == 1:
            keys, names = self._claim_group(queues)
            # Again only when the script stopped at its budget of skipped
            # leftovers (see claim-12.lua): each call gets through that many.
            while await self._claim_once(script, keys, names, n - len(claims), lease, claims) and len(claims) < n:
                pass
            return
        # Cluster, several queues: one call per queue (one slot each), in order.
        for queue in queues:
            keys = self._queue(queue).claim
            while await self._claim_once(script, keys, [queue], n - len(claims), lease, claims) and len(claims) < n:
                pass
            if len(claims) >= n:
                break

    async def _claim_once(
        self, script: Script, keys: Sequence[bytes], names: list[str], n: int, lease: float, claims: list[Claim]
    ) -> bool:
        """One claim call: its jobs appended to ``claims``; True if it stopped early (call again)."""
        reply = await self._eval(script, keys, (n, lease, self._dead_ttl, LEASE_EXPIRED_MESSAGE, self._events_arg))
        claimed = self._claimed
        groups = len(names)
        start = 1 + groups
        if groups == 1:
            if len(reply) > start:
                ids = list(map(bytes.decode, reply[start::4]))
                claims += map(_new_claim, zip(ids, reply[start + 1 :: 4], reply[start + 2 :: 4], reply[start + 3 :: 4]))
                claimed.update(dict.fromkeys(ids, names[0]))
            elif type(reply[1]) is bytes:  # a damaged queue: what is wrong, in place of a count
                self._damaged(names[0], reply[1])
        else:
            i = start
            for queue, count in zip(names, reply[1:start]):
                if type(count) is bytes:
                    self._damaged(queue, count)
                    continue
                end = i + 4 * count
                ids = list(map(bytes.decode, reply[i:end:4]))
                claims += map(_new_claim, zip(ids, reply[i + 1 : end : 4], reply[i + 2 : end : 4], reply[i + 3 : end : 4]))
                claimed.update(dict.fromkeys(ids, queue))
                i = end
        if self._broken:
            for queue, count in zip(names, reply[1:start]):
                if type(count) is not bytes:
                    self._intact(queue)
        return bool(reply[0] == 1)

    async def ack_many(self, acks: Sequence[Ack], history: Sequence[HistoryRow] = ()) -> list[bool]:
        if self._client is None:
            await self._redis()  # connect first: the branches below depend on self.cluster
        packed = self._history_packed(history) if history else b""
        writing: Any = None
        lead: tuple[bytes, ...] = ()
        if packed:
            if self.cluster:
                # The history's slot is not the queues': its call goes out beside the acks'.
                writing = asyncio.ensure_future(self._eval(SCRIPTS["history"], self._history.lead, (packed,)))
            else:
                lead = self._history.lead
        if not acks:
            if lead:
                await self._eval(SCRIPTS["ack"], lead, (b"", self._result_ttl, self._dead_ttl, b"", packed))
            if writing is not None:
                await writing
            return []
        ids = list(map(_ack_id, acks))
        try:
            groups, _ = await self._by_queue(ids)
            head = (os.urandom(8).hex(), self._result_ttl, self._dead_ttl, self._events_arg, packed if lead else b"")
            applied = await self._batched(SCRIPTS["ack"], ack_keys, head, groups, acks, lead, flat=True)
        finally:
            if writing is not None:
                await writing
        # Applied or stale, this instance is done with these claims.
        collections.deque(map(self._claimed.pop, ids, itertools.repeat(None)), maxlen=0)
        return applied

    async def renew(self, leases: Sequence[tuple[str, int, float]], beat: Beat | None = None) -> list[bool]:
        script = SCRIPTS["renew"]
        head: tuple[bytes, ...] = (b"",)
        lead: tuple[bytes, ...] = ()
        beating: Any = None
        if beat is not None:
            check_beat(beat)
            packed = (pack([beat.worker_id, float(beat.ttl), pack(list(beat.running))]),)
            if self._client is None:
                await self._redis()  # connect first: the branch below depends on self.cluster
            if self.cluster:
                # The worker keys are a slot of their own: one call for the beat, beside
                # the per-queue renewals (never one beat per queue).
                beating = asyncio.ensure_future(self._eval(script, self._workers.worker(beat.worker_id), packed))
            else:
                head, lead = packed, self._workers.worker(beat.worker_id)
        elif not leases:
            return []
        try:
            groups, _ = await self._by_queue(list(map(_lease_job_id, leases)))
            applied = await self._batched(script, renew_keys, head, groups, leases, lead)
        finally:
            if beating is not None:
                await beating
        claimed = self._claimed
        for (job_id, _, _), ok in zip(leases, applied):
            if not ok:
                claimed.pop(job_id, None)  # lost: no ack will come for it
        return applied

    # -- workers ----------------------------------------------------------------------

    async def register_worker(self, info: WorkerInfo, ttl: float) -> None:
        check_worker(info, ttl)
        await self._eval(SCRIPTS["register_worker"], self._workers.worker(info.id), (
            info.id, info.hostname, info.pid, pack(list(info.queues)), info.concurrency, info.version,
            float(ttl), pack([]),
        ))

    async def deregister_worker(self, worker_id: str) -> bool:
        check_worker_id(worker_id)
        return bool(await self._eval(SCRIPTS["deregister_worker"], self._workers.worker(worker_id), (worker_id,)) == 1)

    async def workers(self) -> list[WorkerInfo]:
        reply = await self._eval(SCRIPTS["workers"], (self._workers.beats,), ())
        now = float(reply[0])
        listed = []
        for worker_id, flat in zip(reply[1::2], reply[2::2]):
            fields = dict(zip(flat[0::2], flat[1::2]))
            last_seen = float(fields[b"last_seen"])
            listed.append(WorkerInfo(
                id=worker_id.decode(), hostname=fields[b"hostname"].decode(), pid=int(fields[b"pid"]),
                queues=tuple(unpack(fields[b"queues"])), concurrency=int(fields[b"concurrency"]),
                version=fields[b"version"].decode(), started_at=float(fields[b"started_at"]), last_seen=last_seen,
                running=tuple(unpack(fields[b"running"])), alive=last_seen + float(fields[b"ttl"]) >= now,
            ))
        return by_start(listed)

    # -- pausing ----------------------------------------------------------------------

    async def pause(self, queue: str) -> None:
        client = await self._redis()
        k = self._queue(queue)
        if self.cluster:
            # Registered first (the registry lives in another slot): a paused
            # queue must always be one that paused() looks at.
            await client.sadd(self._registry, queue)
            self._registered[queue] = time.monotonic()
            await client.set(k.paused, b"1")
        else:
            async with client.pipeline(transaction=True) as pipe:
                pipe.sadd(self._registry, queue)
                pipe.set(k.paused, b"1")
                await pipe.execute()

    async def resume(self, queue: str) -> None:
        await self._eval(SCRIPTS["resume"], self._queue(queue).resume, ())

    async def paused(self) -> list[str]:
        # The flag lives in each queue's own slot (claim checks it atomically);
        # the registry says which queues to look at.
        queues = await self._queues()
        if not queues:
            return []
        client = await self._redis()
        pipe = client.pipeline(transaction=False)
        for q in queues:
            pipe.exists(self._queue(q).paused)
        flags = await pipe.execute()
        return [q for q, flag in zip(queues, flags) if int(flag)]

    # -- maintenance ------------------------------------------------------------------

    async def recover(self) -> int:
        args = (self._dead_ttl, LEASE_EXPIRED_MESSAGE, self._events_arg)
        replies = await self._each_queue(SCRIPTS["recover"], await self._queues(), recover_keys, args)
        return sum(int(r) for r in replies)

    async def promote_due(self) -> int:
        replies = await self._each_queue(SCRIPTS["promote"], await self._queues(), promote_keys, ())
        return sum(int(r) for r in replies)

    async def shift_due(self, seconds: float) -> int:
        replies = await self._each_queue(SCRIPTS["shift"], await self._queues(), shift_keys, (float(seconds),))
        return sum(int(r) for r in replies)

    async def cleanup(self) -> int:
        queues = await self._queues()
        removed = 0
        script = SCRIPTS["cleanup"]
        args = (self._result_ttl, self._dead_ttl, _CHUNK)
        while queues:
            replies = await self._each_queue(script, queues, cleanup_keys, args)
            removed += sum(int(r[0]) for r in replies)
            if not any(int(r[1]) for r in replies):
                break
        return removed

    # -- inspection and control ------------------------------------------------------

    async def get(self, job_id: str) -> StoredJob | None:
        found = await self._find(job_id)
        if found is None:
            return None
        queue, reply = found
        _, now, record, body, result, errors = reply[:6]
        progress, deps, parent_ids, limit_key, meta = (list(reply[6:11]) + [None] * 5)[:5]
        return stored_job(
            job_id, queue, record, body, result, errors, float(now), progress, deps, limit_key, parent_ids, meta
        )

    async def set_progress(self, job_id: str, token: int, progress: bytes) -> bool:
        script = SCRIPTS["set_progress"]
        args = (token, progress, self._events_arg)
        queue = self._claimed.get(job_id)
        if queue is not None:
            # The usual caller is the worker that claimed the job through this
            # backend: its queue is known, one call.
            return int(await self._eval(script, self._queue(queue).progress(job_id), args)) == 1
        replies = await self._each_queue(script, await self._queues(), lambda k: k.progress(job_id), args)
        return any(int(r) == 1 for r in replies)

    async def stats(self) -> dict[str, dict[str, int | str]]:
        queues = await self._queues()
        replies = await self._each_queue(SCRIPTS["stats"], queues, stats_keys, ())
        rows = [row for reply in replies for row in reply]  # one per queue, in order
        out: dict[str, dict[str, int | str]] = {}
        for queue, row in zip(queues, rows):
            if isinstance(row, bytes):
                out[queue] = {BROKEN: row.decode("utf-8", "replace")}
            elif any(row):
                out[queue] = dict(zip(STATE_NAMES, map(int, row)))
        return out

    async def list_jobs(
        self, state: int, queue: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[StoredJob]:
        if state == QUEUED and queue is not None and 0 < offset + limit <= OLDEST_MAX:
            # The oldest ready jobs from the queue's live index (health checks, the dashboard):
            # not every ready job of the queue read and sorted. Falls through when its budget ran out.
            reply = await self._eval(SCRIPTS["oldest"], (self._queue(queue).live,), (offset + limit, OLDEST_BUDGET))
            if int(reply[0]) == 1:
                jobs = await self._fetch([(m.decode(), queue) for m in reply[1:]], await self.now())
                return [job for job in jobs if job.state == QUEUED][offset:]
        client = await self._redis()
        queues = [queue] if queue is not None else await self._queues()
        if not queues or limit <= 0:
            return []
        now = await self.now()
        # Candidates per queue: a finished state's retention index is in finish
        # order, so only the first offset+limit of each can make the page; live
        # states are gathered whole (this is an inspection call). Lists of
        # lists (ready lists per priority, lease batches) take a second trip.
        pipe = client.pipeline(transaction=False)
        kinds: list[tuple[str, str]] = []  # (queue, how to read the reply)
        for q in queues:
            k = self._queue(q)
            if state in (SUCCEEDED, DEAD, CANCELLED):
                pipe.zrange(k.finished[state], 0, offset + limit - 1)
                kinds.append((q, "ids"))
            elif state == QUEUED:
                pipe.zrange(k.ready, 0, -1)
                pipe.zrangebyscore(k.sched, "-inf", now)
                pipe.zrangebyscore(k.retry, "-inf", now)
                pipe.zrange(k.prio, 0, -1)
                pipe.zrange(k.limitwait, 0, -1)
                kinds += [(q, "members")] * 3 + [(q, "prio"), (q, "limited")]
            elif state == WAITING:
                pipe.zrange(k.waiting, 0, -1)
                kinds.append((q, "ids"))
            elif state == SCHEDULED:
                pipe.zrangebyscore(k.sched, f"({now}", "+inf")
                kinds.append((q, "members"))
            elif state == RETRY_PENDING:
                pipe.zrangebyscore(k.retry, f"({now}", "+inf")
                kinds.append((q, "members"))
            elif state == ACTIVE:
                pipe.zrange(k.leases, 0, -1)
                kinds.append((q, "batches"))
        found = await pipe.execute()
        second = client.pipeline(transaction=False)
        second_kinds: list[tuple[str, str]] = []
        candidates: dict[str, str] = {}
        for (q, kind), reply in zip(kinds, found):
            k = self._queue(q)
            for m in reply:
                if kind == "members":
                    candidates.setdefault(m[16:].decode(), q)
                elif kind == "ids":
                    candidates.setdefault(m.decode(), q)
                elif kind == "prio":
                    second.lrange(k.ready_list(m), 0, -1)
                    second_kinds.append((q, "members"))
                elif kind == "batches":
                    second.lrange(k.lease_batch(m), 0, -1)
                    second_kinds.append((q, "ids"))
                elif kind == "limited":
                    second.zrange(k.parked(m), 0, -1)
                    second_kinds.append((q, "members"))
        if second_kinds:
            for (q, kind), reply in zip(second_kinds, await second.execute()):
                for m in reply:
                    candidates.setdefault(m[16:].decode() if kind == "members" else m.decode(), q)
        jobs = await self._fetch(list(candidates.items()), now)
        return [job for job in jobs if job.state == state][offset : offset + limit]

    async def _fetch(self, candidates: list[tuple[str, str]], now: float) -> list[StoredJob]:
        """Read jobs (id, queue) in one pipeline; oldest first, as list_jobs orders them."""
        if not candidates:
            return []
        pipe = (await self._redis()).pipeline(transaction=False)
        for job_id, q in candidates:
            k = self._queue(q)
            jk, bk, rk, ek, pk, dk, dpk, lk, tk = k.lookup(job_id)
            pipe.get(jk)
            pipe.get(bk)
            pipe.get(rk)
            pipe.lrange(ek, 0, -1)
            pipe.get(pk)
            pipe.get(dk)
            pipe.get(dpk)
            pipe.get(lk)
            pipe.get(tk)
        replies = await pipe.execute(raise_on_error=False)
        jobs: list[StoredJob] = []
        for n, (job_id, q) in enumerate(candidates):
            record, body, result, errors, progress, deps, parent_ids, limit_key, meta = replies[9 * n : 9 * n + 9]
            if not isinstance(record, bytes):
                continue  # deleted meanwhile
            jobs.append(stored_job(
                job_id, q, record, body if isinstance(body, bytes) else None,
                result if isinstance(result, bytes) else None,
                errors if isinstance(errors, list) else None, now,
                progress if isinstance(progress, bytes) else None,
                deps if isinstance(deps, bytes) else None,
                limit_key if isinstance(limit_key, bytes) else None,
                parent_ids if isinstance(parent_ids, bytes) else None,
                meta if isinstance(meta, bytes) else None,
            ))
        jobs.sort(key=lambda j: (j.finished_at or j.enqueued_at, j.id))
        return jobs

    # -- waiting ------------------------------------------------------------------------

    async def wait(self, queues: Sequence[str], timeout: float) -> None:
        if timeout <= 0 or not queues:
            return
        if self._broken:
            # A damaged queue left out of claims is left out here too: a wait
            # that failed on it at once would make its worker spin.
            queues = self._serviceable(queues)
            if not queues:
                await asyncio.sleep(timeout)
                return
        await self._redis()
        await self._wakeups.wait([self._queue(q) for q in queues], timeout)
