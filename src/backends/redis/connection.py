"""The connection: the client, standalone or Cluster, and where each script call goes.

Outside Cluster one script call may take the key groups of several queues at
once, so a multi-queue operation is one round trip. In Cluster a script may
touch one slot only, so the same operation becomes one concurrent call per
queue. The helpers here hide that difference from the operations in
:mod:`.backend`: :meth:`RedisConnection._each_queue` (maintenance and
inspection), :meth:`RedisConnection._batched` (acks and renewals grouped by
queue), and the lookups of a job by id alone through the queue registry.

Also here, because they decide where calls go or what reaches the caller:

* Reconnecting is bounded in time (``BackendOptions.connect_timeout``) by
  :class:`BoundedRetry`, and :meth:`RedisConnection.translate_error` says which
  redis-py errors mean "unavailable" (the contract wraps every operation in it).
* Damaged queues: a queue that claim found damaged (a key of the wrong type)
  is left out of claims and waits for ``BROKEN_RETRY`` seconds, with one
  warning each time it is found still damaged, so the other queues keep
  running and the log does not flood.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import itertools
import operator
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Sequence, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import BlockingConnectionPool, ConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import (
    ClusterDownError,
    ConnectionError as RedisConnectionError,
    ReadOnlyError,
    RedisError,
    TimeoutError as RedisTimeoutError,
    TryAgainError,
)

from ...errors import BackendError, BackendUnavailableError, ConfigurationError, CorruptJobError, FastjobsError
from ..base import Backend, BackendOptions
from ..values import Ack, AckKind, NewJob
from .keys import HistoryKeys, QueueKeys, WorkerKeys
from .scripts import SCRIPTS, Calls, Script, log, pack
from .wakeup import WakeUps

T = TypeVar("T")

_REGISTRY_REFRESH = 30.0
"""Seconds a Cluster client trusts that a queue is in the registry before adding it again: a
registry lost with its node (restarted empty, failed over before replication) heals within that."""
BROKEN_RETRY = 15.0
"""Seconds a damaged queue is left out of claims and waits before it is tried again (and,
if still damaged, warned about again): long enough not to flood the log, short enough
that a repaired queue is served again soon."""
_ONE = 1
_CLUSTER_RETRIES = 5
"""Attempts the Cluster client retries a command (counted, not timed: see RedisConnection.connect)."""
_UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, ReadOnlyError, ClusterDownError, TryAgainError, OSError)
"""redis-py errors that mean the server cannot serve now (down, unreachable, loading, a replica
after a failover, a Cluster resharding), as opposed to refusing the operation."""


FAIL_FAST: contextvars.ContextVar[bool] = contextvars.ContextVar("fastjobs_redis_fail_fast", default=False)
"""Set (in the calling task) around a claim: its calls are not retried. A claim that retried
through an outage could land before the worker's own acks and renewals, and take back (to
run again) the jobs the worker finished meanwhile; the worker retries claims itself, after
its acks (see ``Worker._resync``)."""


class BoundedRetry(Retry):
    """redis-py's retry of a call on a connection error, bounded in time as well as in count.

    redis-py counts retries only, so how long a call hangs during an outage
    depends on the backoff (about 2 s with ours and 5 retries). Here a call
    stops retrying once the next attempt would start more than ``budget``
    seconds (``connect_timeout``) after the call began: a restart or a
    failover shorter than that is ridden out, a longer outage fails in bounded
    time, as on PostgreSQL.

    Args:
        budget: seconds from the start of a call after which no attempt starts.
        retries: most retries per call; -1 for as many as fit in ``budget``.
    """

    def __init__(self, budget: float, retries: int = -1) -> None:
        super().__init__(ExponentialWithJitterBackoff(base=0.05, cap=1.0), retries)
        self.budget = budget

    async def call_with_retry(
        self,
        do: Callable[[], Awaitable[T]],
        fail: Callable[..., Awaitable[Any]],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> T:
        # The loop of redis-py's own Retry (5.x to 8.x), plus the deadline.
        deadline = time.monotonic() + (0.0 if FAIL_FAST.get() else self.budget)
        own_check = getattr(self, "_is_retryable", None)
        self._backoff.reset()  # type: ignore[no-untyped-call, unused-ignore]
        failures = 0
        while True:
            try:
                return await do()
            except self._supported_errors as error:
                failures += 1
                await (fail(error, failures) if with_failure_count else fail(error))
                backoff = self._backoff.compute(failures)
                if (
                    (0 <= self._retries < failures)
                    or (own_check is not None and not own_check(error))
                    or (is_retryable is not None and not is_retryable(error))
                    or time.monotonic() + backoff >= deadline
                ):
                    raise error
                if backoff > 0:
                    await asyncio.sleep(backoff)


def _redact(url: str) -> str:
    """The URL without its password, for messages."""
    return re.sub(r"(://[^:@/]*:)[^@/]*@", r"\1***@", url)


def pack_acks(acks: Sequence[Ack]) -> bytes:
    """A group's acks as ack-10.lua reads them: ``len(acks)``, the width of a row, 1 if some job
    is named twice among them (else 0: the script keeps no table of the ids), then each ack's row.

    Five values per ack (id, token, kind, payload, delay) when some ack is not a SUCCEED;
    when all are, id, token and payload (three), or only id and token (two) when none has
    a payload: the common batch of plain successes. Every value costs the server a
    msgpack decode (~300 instructions). As a msgpack stream (no array header): the
    script reads it in parts that fit the Lua stack, each collected by one presized table.
    """
    n = len(acks)
    if not n:
        return b"\x00\x02\x00"  # 0, 2, 0
    ids, tokens, kinds, payloads, delays = zip(*acks)
    columns: tuple[tuple[Any, ...], ...] = (ids, tokens, kinds, payloads, delays)
    if kinds.count(AckKind.SUCCEED) == n:
        columns = (ids, tokens) if payloads.count(None) == n else (ids, tokens, payloads)
    width = len(columns)
    # Column by column into their slots: ~130 ns per plain ack, the set of the ids included.
    row: list[Any] = [None] * (3 + width * n)
    row[0], row[1], row[2] = n, width, 0 if len(set(ids)) == n else 1
    for j, column in enumerate(columns):
        row[3 + j::width] = column
    packed: bytes = pack(row)
    head = packed[0]
    return packed[1:] if head < 0xDC else packed[3:] if head == 0xDC else packed[5:]


_ROW_FIELDS = ("id", "body", "max_attempts")
_FEATURE_FIELDS = {"u": ("unique_key", "unique_ttl"), "d": ("depends_on", "after"), "l": ("limit",)}
_priority = operator.itemgetter(NewJob._fields.index("priority"))
_delay = operator.itemgetter(NewJob._fields.index("delay"))
_task = operator.itemgetter(NewJob._fields.index("task"))
_tags = operator.itemgetter(NewJob._fields.index("tags"))


@functools.lru_cache(maxsize=None)
def _row_fields(features: str) -> Callable[[NewJob], tuple[Any, ...]]:
    """The getter of a job's row for ``features`` (see :func:`pack_jobs`)."""
    names = _ROW_FIELDS + tuple(f for c in "udl" if c in features for f in _FEATURE_FIELDS[c])
    return operator.itemgetter(*map(NewJob._fields.index, names))


