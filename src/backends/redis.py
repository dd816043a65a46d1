"""The Redis backend: ``redis://``, ``rediss://`` (TLS) and ``unix://`` URLs, standalone or Cluster.

Many worker processes on many hosts share queues through one Redis (or one
Redis Cluster; Redis 6.2 or later). Every state change is one atomic Lua
script from ``fastjobs/lua/<op>-<numkeys>.lua`` (each opens with a header
listing its KEYS, ARGV and return values), loaded once at connect and called
with EVALSHA (loaded again on NOSCRIPT). Claims, acks, renewals and enqueues
are batches: one script call per batch, one round trip; a batch travels as
one msgpack argument per queue.

Why the data is laid out as it is (the full layout is in ``lua/_common.lua``):

* Every key of a queue is ``<prefix>:{<queue>}:...``: the hash tag puts a queue
  in one Cluster slot, so each script touches one slot and queues spread over
  the cluster. Outside Cluster a script may take the key groups of several
  queues at once (a multi-queue claim, ack or enqueue is still one call).
* Redis time per job is what bounds every worker sharing a server, so the
  scripts do per-job work only where they must: a job is a record string plus
  a body string, read and written a batch at a time (MGET/MSET) rather than a
  hash per job with several calls each; ready jobs wait in one LIST per
  priority (RPUSH/LPOP, FIFO by a per-queue sequence number), and only jobs
  back from a delay, which keep their original position, go through a small
  ZSET merged in at claim; a claim leases its jobs as one batch (one ZSET
  entry and a count) instead of one ZSET entry per job. Measured in
  claim/ack cycles of 100 jobs, that is a third less Redis time per job than
  per-job hashes and ZSETs.
* Time is Redis ``TIME``, read inside each script; a worker's clock is never used.
* Finished jobs are deleted past their retention by the ack script itself, a
  bounded amount per call from the front of the time-ordered retention
  indexes, so memory stays bounded even if :meth:`cleanup` never runs (a key
  expiry per job would cost one more Redis call per job).

Finding a job by id alone (``get``, ``cancel``, ``retry_dead``): a per-prefix
registry SET (``<prefix>:queues``) lists every queue ever enqueued to, and the
job is looked up in each queue's slot (one script call outside Cluster, one
concurrent call per queue in Cluster). An id -> queue index was the
alternative; it would be one more key per job to write at enqueue, delete at
finish and keep consistent across slots, on the hot path, to speed up calls
that are not. Acks and renewals need no lookup: the backend remembers the
queue of each job it claimed.

Pausing: a per-queue ``paused`` key in the queue's own slot, checked by the
claim script itself, so a pause holds atomically in Cluster without a
cross-slot read; ``paused()`` finds the flags through the queue registry (a
pause registers its queue first). The idle-wait script ignores ready jobs of
a paused queue, and resume wakes the idle workers.

Progress: ``set_progress`` is one script call that checks the lease token and
writes a ``p:<id>`` key beside the job's other keys (the job record is not
rewritten after the first report; a flag in it tells the succeeded retention
index to delete the key). The worker that claimed the job knows its queue,
so the call costs one round trip; any other caller looks the job up.

Uniqueness windows (``NewJob.unique_ttl``): the ``unique`` HASH keeps naming
a succeeded job while its window runs; the window's end (Redis time) is a
score in the queue's ``uniqueheld`` ZSET, checked by the enqueue script under
the same atomicity as the live-job check. The seconds travel with the job in
a ``u:<id>`` key, written only for jobs that have a window, so a job revived
from the dead-letter queue keeps its window; dead and cancelled jobs release
the key at once. Ended windows are freed by the ack script as new ones begin
and by :meth:`cleanup`, so the hash stays bounded.

Dependencies (``NewJob.depends_on``): a parent must be in its dependant's
queue, so the counts, the dependant lists and the state changes they cause
stay in one slot and one script: the dependant is stored ``waiting`` (a
``waiting`` ZSET, its counts in ``d:<id>``) and listed in ``c:<parent>`` of
each parent still running. The script that finishes a job (ack, lease
recovery in claim and recover, cancel) settles its dependants in the same
call, cascading through the ones it cancels; a record flag says a job has
dependants, so a plain job's finish looks for none. A released dependant keeps
the position its enqueue gave it (through the ``ready`` ZSET, as a job back
from a delay). A parent not in the queue is refused with
:class:`~fastjobs.DependencyError`; only then is it looked up elsewhere, to
say "queue" rather than "unknown".

Limits (``NewJob.limit``) are counted per (queue, key) by the claim script:
active count in ``lactive``, a per-key lease log ZSET for the sliding rate
window (Redis time). Limited jobs travel the ready structures like any other
(so plain jobs cost nothing more); one that claim meets over its key's limit
is parked, with its position, in the key's ``lq:<key>`` ZSET, and the claim
goes on with the next entries, so a saturated key never blocks its queue and
is not walked again. ``limitwait`` lists the keys with parked jobs, scored by
when they may go again (the window's next opening, or when an active job of
the key leaves: its ack, cancel or lease recovery makes the key due and wakes
the idle workers); claim first moves as many parked jobs as the key has room
for back into ``ready``. The idle-wait script counts a parked key only by that
time, so a worker does not spin on held jobs.

Optional features stay off the hot path: an enqueue batch names them in one
trailing argument only when some job has them, and claim and ack test a
record flag that is empty for a plain job.

Idle workers block on a per-queue wake-up LIST (``BLPOP``) on a connection of
their own, not the shared pool; enqueues, requeues and retries push a token.
The BLPOP is pipelined behind a small script that reports whether a job is
ready and when the next delayed job or lease falls due; a local timer ends the
wait at that moment with ``CLIENT UNBLOCK`` (Redis' own BLPOP timeout is only
as precise as its ``hz``, 100 ms by default).

A reply lost to a broken connection: redis-py retries the call on a new
connection (with backoff), and enqueue and ack calls carry a nonce, so the
retry finds its own work done and answers as the first call did. A retried
claim leases new jobs; the first claim's jobs come back when their lease
expires, as a crashed worker's do.

Differences from the memory backend, all forced by Cluster slots: a
``unique_key`` is unique per queue; a job id is checked for duplicates within
its queue; in Cluster, ``enqueue_many`` is atomic per queue, not across queues.

Example:
    >>> import fastjobs
    >>> app = fastjobs.App("redis://localhost:6379/0", prefix="myapp")  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import collections
import functools
import hashlib
import importlib.resources
import itertools
import logging
import os
import operator
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, Sequence

import msgpack  # type: ignore[import-untyped, unused-ignore]
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import (
    ConnectionError as RedisConnectionError,
    NoScriptError,
    ResponseError,
    TimeoutError as RedisTimeoutError,
)

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
)
from ..errors import BackendUnavailableError, ConfigurationError, DependencyError, DuplicateJobError
from .base import Ack, Backend, BackendOptions, Claim, NewJob, StoredJob

log = logging.getLogger("fastjobs.redis")


_FINISHED_KEY = {SUCCEEDED: "succeeded", DEAD: "dead", CANCELLED: "cancelled"}
_CHUNK = 1000
"""Entries a cleanup or purge call handles per set, so one call never blocks Redis long."""
_REGISTRY_REFRESH = 30.0
"""Seconds a Cluster client trusts that a queue is in the registry before adding it again: a
registry lost with its node (restarted empty, failed over before replication) heals within that."""
_UNBLOCK_EARLY = 0.005
"""A poll-length wait ends this much early, so the worker's own timeout never has to cancel it."""
_pack = msgpack.Packer(use_bin_type=False).pack
"""Batches travel as one msgpack argument per queue; Redis' cmsgpack reads
bytes only as the old raw type, hence ``use_bin_type=False``."""
_new_claim = functools.partial(tuple.__new__, Claim)
"""Claim((id, token, attempt, body)) without NamedTuple's Python-level __new__ (a hot path)."""
_first = operator.itemgetter(0)
_second = operator.itemgetter(1)
_depends_on = operator.itemgetter(8)
_limit = operator.itemgetter(10)
_ONE = 1


