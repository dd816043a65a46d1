"""The connection: the client, standalone or Cluster, and where each script call goes.

Outside Cluster one script call may take the key groups of several queues at
once, so a multi-queue operation is one round trip. In Cluster a script may
touch one slot only, so the same operation becomes one concurrent call per
queue. The helpers here hide that difference from the operations in
:mod:`.backend`: :meth:`RedisConnection._each_queue` (maintenance and
inspection), :meth:`RedisConnection._batched` (acks and renewals grouped by
queue), and the lookups of a job by id alone through the queue registry.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterable
from typing import Any, Sequence

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import ConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError, TimeoutError as RedisTimeoutError

from ...errors import BackendUnavailableError, ConfigurationError
from ..base import Backend, BackendOptions
from .keys import QueueKeys
from .scripts import SCRIPTS, Script, evalsha, load_into, pack
from .wakeup import WakeUps

_REGISTRY_REFRESH = 30.0
"""Seconds a Cluster client trusts that a queue is in the registry before adding it again: a
registry lost with its node (restarted empty, failed over before replication) heals within that."""
_ONE = 1


def _redact(url: str) -> str:
    """The URL without its password, for messages."""
    return re.sub(r"(://[^:@/]*:)[^@/]*@", r"\1***@", url)


class RedisConnection(Backend):
    """The client of a :class:`~fastjobs.backends.redis.RedisBackend` and the routing of its
    script calls (its arguments are the backend's)."""

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
        self._keys: dict[str, QueueKeys] = {}
        self._claim_keys: dict[tuple[str, ...], tuple[tuple[bytes, ...], list[str]]] = {}
        self._registered: dict[str, float] = {}
        """Cluster: queue -> monotonic time this instance last added it to the registry."""
        self._claimed: dict[str, str] = {}
        """Job id -> queue of the jobs this instance claimed and has not acked: acks need no lookup."""
        self._result_ttl = options.result_ttl
        self._dead_ttl = options.dead_ttl
        self._wakeups = WakeUps()

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
                await load_into(client)
            except BaseException as exc:
                await client.aclose()
                if isinstance(exc, (RedisConnectionError, RedisTimeoutError)):
                    raise BackendUnavailableError(
                        f"cannot reach Redis at {_redact(self.url)} ({exc}); is the server running and the URL right?"
                    ) from exc
                raise
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
        return await evalsha(await self._redis(), script, keys, args)

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
            reply = await self._eval(script, keys_of(self._queue(queue)), (*head, pack(items)))
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
                args.append(pack([items[i] for i in indexes]))
                order.extend(indexes)
            reply = await self._eval(script, keys, args)
            for i, ok in zip(order, reply):
                applied[i] = ok == 1
            return applied

        async def one(queue: str, indexes: list[int]) -> None:
            packed = pack([items[i] for i in indexes])
            reply = await self._eval(script, keys_of(self._queue(queue)), (*head, packed))
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
            reply = await self._eval(script, keys, ())
            index = int(reply[0])
            return (queues[index - 1], reply) if index else None
        replies = await asyncio.gather(*(self._eval(script, keys_of(q), ()) for q in queues))
        for q, reply in zip(queues, replies):
            if int(reply[0]):
                return q, reply
        return None

    async def _first_applied(
        self, script: Script, job_id: str, keys_of: Callable[[QueueKeys], Sequence[bytes]], args: Sequence[Any]
    ) -> bool:
        """Run a by-id script on every queue; True if it applied in one of them."""
        replies = await self._each_queue(script, await self._claimed_first(job_id), keys_of, args)
        return any(int(r) == 1 for r in replies)