def pack_jobs(jobs: Sequence[NewJob], features: str) -> bytes:
    """A group of jobs as enqueue-6.lua reads it: ``len(jobs)``, what they share, then their rows.

    After the count: the priority, the delay and the meta (the task, then the tags,
    tab-separated: the job's ``t:`` value) the jobs share, each None if they differ.
    Then each job's row: id, body, max_attempts, then unique_key and unique_ttl if
    ``features`` has 'u', depends_on and after if 'd', limit if 'l', and last its own
    priority, delay, meta where they differ. A batch of one task's plain jobs sends
    3 values per job, not a NewJob's 13 fields: each costs the server a value to
    decode (~150 instructions for a number, an empty tuple a Lua table), and the
    queue is the group's. As a msgpack stream (no array header): the script reads it
    in parts that fit the Lua stack, each collected by one presized table constructor.
    """
    size = len(jobs)
    if not size:
        return b"\x00"
    metas = list(map(_task, jobs))
    if any(map(_tags, jobs)):
        metas = ["\t".join((task, *tags)) if tags else task for task, tags in zip(metas, map(_tags, jobs))]
    row: list[Any] = [size]
    varying = []
    for column in (list(map(_priority, jobs)), list(map(_delay, jobs)), metas):
        if column.count(column[0]) == size:
            row.append(column[0])
        else:
            row.append(None)
            varying.append(column)
    fields = _row_fields(features)
    if varying:
        row.extend(itertools.chain.from_iterable(map(operator.add, map(fields, jobs), zip(*varying))))
    else:
        row.extend(itertools.chain.from_iterable(map(fields, jobs)))
    packed: bytes = pack(row)
    head = packed[0]
    return packed[1:] if head < 0xDC else packed[3:] if head == 0xDC else packed[5:]