def _redact(url: str) -> str:
    """The URL without its password, for messages."""
    return re.sub(r"(://[^:@/]*:)[^@/]*@", r"\1***@", url)


# -- scripts --------------------------------------------------------------------


class Script:
    """One Lua script: its source with includes resolved, and its SHA1."""

    __slots__ = ("name", "numkeys", "source", "sha")

    def __init__(self, name: str, numkeys: int, source: str) -> None:
        self.name = name
        self.numkeys = numkeys
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def __repr__(self) -> str:
        return f"<Script {self.name}-{self.numkeys} {self.sha[:8]}>"


_SCRIPT_NAME = re.compile(r"^(?P<op>[a-z_]+)-(?P<numkeys>\d+)\.lua$")
_INCLUDE = re.compile(r"^-- @include (\w+)$", re.MULTILINE)


def load_scripts() -> dict[str, Script]:
    """Read ``fastjobs/lua/<op>-<numkeys>.lua``, pasting in ``-- @include <name>`` snippets."""
    folder = importlib.resources.files("fastjobs") / "lua"
    texts = {entry.name: entry.read_text("utf-8") for entry in folder.iterdir() if entry.name.endswith(".lua")}

    def include(match: re.Match[str]) -> str:
        return texts[match.group(1) + ".lua"]

    scripts = {}
    for name, text in sorted(texts.items()):
        m = _SCRIPT_NAME.match(name)
        if m is None:
            continue
        scripts[m["op"]] = Script(m["op"], int(m["numkeys"]), _INCLUDE.sub(include, text))
    return scripts


SCRIPTS = load_scripts()


# -- keys -----------------------------------------------------------------------


