"""Live updates: ONE backend event subscription per dashboard process, fanned out to WebSocket clients.

The :class:`Hub` starts its subscription (:meth:`App.events <fastjobs.App.events>`, every
queue) when the first client connects and ends it when the last one leaves, so an idle
dashboard costs the backend nothing and a busy one costs one subscription however many
browsers watch. Each client has a bounded queue (:data:`CLIENT_QUEUE`): a client that
does not keep up loses events (counted in the next message's ``dropped``), never slows
the others or the subscription. A client gets at most :data:`MAX_RATE` messages a second,
each ``{"events": [{"kind", "job_id", "task", "queue", "at"}, ...], "dropped": n}`` with
what arrived since the last one. If the backend's stream fails, the hub subscribes again
after a pause while clients remain. Events are best effort: the page refreshes its data
from the API when one arrives; it never builds state from events alone.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..app import App

log = logging.getLogger("fastjobs.web")

CLIENT_QUEUE = 1000
"""Events buffered per client; more are dropped (and counted)."""

MAX_RATE = 10
"""Messages a second at most per client: events arriving faster are sent together."""

BATCH_MAX = 500
"""Events in one message at most (the rest wait for the next)."""

RESUBSCRIBE_DELAY = 1.0

SETTLE = 1.0
"""Seconds a new subscription is left to connect before it may be stopped: a client library
cancelled while it connects may leave that connection open (asyncpg does); a page reloaded
at once also keeps the subscription."""


class Client:
    """One WebSocket's view of the hub: a bounded queue of event dicts."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(CLIENT_QUEUE)
        self.dropped = 0

    def offer(self, event: dict[str, Any]) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1

    async def next_batch(self) -> dict[str, Any]:
        """Wait for an event, then take whatever else is waiting (up to :data:`BATCH_MAX`)."""
        events = [await self.queue.get()]
        while len(events) < BATCH_MAX:
            try:
                events.append(self.queue.get_nowait())
            except asyncio.QueueEmpty:
                break
        dropped, self.dropped = self.dropped, 0
        return {"events": events, "dropped": dropped}


class Hub:
    """The one event subscription of a dashboard, shared by its WebSocket clients."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.clients: set[Client] = set()
        self.task: asyncio.Task[None] | None = None
        self.started = 0.0
        self.stopping: set[asyncio.Task[None]] = set()
        """Subscriptions cancelled and still closing their connection."""
        self.subscriptions = 0
        """How many times the backend was subscribed to (tests: one per busy period, not per client)."""

    def join(self) -> Client:
        client = Client()
        self.clients.add(client)
        if self.task is None or self.task.done():
            loop = asyncio.get_running_loop()
            self.started = loop.time()
            self.task = loop.create_task(self._pump(), name="fastjobs-web-events")
        return client

    async def _settle(self) -> None:
        wait = self.started + SETTLE - asyncio.get_running_loop().time()
        if wait > 0:
            await asyncio.sleep(wait)

    async def leave(self, client: Client) -> None:
        self.clients.discard(client)
        if self.clients or self.task is None:
            return
        await self._settle()
        if not self.clients and self.task is not None:  # nobody joined meanwhile
            task, self.task = self.task, None
            await self._stop(task)

    async def _stop(self, task: asyncio.Task[None]) -> None:
        """Cancel the subscription and wait until it has let go of its connection (see :meth:`close`)."""
        self.stopping.add(task)
        try:
            await asyncio.shield(_cancel(task))
        finally:
            if task.done():
                self.stopping.discard(task)

    async def close(self) -> None:
        """End the subscription, and wait for every one still ending (a server's shutdown: no
        connection is left behind when the loop closes)."""
        self.clients.clear()
        if self.task is not None:
            await self._settle()
        if self.task is not None:
            task, self.task = self.task, None
            self.stopping.add(task)
        await asyncio.gather(*(_cancel(t) for t in list(self.stopping)))
        self.stopping = {t for t in self.stopping if not t.done()}

    async def _pump(self) -> None:
        while self.clients:
            self.subscriptions += 1
            try:
                async for event in self.app.events():
                    data = {"kind": event.kind, "job_id": event.job_id, "task": event.task,
                            "queue": event.queue, "at": event.at}
                    for client in tuple(self.clients):
                        client.offer(data)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the backend failed: try again while someone watches
                log.warning("dashboard events: the backend's stream failed (%s: %s); subscribing again in %.0f s",
                            type(exc).__name__, exc, RESUBSCRIBE_DELAY)
            await asyncio.sleep(RESUBSCRIBE_DELAY)


async def _cancel(task: asyncio.Task[None], every: float = 0.2, tries: int = 50) -> None:
    """Cancel ``task`` until it ends: a client library may swallow one cancellation (say while
    it connects) and go on waiting; another one reaches it."""
    for _ in range(tries):
        if task.done():
            break
        task.cancel()
        await asyncio.wait([task], timeout=every)
    if task.done() and not task.cancelled():
        task.exception()  # retrieved: never "exception was never retrieved"
