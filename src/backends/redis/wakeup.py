"""The blocking wake-up: idle workers wait in BLPOP on per-queue wake-up lists.

Enqueues, requeues and retries push a token onto their queue's ``wake`` LIST.
A wait takes a connection of its own (never one of the shared pool) and sends,
in one round trip, ``CLIENT ID``, the peek script (is a job ready; when does
the next delayed job or lease fall due) and the ``BLPOP``. A local timer ends
the wait at that due time with ``CLIENT UNBLOCK``: Redis' own BLPOP timeout is
only as precise as its ``hz``, 100 ms by default. In Cluster there is one
blocked connection per node that holds a waited-on queue, kept for the next
wait; the first to return ends the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from typing import Any

from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.exceptions import ResponseError

from .keys import QueueKeys
from .scripts import SCRIPTS, Calls, lost

log = logging.getLogger("fastjobs.redis")

_UNBLOCK_EARLY = 0.005
"""A poll-length wait ends this much early, so the worker's own timeout never has to cancel it."""


class WakeUps:
    """The idle waits of one backend: their connections and the tasks that end them early.

    ``open`` once connected (with the wait pool outside Cluster), ``close`` at
    the backend's close.
    """

    __slots__ = ("calls", "client", "cluster", "pool", "waiters", "background")

    def __init__(self, calls: Calls) -> None:
        self.calls = calls
        """How the backend runs its scripts (the peek goes out the same way)."""
        self.client: Any = None  # the backend's client while it is connected
        self.cluster = False
        self.pool: ConnectionPool | None = None
        """Outside Cluster: the BLPOP connections, apart from the shared pool."""
        self.waiters: list[Blocker] = []
        """Cluster: idle blockers kept for the next wait, one per node."""
        self.background: set[asyncio.Task[Any]] = set()

    def open(self, client: Any, cluster: bool, pool: ConnectionPool | None) -> None:
        self.client = client
        self.cluster = cluster
        self.pool = pool

    async def close(self) -> None:
        self.client = None
        background = list(self.background)
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        waiters, self.waiters = self.waiters, []
        for waiter in waiters:
            await waiter.close()
        pool, self.pool = self.pool, None
        if pool is not None:
            await pool.disconnect()

    async def wait(self, queues: Sequence[QueueKeys], timeout: float) -> None:
        """Return when a job of ``queues`` may be ready, or after ``timeout`` seconds."""
        if self.cluster:
            blockers = [await self._blocker(k.peek, (k.wake,), k) for k in queues]
        else:
            peek: list[bytes] = []
            for k in queues:
                peek.extend(k.peek)
            blockers = [await self._blocker(tuple(peek), tuple(k.wake for k in queues), None)]
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

    async def _blocker(
        self, peek_keys: tuple[bytes, ...], wake_keys: tuple[bytes, ...], queue: QueueKeys | None
    ) -> Blocker:
        if not self.cluster:
            assert self.pool is not None
            conn = await self.pool.get_connection()  # type: ignore[no-untyped-call, unused-ignore]
            return Blocker(self, conn, self.pool, peek_keys, wake_keys, None)
        assert queue is not None
        node = self.client.get_node_from_key(queue.wake)
        for i, b in enumerate(self.waiters):
            if b.node is not None and b.node.name == node.name:
                del self.waiters[i]
                b.peek_keys, b.wake_keys = peek_keys, wake_keys
                return b
        kwargs = {k: v for k, v in node.connection_kwargs.items() if k not in ("event_dispatcher",)}
        kwargs["socket_timeout"] = None
        conn = node.connection_class(**kwargs)
        return Blocker(self, conn, None, peek_keys, wake_keys, node)

    def spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def reload_scripts(self) -> None:
        if self.client is not None:
            await self.calls.reload_quietly(self.client)

    async def unblock(self, blocker: Blocker, client_id: int) -> None:
        client = self.client
        if client is None:
            return
        try:
            if blocker.node is not None:
                await client.execute_command("CLIENT", "UNBLOCK", client_id, target_nodes=blocker.node)
            else:
                await client.execute_command("CLIENT", "UNBLOCK", client_id)
        except Exception as exc:  # the BLPOP's own server timeout ends the wait then
            log.debug("CLIENT UNBLOCK failed: %s", exc)


class Blocker:
    """One dedicated connection blocking in BLPOP on wake-up lists, ended early by CLIENT UNBLOCK."""

    __slots__ = ("wakeups", "conn", "pool", "peek_keys", "wake_keys", "node", "client_id", "stopping", "unblocked",
                 "returned", "timer")

    def __init__(
        self, wakeups: WakeUps, conn: AbstractConnection, pool: ConnectionPool | None,
        peek_keys: tuple[bytes, ...], wake_keys: tuple[bytes, ...], node: Any,
    ) -> None:
        self.wakeups = wakeups
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
            self.wakeups.calls.command(peek, self.peek_keys),
            ("BLPOP", *self.wake_keys, round(timeout + 1.0, 3)),
        ]))
        try:
            self.client_id = int(await conn.read_response())
            try:
                ready, wait_us = await conn.read_response()
            except ResponseError as exc:
                if not lost(exc):
                    raise
                # The server lost its scripts: end this wait now, load them again.
                ready, wait_us = 0, 0
                self.wakeups.spawn(self.wakeups.reload_scripts())
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
            self.wakeups.spawn(self.wakeups.unblock(self, self.client_id))

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
        elif self.wakeups.client is not None:
            self.wakeups.waiters.append(self)
        else:
            await self.conn.disconnect()

    async def close(self) -> None:
        await self.conn.disconnect()


__all__ = ["Blocker", "WakeUps"]