class RedisConnection(Backend):
    """The client of a :class:`~fastjobs.backends.redis.RedisBackend` and the routing of its
    script calls (its arguments are the backend's)."""

    def __init__(
        self,
        url: str,
        options: BackendOptions,
        *,
        cluster: bool | None = None,
        functions: bool | None = None,
        max_connections: int = 64,
        pool_timeout: float | None = None,
        socket_timeout: float | None = 15.0,
        socket_connect_timeout: float | None = None,
        retries: int | None = None,
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
        self._retries = retries
        self.cluster = False
        self._pool_timeout = (socket_timeout or 15.0) if pool_timeout is None else pool_timeout
        self._client_options: dict[str, Any] = {
            "max_connections": max_connections,
            "socket_timeout": socket_timeout,
            # One connection attempt may take the whole budget (a host that drops packets).
            "socket_connect_timeout": options.connect_timeout if socket_connect_timeout is None else socket_connect_timeout,
            "health_check_interval": 30,
            "retry": BoundedRetry(options.connect_timeout, -1 if retries is None else retries),
            **redis_options,
        }
        if not url.lower().startswith("unix:"):
            # TCP keepalive notices a peer that vanished without closing (unix sockets have no such option).
            self._client_options.setdefault("socket_keepalive", True)
        self._client: Any = None  # aioredis.Redis or RedisCluster once connected
        self._closed = False
        self._connect_lock: asyncio.Lock | None = None
        self._registry = f"{prefix}:queues".encode()
        self._keys: dict[str, QueueKeys] = {}
        self._workers = WorkerKeys(prefix)
        self._history = HistoryKeys(prefix)
        self._events_arg = b"1" if options.events else b""
        """ARGV of the scripts that publish events: '1' when BackendOptions.events."""
        self._events_flag = "e" if options.events else ""
        """The enqueue script's feature letter for events."""
        self._claim_keys: dict[tuple[str, ...], tuple[tuple[bytes, ...], list[str]]] = {}
        self._registered: dict[str, float] = {}
        """Cluster: queue -> monotonic time this instance last added it to the registry."""
        self._claimed: dict[str, str] = {}
        """Job id -> queue of the jobs this instance claimed and has not acked: acks need no lookup."""
        self._result_ttl = options.result_ttl
        self._dead_ttl = options.dead_ttl
        self._calls = Calls(functions)
        self._wakeups = WakeUps(self._calls)
        self._broken: dict[str, float] = {}
        """Damaged queues -> monotonic time until which claims and waits leave them out."""

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
            # A blocking pool: calls beyond max_connections wait for a free connection (redis-py's
            # default pool fails them at once, so 500 handlers reading jobs together would fail).
            client: Any = aioredis.Redis(connection_pool=BlockingConnectionPool.from_url(
                self.url, timeout=self._pool_timeout, **self._client_options))
            client.auto_close_connection_pool = True
            cluster = self._cluster_option
            try:
                if cluster is None:
                    info = await client.info("cluster")
                    cluster = bool(info.get("cluster_enabled"))
                if cluster:
                    await client.aclose()
                    options = dict(self._client_options)
                    options.pop("health_check_interval", None)
                    # The Cluster client runs its own loop of a counted number of attempts
                    # (it reads the count, never calls call_with_retry): it needs a count.
                    options["retry"] = BoundedRetry(
                        self.options.connect_timeout, _CLUSTER_RETRIES if self._retries is None else max(0, self._retries)
                    )
                    client = RedisCluster.from_url(self.url, **options)
                    await client.initialize()
                self.cluster = bool(cluster)
                if self.cluster and self.options.events:
                    # A listener may be on another node: publish without asking (see lua/_events.lua).
                    self._events_arg, self._events_flag = b"c", "E"
                await self._calls.load(client, self.cluster)
            except BaseException:
                await client.aclose()
                raise  # translated by the contract's wrapper, as every operation's errors are
            wait_pool = None
            if not self.cluster:
                # Blocked BLPOPs get connections of their own: a wait never holds a pooled one.
                options = {k: v for k, v in self._client_options.items() if k != "max_connections"}
                options["socket_timeout"] = None
                wait_pool = ConnectionPool.from_url(self.url, **options)
            self._wakeups.open(client, self.cluster, wait_pool)
            self._client = client

    async def close(self) -> None:
        self._closed = True
        client, self._client = self._client, None
        await self._wakeups.close()
        if client is not None:
            await client.aclose()

    def translate_error(self, exc: Exception) -> FastjobsError | None:
        if isinstance(exc, RedisConnectionError) and str(exc) == "No connection available.":  # BlockingConnectionPool's
            return BackendUnavailableError(
                f"all {self._client_options['max_connections']} connections of the Redis pool stayed busy for "
                f"{self._pool_timeout:g} s (pool_timeout): raise max_connections= or pool_timeout=, or run fewer "
                "calls at once (handlers' concurrency)"
            )
        if isinstance(exc, _UNAVAILABLE):
            return BackendUnavailableError(
                f"cannot reach Redis at {_redact(self.url)} ({type(exc).__name__}: {exc}), tried for "
                f"{self.options.connect_timeout:g} s (connect_timeout); is the server running and the URL right?"
            )
        if isinstance(exc, RedisError):
            return BackendError(f"Redis at {_redact(self.url)} refused the operation ({type(exc).__name__}: {exc})")
        return None

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
        return await self._calls.call(await self._redis(), script, keys, args)

    def _history_packed(self, rows: Sequence[Any]) -> bytes:
        """The history argument of the ack (or history) script: keeps, then the rows."""
        return pack([self.options.history_minutes, self.options.history_hours, list(rows)])  # type: ignore[no-any-return]

    def _queue(self, queue: str) -> QueueKeys:
        keys = self._keys.get(queue)
        if keys is None:
            keys = self._keys[queue] = QueueKeys(self.prefix, queue)
        return keys

    async def _queues(self) -> list[str]:
        client = await self._redis()
        names = await client.smembers(self._registry)
        return sorted(n.decode() for n in names)

    async def _each_queue(
        self, script: Script, queues: Sequence[str], group: Callable[[QueueKeys], Sequence[bytes]], args: Sequence[Any]
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

    # -- damaged queues ---------------------------------------------------------------

    def _serviceable(self, queues: Sequence[str]) -> Sequence[str]:
        """``queues`` less the damaged ones still waiting out ``BROKEN_RETRY`` (call only if
        ``self._broken``: the healthy path pays one dict test)."""
        now = time.monotonic()
        broken = self._broken
        return [q for q in queues if broken.get(q, 0.0) <= now]

    def _damaged(self, queue: str, reason: bytes) -> None:
        """Claim found ``queue`` damaged: one warning, and the queue left out for ``BROKEN_RETRY``."""
        self._broken[queue] = time.monotonic() + BROKEN_RETRY
        log.warning(
            "queue %r is damaged: %s. Its jobs are not claimed while it is (the other queues run as usual); "
            "it is tried again every %g s. Repair or delete that key (jobs listed only there must be enqueued again)",
            queue, reason.decode("utf-8", "replace"), BROKEN_RETRY,
        )

    def _intact(self, queue: str) -> None:
        """Claim served ``queue`` again after it was found damaged."""
        if self._broken.pop(queue, None) is not None:
            log.warning("queue %r is no longer damaged; its jobs are claimed again", queue)

    # -- queues: the registry and the fan-out of script calls -------------------------

    async def _register(self, client: Any, queues: Iterable[str]) -> None:
        """Cluster: add queues to the registry, unless done lately. Every enqueue would otherwise
        send one more command to the single node holding the registry."""
        now = time.monotonic()
        registered = self._registered
        stale = [q for q in queues if q not in registered or now - registered[q] >= _REGISTRY_REFRESH]
        if stale:
            # Remembered only once it succeeded: after a failure the next enqueue sends it again.
            await client.sadd(self._registry, *stale)
            registered.update(dict.fromkeys(stale, now))

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
        keys_of: Callable[[QueueKeys], Sequence[bytes]],
        head: Sequence[Any],
        groups: dict[str, list[int]],
        items: Sequence[Any],
        lead: Sequence[bytes] = (),
        flat: bool = False,
    ) -> list[bool]:
        """Call ``script`` with ``items`` grouped by queue, one msgpack argument per queue.

        ``lead``: keys before the first group (renew's beat), in the one call
        there is outside Cluster; the caller leaves them out in Cluster, where
        they would be another slot. With ``lead`` the call is made even when
        there are no items. ``flat``: each group goes as :func:`pack_acks` packs it
        (ack-10.lua), not as an array of arrays: the script builds no table per item.
        """
        packed = pack_acks if flat else pack
        if self._client is None:
            await self._redis()  # connect first: the branches below depend on self.cluster
        size = len(items)
        if type(items) is not list and type(items) is not tuple:
            items = list(items)  # msgpack packs lists and tuples only
        if len(groups) == 1 and len(next(iter(groups.values()))) == size:
            # The common case: every item belongs to one queue, in order.
            queue = next(iter(groups))
            reply = await self._eval(script, (*lead, *keys_of(self._queue(queue))), (*head, packed(items)))
            return list(map(_ONE.__eq__, reply))
        applied = [False] * size
        if not groups:
            if lead:
                await self._eval(script, lead, head)
            return applied
        if not self.cluster:
            keys: list[bytes] = list(lead)
            args: list[Any] = list(head)
            order: list[int] = []
            for queue, indexes in groups.items():
                keys.extend(keys_of(self._queue(queue)))
                args.append(packed([items[i] for i in indexes]))
                order.extend(indexes)
            reply = await self._eval(script, keys, args)
            for i, ok in zip(order, reply):
                applied[i] = ok == 1
            return applied

        async def one(queue: str, indexes: list[int]) -> None:
            reply = await self._eval(script, keys_of(self._queue(queue)), (*head, packed([items[i] for i in indexes])))
            for i, ok in zip(indexes, reply):
                applied[i] = ok == 1

        await asyncio.gather(*(one(q, ix) for q, ix in groups.items()))
        return applied

    # -- a job by id alone ------------------------------------------------------------

    async def _claimed_first(self, job_id: str) -> list[str]:
        """The registered queues, the one this instance claimed ``job_id`` from (if any) first."""
        queues = await self._queues()
        hint = self._claimed.get(job_id)
        if hint is not None and hint in queues:
            queues.remove(hint)
            queues.insert(0, hint)
        return queues

    async def _find(self, job_id: str) -> tuple[str, list[Any]] | None:
        """The queue and get-script reply of a job, or None."""
        if self._client is None:
            await self._redis()  # connect first: the branches below depend on self.cluster
        queues = await self._claimed_first(job_id)
        if not queues:
            return None
        script = SCRIPTS["get"]

        def keys_of(q: str) -> tuple[bytes, ...]:
            return self._queue(q).lookup(job_id)

        if not self.cluster:
            keys: list[bytes] = []
            for q in queues:
                keys.extend(keys_of(q))
            replies = [await self._eval(script, keys, ())]
        else:
            replies = list(await asyncio.gather(*(self._eval(script, keys_of(q), ()) for q in queues)))
        damaged = None
        for i, reply in enumerate(replies):
            index = int(reply[0])
            if index > 0:
                return queues[i + index - 1], reply
            if index < 0 and damaged is None:
                damaged = queues[i - index - 1], reply[2].decode()
        if damaged is not None:
            queue, kind = damaged
            raise CorruptJobError(
                f"job {job_id!r} of queue {queue!r} is damaged: its record "
                f"{self._queue(queue).job(job_id)[0].decode()} is a {kind}, not a string; delete the key "
                "(the job is lost) or write a job record there"
            )
        return None

    async def _first_applied(
        self, script: Script, job_id: str, keys_of: Callable[[QueueKeys], Sequence[bytes]], args: Sequence[Any]
    ) -> bool:
        """Run a by-id script on every queue; True if it applied in one of them."""
        replies = await self._each_queue(script, await self._claimed_first(job_id), keys_of, args)
        return any(int(r) == 1 for r in replies)