class _QueueKeys:
    """The keys of one queue, pre-encoded, grouped as each script takes them (see lua/_common.lua)."""

    __slots__ = (
        "queue", "base", "ready", "prio", "sched", "retry", "leases", "enqueue", "claim", "ack", "renew",
        "peek", "wake", "paused", "resume", "recover", "promote", "cancel", "retry_dead", "stats", "cleanup",
        "finished", "waiting", "limitwait",
    )

    def __init__(self, prefix: str, queue: str) -> None:
        self.queue = queue
        base = f"{prefix}:{{{queue}}}:"
        self.base = base.encode()

        def k(name: str) -> bytes:
            return (base + name).encode()

        ready, prio, sched, retry = k("ready"), k("prio"), k("sched"), k("retry")
        leases, leasecount, ghosts = k("leases"), k("leasecount"), k("ghosts")
        succeeded, cancelled, dead = k("succeeded"), k("cancelled"), k("dead")
        unique, seq, wake, paused = k("unique"), k("seq"), k("wake"), k("paused")
        held = k("uniqueheld")
        self.ready, self.prio, self.sched, self.retry, self.leases = ready, prio, sched, retry, leases
        self.enqueue = (prio, sched, unique, seq, wake, held)
        self.claim = (ready, prio, sched, retry, leases, leasecount, dead, unique, seq, wake, ghosts, paused)
        self.ack = (leases, leasecount, prio, retry, succeeded, dead, unique, seq, wake, held)
        self.renew = (leases, leasecount, seq)
        self.peek = (ready, prio, sched, retry, leases, wake, paused)
        self.wake = wake
        self.paused = paused
        self.resume = (paused, wake)
        self.recover = (prio, leases, leasecount, dead, unique, seq, wake)
        self.promote = (ready, sched, retry, wake)
        self.cancel = (ready, sched, retry, leases, leasecount, cancelled, unique, ghosts)
        self.retry_dead = (prio, dead, unique, seq, wake, held)
        self.stats = (ready, prio, sched, retry, leasecount, succeeded, dead, cancelled, ghosts)
        self.cleanup = (succeeded, cancelled, dead, unique, held)
        self.finished = {SUCCEEDED: succeeded, DEAD: dead, CANCELLED: cancelled}
        self.waiting, self.limitwait = k("waiting"), k("limitwait")

    def job(self, job_id: str) -> tuple[bytes, bytes, bytes, bytes, bytes]:
        """The job's record, body, result, error-list and progress keys."""
        jid = job_id.encode()
        base = self.base
        return base + b"j:" + jid, base + b"b:" + jid, base + b"r:" + jid, base + b"e:" + jid, base + b"p:" + jid

    def lookup(self, job_id: str) -> tuple[bytes, ...]:
        """The keys the get script reads: record, body, result, errors, progress, dependency counts,
        parents, limit key."""
        jid = job_id.encode()
        base = self.base
        return (
            base + b"j:" + jid, base + b"b:" + jid, base + b"r:" + jid, base + b"e:" + jid, base + b"p:" + jid,
            base + b"d:" + jid, base + b"dp:" + jid, base + b"l:" + jid,
        )

    def parked(self, key: bytes) -> bytes:
        """The ZSET of the queued jobs a limit key parked (see lua/_common.lua)."""
        return self.base + b"lq:" + key

    def progress(self, job_id: str) -> tuple[bytes, bytes]:
        """The keys set_progress takes: the job's record and progress."""
        jid = job_id.encode()
        return self.base + b"j:" + jid, self.base + b"p:" + jid


# -- decoding ---------------------------------------------------------------------


def _int(value: bytes | None, default: int = 0) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        try:
            return int(float(value))  # type: ignore[arg-type]
        except ValueError:
            return default


