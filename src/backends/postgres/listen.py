"""Wake-ups for idle PostgreSQL workers: one LISTEN connection per backend.

Enqueues ``NOTIFY`` the schema's channel (at commit) with the queue's name; a
notification ends the waits of that queue at once. The LISTEN connection is
re-established with backoff when it is lost, and idle workers poll slowly
meanwhile: a notification sent while nobody listened is gone.

Example:
    >>> wakeups = Wakeups(lambda: asyncpg.connect("postgresql://127.0.0.1/app"), "fastjobs_wake", 10.0, 1.0, 30.0)
    >>> wakeups.pid is None
    True
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Awaitable, Callable, Sequence

import asyncpg  # type: ignore[import-untyped]

from ...errors import BackendUnavailableError

log = logging.getLogger("fastjobs.postgres")


class Wakeups:
    """The LISTEN connection of one backend, and the waits it ends.

    Args:
        connect: opens the LISTEN connection (the backend's URL and settings,
            read at each attempt: they may change while it is down).
        channel: the schema's NOTIFY channel.
        connect_timeout: longest first wait for the connection to be up.
        poll_while_disconnected / listen_safety_timeout: see PostgresBackend.
    """

    def __init__(
        self,
        connect: Callable[[], Awaitable[Any]],
        channel: str,
        connect_timeout: float,
        poll_while_disconnected: float,
        listen_safety_timeout: float,
    ) -> None:
        self.connect = connect
        self.channel = channel
        self.connect_timeout = connect_timeout
        self.poll_while_disconnected = poll_while_disconnected
        self.listen_safety_timeout = listen_safety_timeout
        self.pending: set[str] = set()
        """Queues notified since their last claim (a claim clears its queues)."""
        self.pid: int | None = None
        """Server process of the LISTEN connection while it is up."""
        self._waiters: list[tuple[Sequence[str], asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None
        self._listening = False
        self._tried = asyncio.Event()
        self._closed = False

    def stop(self) -> asyncio.Task[None] | None:
        """Stop for good; return the listening task, for the caller to cancel and await."""
        self._closed = True
        task, self._task = self._task, None
        return task

    def _on_notify(self, connection: Any, pid: int, channel: str, queue: str) -> None:
        self.pending.add(queue)
        for queues, fut in self._waiters:
            if not fut.done() and queue in queues:
                fut.set_result(None)

    def wake_all(self) -> None:
        for _, fut in self._waiters:
            if not fut.done():
                fut.set_result(None)

    def _start(self) -> None:
        if self._task is None and not self._closed:
            self._task = asyncio.get_running_loop().create_task(self._listen_forever())

    async def _listen_forever(self) -> None:
        """Hold one LISTEN connection; re-establish it with backoff when it is lost."""
        delay = 0.05
        failures = 0
        while not self._closed:
            conn: asyncpg.Connection | None = None
            try:
                conn = await self.connect()
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _conn: lost.set())
                await conn.add_listener(self.channel, self._on_notify)
                self.pid = conn.get_server_pid()
                self._listening = True
                self._tried.set()
                if failures:
                    log.warning("LISTEN %s re-established after %d failed attempts", self.channel, failures)
                failures = 0
                delay = 0.05
                # Notifications sent while we were away are lost: wake everyone to look.
                self.wake_all()
                while not lost.is_set():
                    try:
                        await asyncio.wait_for(lost.wait(), 10.0)
                    except asyncio.TimeoutError:
                        # A silently dropped network path raises nothing: ask.
                        await asyncio.wait_for(conn.fetchval("SELECT 1"), 5.0)
                reason = "connection closed"
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                reason = f"{type(exc).__name__}: {exc}"
            finally:
                self._listening = False
                self.pid = None
                if conn is not None:
                    conn.terminate()
            self._tried.set()
            failures += 1
            if self._closed:
                break
            log.warning(
                "LISTEN %s lost (%s); reconnecting in %.2f s, idle workers poll every %.1f s meanwhile",
                self.channel, reason, delay, self.poll_while_disconnected,
            )
            self.wake_all()  # waiters switch to polling
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def wait(
        self, queues: Sequence[str], timeout: float, seconds_until_ready: Callable[[list[str]], Awaitable[Any]]
    ) -> None:
        """Backend.wait: ``seconds_until_ready`` is the ``wait_info`` query for these queues."""
        if timeout <= 0 or self._closed:
            return
        if not self.pending.isdisjoint(queues):
            return
        self._start()
        if not self._tried.is_set():
            # The first wait: be listening before looking, or a job enqueued in
            # between would wait for the timeout.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._tried.wait(), min(timeout, self.connect_timeout))
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiter = (list(queues), fut)
        self._waiters.append(waiter)
        try:
            try:
                seconds = await seconds_until_ready(waiter[0])
            except BackendUnavailableError:
                seconds = None
                timeout = min(timeout, self.poll_while_disconnected)
            if seconds is not None:
                if seconds <= 0:
                    return
                # Local timers may fire a hair early: a claim that comes too
                # soon finds nothing and waits again for a moment.
                timeout = min(timeout, seconds + 0.001)
            # The caller's timeout is the longest wait it wants; within it, only
            # a deaf backend (LISTEN down: notifications are lost) polls.
            if self._listening:
                timeout = min(timeout, self.listen_safety_timeout)
            else:
                timeout = min(timeout, self.poll_while_disconnected)
            if not fut.done():
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(fut, timeout)
        finally:
            self._waiters.remove(waiter)