def _float(value: bytes | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _stored(
    job_id: str, queue: str, record: bytes, body: bytes | None, result: bytes | None,
    errors: list[bytes] | None, now: float, progress: bytes | None = None,
    deps: bytes | None = None, limit_key: bytes | None = None, parent_ids: bytes | None = None,
) -> StoredJob:
    """A StoredJob from the job record string (see lua/_common.lua) and its companions."""
    fields = record.split(b"|", 15)
    if len(fields) != 16:
        fields = [b"5"] + [b""] * 15  # unreadable: reported dead, as claim would make it
    st, a, m, t, p, _, e, ra, sa, f, _, _, lease, _, _, u = fields
    state = _int(st, DEAD)
    if not 0 <= state < len(STATE_NAMES):
        state = DEAD
    enqueued_at = _float(e) or 0.0
    run_at = _float(ra) or enqueued_at
    if state in (SCHEDULED, RETRY_PENDING) and run_at <= now:
        state = QUEUED
    parents: tuple[str, ...] = ()
    pending = failed = 0
    if deps:
        # "mode|pending|failed|delay" (see lua/_common.lua)
        parts = deps.split(b"|", 3)
        if len(parts) == 4:
            pending, failed = max(0, _int(parts[1])), _int(parts[2])
    if parent_ids:
        try:
            parents = tuple(
                p.decode("utf-8", "replace") if isinstance(p, bytes) else str(p)
                for p in msgpack.unpackb(parent_ids, raw=True)
            )
        except Exception:
            parents = ()
    return StoredJob(
        id=job_id,
        queue=queue,
        state=state,
        priority=-_int(p),
        attempt=_int(a),
        max_attempts=_int(m),
        token=_int(t),
        body=body or b"",
        result=result,
        errors=list(errors or ()),
        enqueued_at=enqueued_at,
        run_at=run_at,
        started_at=_float(sa),
        finished_at=_float(f) if state in (SUCCEEDED, DEAD, CANCELLED) else None,
        lease_until=_float(lease) if state == ACTIVE else None,
        unique_key=u.decode("utf-8", "replace") if u else None,
        progress=progress,
        parents=parents,
        pending_parents=pending,
        failed_parents=failed,
        limit_key=limit_key.decode("utf-8", "replace") if limit_key else None,
    )


# -- the backend ------------------------------------------------------------------


class RedisBackend(Backend):
    """Jobs in Redis or Redis Cluster (see the module docstring).

    Args:
        url: ``redis://[[user]:password@]host[:port][/db]``, ``rediss://...`` for
            TLS (``?ssl_cert_reqs=none`` and friends as redis-py reads them), or
            ``unix://[[user]:password@]/path/to/socket[?db=N]``.
        options: retention and the key prefix (``BackendOptions.prefix``).
        cluster: True for Redis Cluster, False for a single server, None
            (default) to ask the server at connect.
        max_connections: size of the connection pool (per cluster node).
        socket_timeout: seconds before a command without reply fails (and is retried).
        retries: how many times redis-py retries a command on a connection
            error, with jittered exponential backoff, before the error reaches
            the worker (which logs it and retries with its own backoff).
        **redis_options: passed on to ``redis.asyncio.Redis.from_url``.

    Example:
        >>> from fastjobs.backends import BackendOptions, create_backend
        >>> backend = create_backend("redis://localhost/0", BackendOptions(prefix="myapp"))
        >>> type(backend).__name__
        'RedisBackend'
    """

    loop_bound = True

    def __init__(
        self,
        url: str,
        options: BackendOptions,
        *,
        cluster: bool | None = None,
        max_connections: int = 64,
        socket_timeout: float | None = 15.0,
        socket_connect_timeout: float | None = 5.0,
        retries: int = 5,
        **redis_options: Any,
    ) -> None:
        super().__init__(url, options)
        prefix = options.prefix
        if not prefix or "{" in prefix or "}" in prefix:
            raise ConfigurationError(
                f"invalid Redis key prefix {prefix!r}: use a non-empty string without '{{' or '}}' "
                "(braces would change the Cluster hash tags)"
            )
        self.prefix = prefix
        self._cluster_option = cluster
        self.cluster = False
        self._client_options: dict[str, Any] = {
            "max_connections": max_connections,
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": socket_connect_timeout,
            "health_check_interval": 30,
            "retry": Retry(ExponentialWithJitterBackoff(base=0.05, cap=1.0), retries),
            **redis_options,
        }
        if not url.lower().startswith("unix:"):
            # TCP keepalive notices a peer that vanished without closing (unix sockets have no such option).
            self._client_options.setdefault("socket_keepalive", True)
        self._client: Any = None  # aioredis.Redis or RedisCluster once connected
        self._closed = False
        self._connect_lock: asyncio.Lock | None = None
        self._registry = f"{prefix}:queues".encode()
        self._keys: dict[str, _QueueKeys] = {}
        self._claim_keys: dict[tuple[str, ...], tuple[tuple[bytes, ...], list[str]]] = {}
        self._registered: dict[str, float] = {}
        """Cluster: queue -> monotonic time this instance last added it to the registry."""
        self._claimed: dict[str, str] = {}
        """Job id -> queue of the jobs this instance claimed and has not acked: acks need no lookup."""
        self._result_ttl = options.result_ttl
        self._dead_ttl = options.dead_ttl
        self._wait_pool: ConnectionPool | None = None
        self._waiters: list[_Blocker] = []
        self._background: set[asyncio.Task[Any]] = set()

    def __repr__(self) -> str:
        return f"<RedisBackend {_redact(self.url)} prefix={self.prefix!r}{' cluster' if self.cluster else ''}>"

    # -- connections --------------------------------------------------------------

    async def connect(self) -> None:
        if self._client is not None:
            return
        self._closed = False
        if self._connect_lock is None:
            self._connect_lock = asyncio.Lock()
        async with self._connect_lock:
            if self._client is not None:
                return
            client: Any = aioredis.Redis.from_url(self.url, **self._client_options)
            cluster = self._cluster_option
            try:
                if cluster is None:
                    info = await client.info("cluster")
                    cluster = bool(info.get("cluster_enabled"))
                if cluster:
                    await client.aclose()
                    options = dict(self._client_options)
                    options.pop("health_check_interval", None)
                    client = RedisCluster.from_url(self.url, **options)
                    await client.initialize()
                self.cluster = bool(cluster)
                await self._load_scripts(client)
            except BaseException as exc:
                await client.aclose()
                if isinstance(exc, (RedisConnectionError, RedisTimeoutError)):
                    raise BackendUnavailableError(
                        f"cannot reach Redis at {_redact(self.url)} ({exc}); is the server running and the URL right?"
                    ) from exc
                raise
            if not self.cluster:
                # Blocked BLPOPs get connections of their own: a wait never holds a pooled one.
                options = {k: v for k, v in self._client_options.items() if k != "max_connections"}
                options["socket_timeout"] = None
                self._wait_pool = ConnectionPool.from_url(self.url, **options)
            self._client = client

    async def close(self) -> None:
        self._closed = True
        client, self._client = self._client, None
        background = list(self._background)
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            await waiter.close()
        pool, self._wait_pool = self._wait_pool, None
        if pool is not None:
            await pool.disconnect()
        if client is not None:
            await client.aclose()

    async def _load_scripts(self, client: Any) -> None:
        for script in SCRIPTS.values():
            sha = await client.script_load(script.source)
            if isinstance(sha, dict):  # Cluster: one reply per node
                sha = next(iter(sha.values()))
            if isinstance(sha, bytes):
                sha = sha.decode()
            if sha != script.sha:
                raise ConfigurationError(f"Redis returned SHA {sha} for script {script.name}, expected {script.sha}")

    async def _reload_scripts(self) -> None:
        client = self._client
        if client is not None:
            try:
                await self._load_scripts(client)
            except Exception as exc:
                log.warning("could not load the scripts again: %s", exc)

    async def _redis(self) -> Any:
        """The connected client; waits for a connect in progress (the App hands out a
        backend before its first connect finishes, so a second task can get here first)."""
        client = self._client
        if client is None:
            if self._closed:
                raise ConfigurationError("this RedisBackend was closed; create a new one (App.backend() does)")
            await self.connect()
            client = self._client
        return client

    async def _eval(self, script: Script, keys: Sequence[bytes], args: Sequence[Any]) -> Any:
        client = await self._redis()
        try:
            return await client.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        except NoScriptError:
            # The server restarted or SCRIPT FLUSH ran: load again, once.
            log.info("Redis lost its scripts (restart or SCRIPT FLUSH?); loading them again")
            await self._load_scripts(client)
            return await client.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)

    def _queue(self, queue: str) -> _QueueKeys:
        keys = self._keys.get(queue)
        if keys is None:
            keys = self._keys[queue] = _QueueKeys(self.prefix, queue)
        return keys

    async def _queues(self) -> list[str]:
        client = await self._redis()
        names = await client.smembers(self._registry)
        return sorted(n.decode() for n in names)

    async def _each_queue(
        self, script: Script, queues: Sequence[str], group: Callable[[_QueueKeys], Sequence[bytes]], args: Sequence[Any]
    ) -> list[Any]:
        """Call ``script`` on every queue: one call for all outside Cluster, one per queue in Cluster.

        Returns the replies, one per call.
        """
        if self._client is None:
            await self._redis()  # connect first: the branches below depend on self.cluster
        if not queues:
            return []
        if not self.cluster:
            keys: list[bytes] = []
            for q in queues:
                keys.extend(group(self._queue(q)))
            return [await self._eval(script, keys, args)]
        return list(await asyncio.gather(*(self._eval(script, group(self._queue(q)), args) for q in queues)))

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
        queues = list(map(_second, jobs))
        if queues.count(queues[0]) == len(queues):
            groups: dict[str, list[int]] = {queues[0]: list(range(len(jobs)))}
        else:
            groups = {}
            for i, queue in enumerate(queues):
                groups.setdefault(queue, []).append(i)
        ids = list(map(_first, jobs))
        script = SCRIPTS["enqueue"]
        whole = len(groups) == 1
        features = self._features(jobs, queues)
        # The features travel as one trailing argument, only when some job has
        # them: a plain batch's script call is what it was.
        tail = (features,) if features else ()
        try:
            if not self.cluster:
                keys: list[bytes] = []
                args: list[Any] = [nonce]
                for queue, indexes in groups.items():
                    keys.extend(self._queue(queue).enqueue)
                    args.append(_pack(jobs if whole else [jobs[i] for i in indexes]))
                keys.append(self._registry)
                args.extend(tail)
                reply = await self._eval(script, keys, args)
                order = list(groups.values())
                for k in range(0, len(reply), 3):
                    ids[order[reply[k] - 1][reply[k + 1] - 1]] = reply[k + 2].decode()
            else:
                client = await self._redis()

                async def one(queue: str, indexes: list[int]) -> None:
                    packed = _pack(jobs if whole else [jobs[i] for i in indexes])
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
                _, _, i, j, queue = message.split(" ", 4)
                job = jobs[groups[queue][int(i) - 1]]
                raise await self._dependency_error(job[0], job[8][int(j) - 1]) from None
            raise
        return ids

    @staticmethod
    def _features(jobs: Sequence[NewJob], queues: list[str]) -> str:
        """'d' and/or 'l' when some job has parents / a limit ('' for a plain batch).

        Also refuses, before anything is sent, a parent enqueued in the same
        batch into another queue (the scripts see one queue each)."""
        deps = any(map(_depends_on, jobs))
        limits = any(map(_limit, jobs))
        if deps:
            queue_of = dict(zip(map(_first, jobs), queues))
            for job, queue in zip(jobs, queues):
                for parent in job[8]:
                    other = queue_of.get(parent)
                    if other is not None and other != queue:
                        raise DependencyError(job[0], parent, "queue")
        return ("d" if deps else "") + ("l" if limits else "")

    async def _dependency_error(self, job_id: str, parent: str) -> DependencyError:
        """The error for a parent not in its dependant's queue: "queue" if it is in another one."""
        found = await self._find(parent)
        return DependencyError(job_id, parent, "queue" if found is not None else "unknown")

    async def _register(self, client: Any, queues: Sequence[str]) -> None:
        """Cluster: add queues to the registry, unless done lately. Every enqueue would otherwise
        send one more command to the single node holding the registry."""
        now = time.monotonic()
        registered = self._registered
        stale = [q for q in queues if q not in registered or now - registered[q] >= _REGISTRY_REFRESH]
        if stale:
            # Remembered only once it succeeded: after a failure the next enqueue sends it again.
            await client.sadd(self._registry, *stale)
            registered.update(dict.fromkeys(stale, now))

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
        if n <= 0 or not queues:
            return []
        script = SCRIPTS["claim"]
        claims: list[Claim] = []
        if not self.cluster or len(queues) == 1:
            keys, names = self._claim_group(queues)
            # Again only when the script stopped at its budget of skipped
            # leftovers (see claim-12.lua): each call gets through that many.
            while await self._claim_once(script, keys, names, n - len(claims), lease, claims) and len(claims) < n:
                pass
            return claims
        # Cluster, several queues: one call per queue (one slot each), in order.
        for queue in queues:
            keys = self._queue(queue).claim
            while await self._claim_once(script, keys, [queue], n - len(claims), lease, claims) and len(claims) < n:
                pass
            if len(claims) >= n:
                break
        return claims

    async def _claim_once(
        self, script: Script, keys: Sequence[bytes], names: list[str], n: int, lease: float, claims: list[Claim]
    ) -> bool:
        """One claim call: its jobs appended to ``claims``; True if it stopped early (call again)."""
        reply = await self._eval(script, keys, (n, lease, self._dead_ttl))
        claimed = self._claimed
        groups = len(names)
        start = 1 + groups
        if groups == 1:
            if len(reply) > start:
                ids = list(map(bytes.decode, reply[start::4]))
                claims += map(_new_claim, zip(ids, reply[start + 1 :: 4], reply[start + 2 :: 4], reply[start + 3 :: 4]))
                claimed.update(dict.fromkeys(ids, names[0]))
        else:
            i = start
            for queue, count in zip(names, reply[1:start]):
                end = i + 4 * count
                ids = list(map(bytes.decode, reply[i:end:4]))
                claims += map(_new_claim, zip(ids, reply[i + 1 : end : 4], reply[i + 2 : end : 4], reply[i + 3 : end : 4]))
                claimed.update(dict.fromkeys(ids, queue))
                i = end
        return reply[0] == 1

    async def _locate(self, job_ids: Sequence[str]) -> dict[str, str]:
        """Find the queues of jobs this instance did not claim (one round trip outside Cluster)."""
        client = await self._redis()
        queues = await self._queues()
        if not queues or not job_ids:
            return {}
        pairs = [(job_id, q) for job_id in job_ids for q in queues]
        pipe = client.pipeline(transaction=False)
        for job_id, q in pairs:
            pipe.exists(self._queue(q).job(job_id)[0])
        found = await pipe.execute()
        located: dict[str, str] = {}
        for (job_id, q), exists in zip(pairs, found):
            if exists and job_id not in located:
                located[job_id] = q
        return located

    async def _by_queue(self, job_ids: Sequence[str]) -> tuple[dict[str, list[int]], list[int]]:
        """Group item indexes by the queue of their job; the second list holds unknown jobs."""
        queues = list(map(self._claimed.get, job_ids))
        first = queues[0] if queues else None
        if first is not None and queues.count(first) == len(queues):
            return {first: list(range(len(queues)))}, []
        groups: dict[str, list[int]] = {}
        missing: list[int] = []
        for i, queue in enumerate(queues):
            if queue is None:
                missing.append(i)
            else:
                groups.setdefault(queue, []).append(i)
        unknown: list[int] = []
        if missing:
            located = await self._locate([job_ids[i] for i in missing])
            for i in missing:
                queue = located.get(job_ids[i])
                if queue is None:
                    unknown.append(i)
                else:
                    groups.setdefault(queue, []).append(i)
        return groups, unknown

    async def _batched(
        self,
        script: Script,
        keys_of: Callable[[_QueueKeys], Sequence[bytes]],
        head: Sequence[Any],
        groups: dict[str, list[int]],
        items: Sequence[Any],
    ) -> list[bool]:
        """Call ``script`` with ``items`` grouped by queue, one msgpack argument per queue."""
        if self._client is None:
            await self._redis()  # connect first: the branches below depend on self.cluster
        size = len(items)
        if type(items) is not list and type(items) is not tuple:
            items = list(items)  # msgpack packs lists and tuples only
        if len(groups) == 1 and len(next(iter(groups.values()))) == size:
            # The common case: every item belongs to one queue, in order.
            queue = next(iter(groups))
            reply = await self._eval(script, keys_of(self._queue(queue)), (*head, _pack(items)))
            return list(map(_ONE.__eq__, reply))
        applied = [False] * size
        if not groups:
            return applied
        if not self.cluster:
            keys: list[bytes] = []
            args: list[Any] = list(head)
            order: list[int] = []
            for queue, indexes in groups.items():
                keys.extend(keys_of(self._queue(queue)))
                args.append(_pack([items[i] for i in indexes]))
                order.extend(indexes)
            reply = await self._eval(script, keys, args)
            for i, ok in zip(order, reply):
                applied[i] = ok == 1
            return applied

        async def one(queue: str, indexes: list[int]) -> None:
            packed = _pack([items[i] for i in indexes])
            reply = await self._eval(script, keys_of(self._queue(queue)), (*head, packed))
            for i, ok in zip(indexes, reply):
                applied[i] = ok == 1

        await asyncio.gather(*(one(q, ix) for q, ix in groups.items()))
        return applied

    async def ack_many(self, acks: Sequence[Ack]) -> list[bool]:
        if not acks:
            return []
        ids = list(map(_first, acks))
        groups, _ = await self._by_queue(ids)
        head = (os.urandom(8).hex(), self._result_ttl, self._dead_ttl)
        applied = await self._batched(SCRIPTS["ack"], _ack_keys, head, groups, acks)
        # Applied or stale, this instance is done with these claims.
        collections.deque(map(self._claimed.pop, ids, itertools.repeat(None)), maxlen=0)
        return applied

    async def renew(self, leases: Sequence[tuple[str, int, float]]) -> list[bool]:
        if not leases:
            return []
        groups, _ = await self._by_queue(list(map(_first, leases)))
        applied = await self._batched(SCRIPTS["renew"], _renew_keys, (), groups, leases)
        claimed = self._claimed
        for (job_id, _, _), ok in zip(leases, applied):
            if not ok:
                claimed.pop(job_id, None)  # lost: no ack will come for it
        return applied

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
        replies = await self._each_queue(SCRIPTS["recover"], await self._queues(), _recover_keys, (self._dead_ttl,))
        return sum(int(r) for r in replies)

    async def promote_due(self) -> int:
        replies = await self._each_queue(SCRIPTS["promote"], await self._queues(), _promote_keys, ())
        return sum(int(r) for r in replies)

    async def cleanup(self) -> int:
        queues = await self._queues()
        removed = 0
        script = SCRIPTS["cleanup"]
        args = (self._result_ttl, self._dead_ttl, _CHUNK)
        while queues:
            replies = await self._each_queue(script, queues, _cleanup_keys, args)
            removed += sum(int(r[0]) for r in replies)
            if not any(int(r[1]) for r in replies):
                break
        return removed

    # -- inspection and control ------------------------------------------------------

    async def _find(self, job_id: str) -> tuple[str, list[Any]] | None:
        """The queue and get-script reply of a job, or None."""
        if self._client is None:
            await self._redis()  # connect first: the branches below depend on self.cluster
        queues = await self._queues()
        hint = self._claimed.get(job_id)
        if hint is not None and hint in queues:
            queues.remove(hint)
            queues.insert(0, hint)
        if not queues:
            return None
        script = SCRIPTS["get"]

        def keys_of(q: str) -> tuple[bytes, ...]:
            return self._queue(q).lookup(job_id)

        if not self.cluster:
            keys: list[bytes] = []
            for q in queues:
                keys.extend(keys_of(q))
            reply = await self._eval(script, keys, ())
            index = int(reply[0])
            return (queues[index - 1], reply) if index else None
        replies = await asyncio.gather(*(self._eval(script, keys_of(q), ()) for q in queues))
        for q, reply in zip(queues, replies):
            if int(reply[0]):
                return q, reply
        return None

    async def get(self, job_id: str) -> StoredJob | None:
        found = await self._find(job_id)
        if found is None:
            return None
        queue, reply = found
        _, now, record, body, result, errors = reply[:6]
        progress, deps, parent_ids, limit_key = (list(reply[6:10]) + [None] * 4)[:4]
        return _stored(job_id, queue, record, body, result, errors, float(now), progress, deps, limit_key, parent_ids)

    async def _first_applied(self, script: Script, job_id: str, keys_of: Callable[[_QueueKeys], Sequence[bytes]], args: Sequence[Any]) -> bool:
        queues = await self._queues()
        hint = self._claimed.get(job_id)
        if hint is not None and hint in queues:
            queues.remove(hint)
            queues.insert(0, hint)
        replies = await self._each_queue(script, queues, keys_of, args)
        return any(int(r) == 1 for r in replies)

    async def set_progress(self, job_id: str, token: int, progress: bytes) -> bool:
        script = SCRIPTS["set_progress"]
        args = (token, progress)
        queue = self._claimed.get(job_id)
        if queue is not None:
            # The usual caller is the worker that claimed the job through this
            # backend: its queue is known, one call.
            return int(await self._eval(script, self._queue(queue).progress(job_id), args)) == 1
        replies = await self._each_queue(script, await self._queues(), lambda k: k.progress(job_id), args)
        return any(int(r) == 1 for r in replies)

    async def cancel(self, job_id: str) -> bool:
        return await self._first_applied(SCRIPTS["cancel"], job_id, _cancel_keys, (job_id, self._result_ttl))

    async def retry_dead(self, job_id: str) -> bool:
        return await self._first_applied(SCRIPTS["retry_dead"], job_id, _retry_dead_keys, (job_id,))

    async def purge(self, state: int, queue: str | None = None) -> int:
        if state not in _FINISHED_KEY:
            raise ValueError(f"only finished jobs can be purged, not {STATE_NAMES[state]!r} ones")
        queues = [queue] if queue is not None else await self._queues()
        deleted = 0
        script = SCRIPTS["purge"]

        def keys_of(k: _QueueKeys) -> tuple[bytes]:
            return (k.finished[state],)

        while queues:
            replies = await self._each_queue(script, queues, keys_of, (state, _CHUNK))
            deleted += sum(int(r[0]) for r in replies)
            if not any(int(r[1]) for r in replies):
                break
        return deleted

    async def stats(self) -> dict[str, dict[str, int]]:
        queues = await self._queues()
        replies = await self._each_queue(SCRIPTS["stats"], queues, _stats_keys, ())
        counts = [int(c) for reply in replies for c in reply]
        out: dict[str, dict[str, int]] = {}
        width = len(STATE_NAMES)
        for i, queue in enumerate(queues):
            row = counts[i * width : (i + 1) * width]
            if any(row):
                out[queue] = dict(zip(STATE_NAMES, row))
        return out

    async def list_jobs(
        self, state: int, queue: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[StoredJob]:
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
            if state == SUCCEEDED:
                pipe.lrange(k.finished[state], 0, offset + limit - 1)
                kinds.append((q, "entries"))
            elif state in (DEAD, CANCELLED):
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
            base = self._queue(q).base
            for m in reply:
                if kind == "members":
                    candidates.setdefault(m[16:].decode(), q)
                elif kind == "entries":
                    candidates.setdefault(m.split(b"|", 2)[-1].decode(), q)
                elif kind == "ids":
                    candidates.setdefault(m.decode(), q)
                elif kind == "prio":
                    second.lrange(base + b"rl:" + m, 0, -1)
                    second_kinds.append((q, "members"))
                elif kind == "batches":
                    second.lrange(base + b"lease:" + m, 0, -1)
                    second_kinds.append((q, "ids"))
                elif kind == "limited":
                    second.zrange(self._queue(q).parked(m), 0, -1)
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
            jk, bk, rk, ek, pk, dk, dpk, lk = k.lookup(job_id)
            pipe.get(jk)
            pipe.get(bk)
            pipe.get(rk)
            pipe.lrange(ek, 0, -1)
            pipe.get(pk)
            pipe.get(dk)
            pipe.get(dpk)
            pipe.get(lk)
        replies = await pipe.execute(raise_on_error=False)
        jobs: list[StoredJob] = []
        for n, (job_id, q) in enumerate(candidates):
            record, body, result, errors, progress, deps, parent_ids, limit_key = replies[8 * n : 8 * n + 8]
            if not isinstance(record, bytes):
                continue  # deleted meanwhile
            jobs.append(_stored(
                job_id, q, record, body if isinstance(body, bytes) else None,
                result if isinstance(result, bytes) else None,
                errors if isinstance(errors, list) else None, now,
                progress if isinstance(progress, bytes) else None,
                deps if isinstance(deps, bytes) else None,
                limit_key if isinstance(limit_key, bytes) else None,
                parent_ids if isinstance(parent_ids, bytes) else None,
            ))
        jobs.sort(key=lambda j: (j.finished_at or j.enqueued_at, j.id))
        return jobs

    # -- waiting ------------------------------------------------------------------------

    async def wait(self, queues: Sequence[str], timeout: float) -> None:
        if timeout <= 0 or not queues:
            return
        await self._redis()
        if self.cluster:
            blockers = [await self._blocker(self._queue(q).peek, (self._queue(q).wake,), q) for q in queues]
        else:
            peek: list[bytes] = []
            for q in queues:
                peek.extend(self._queue(q).peek)
            blockers = [await self._blocker(tuple(peek), tuple(self._queue(q).wake for q in queues), None)]
        try:
            if len(blockers) == 1:
                await blockers[0].block(timeout)
                return
            tasks = [asyncio.ensure_future(b.block(timeout)) for b in blockers]
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for b in blockers:
                    b.finish()
                await asyncio.gather(*tasks, return_exceptions=True)
            for t in tasks:
                if not t.cancelled() and t.exception() is not None:
                    raise t.exception()  # type: ignore[misc]
        finally:
            for b in blockers:
                await b.release()

    async def _blocker(self, peek_keys: tuple[bytes, ...], wake_keys: tuple[bytes, ...], queue: str | None) -> _Blocker:
        if not self.cluster:
            assert self._wait_pool is not None
            conn = await self._wait_pool.get_connection()  # type: ignore[no-untyped-call, unused-ignore]
            return _Blocker(self, conn, self._wait_pool, peek_keys, wake_keys, None)
        client = await self._redis()
        assert queue is not None
        node = client.get_node_from_key(self._queue(queue).wake)
        for i, b in enumerate(self._waiters):
            if b.node is not None and b.node.name == node.name:
                del self._waiters[i]
                b.peek_keys, b.wake_keys = peek_keys, wake_keys
                return b
        kwargs = {k: v for k, v in node.connection_kwargs.items() if k not in ("event_dispatcher",)}
        kwargs["socket_timeout"] = None
        conn = node.connection_class(**kwargs)
        return _Blocker(self, conn, None, peek_keys, wake_keys, node)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _unblock(self, blocker: _Blocker, client_id: int) -> None:
        client = self._client
        if client is None:
            return
        try:
            if blocker.node is not None:
                await client.execute_command("CLIENT", "UNBLOCK", client_id, target_nodes=blocker.node)
            else:
                await client.execute_command("CLIENT", "UNBLOCK", client_id)
        except Exception as exc:  # the BLPOP's own server timeout ends the wait then
            log.debug("CLIENT UNBLOCK failed: %s", exc)


class _Blocker:
    """One dedicated connection blocking in BLPOP on wake-up lists, ended early by CLIENT UNBLOCK."""

    __slots__ = ("backend", "conn", "pool", "peek_keys", "wake_keys", "node", "client_id", "stopping", "unblocked",
                 "returned", "timer")

    def __init__(
        self, backend: RedisBackend, conn: AbstractConnection, pool: ConnectionPool | None,
        peek_keys: tuple[bytes, ...], wake_keys: tuple[bytes, ...], node: Any,
    ) -> None:
        self.backend = backend
        self.conn = conn
        self.pool = pool
        self.peek_keys = peek_keys
        self.wake_keys = wake_keys
        self.node = node
        self.client_id: int | None = None
        self.stopping = False
        self.unblocked = False
        self.returned = False
        self.timer: asyncio.TimerHandle | None = None

    async def block(self, timeout: float) -> None:
        """Return when a wake-up token arrives, a job is ready or due, or ``timeout`` passes."""
        conn = self.conn
        self.client_id = None
        self.stopping = self.unblocked = self.returned = False
        if not conn.is_connected:
            await conn.connect()  # type: ignore[no-untyped-call, unused-ignore]
        peek = SCRIPTS["peek"]
        # One round trip: this connection's id (for CLIENT UNBLOCK), the peek
        # script, and the BLPOP itself. The server's own BLPOP timeout is only
        # a safety net (the local timer ends the wait precisely; a lost UNBLOCK
        # then costs one more second).
        await conn.send_packed_command(conn.pack_commands([
            ("CLIENT", "ID"),
            ("EVALSHA", peek.sha, len(self.peek_keys), *self.peek_keys),
            ("BLPOP", *self.wake_keys, round(timeout + 1.0, 3)),
        ]))
        try:
            self.client_id = int(await conn.read_response())
            try:
                ready, wait_us = await conn.read_response()
            except NoScriptError:
                # The server lost its scripts: end this wait now, load them again.
                ready, wait_us = 0, 0
                self.backend._spawn(self.backend._reload_scripts())
            if not ready:
                # (Ready: the peek pushed a token, so the BLPOP returns at once.)
                if self.stopping or wait_us == 0:
                    self.unblock()
                else:
                    if 0 <= wait_us / 1e6 < timeout:
                        delay = wait_us / 1e6
                    else:
                        delay = max(0.0, timeout - _UNBLOCK_EARLY)
                    self.timer = asyncio.get_running_loop().call_later(delay, self.unblock)
            await conn.read_response()
        finally:
            self.returned = True
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None

    def unblock(self) -> None:
        """End the BLPOP now (idempotent; a no-op once it returned)."""
        self.timer = None
        if not self.returned and not self.unblocked and self.client_id is not None:
            self.unblocked = True
            self.backend._spawn(self.backend._unblock(self, self.client_id))

    def finish(self) -> None:
        """End this blocker's wait: another blocker of the same wait returned."""
        self.stopping = True
        if self.timer is not None:
            self.timer.cancel()
            self.unblock()
        # Before the peek reply, block() sees `stopping` and unblocks itself.

    async def release(self) -> None:
        if self.pool is not None:
            await self.pool.release(self.conn)
        elif self.backend._client is not None:
            self.backend._waiters.append(self)
        else:
            await self.conn.disconnect()

    async def close(self) -> None:
        await self.conn.disconnect()


def _ack_keys(k: _QueueKeys) -> tuple[bytes, ...]:
    return k.ack


def _renew_keys(k: _QueueKeys) -> tuple[bytes, ...]:
    return k.renew


def _recover_keys(k: _QueueKeys) -> tuple[bytes, ...]:
    return k.recover


def _promote_keys(k: _QueueKeys) -> tuple[bytes, ...]:
    return k.promote


def _cleanup_keys(k: _QueueKeys) -> tuple[bytes, ...]:
    return k.cleanup


def _cancel_keys(k: _QueueKeys) -> tuple[bytes, ...]:
    return k.cancel


def _retry_dead_keys(k: _QueueKeys) -> tuple[bytes, ...]:
    return k.retry_dead


def _stats_keys(k: _QueueKeys) -> tuple[bytes, ...]:
    return k.stats


__all__ = ["RedisBackend", "SCRIPTS", "Script", "load_scripts"]
