"""Live updates: ONE backend event subscription per dashboard process, fanned out to WebSocket clients.

The :class:`Hub` starts its subscription (:meth:`App.events <fastjobs.App.events>`, every
queue) when the first client connects and ends it when the last one leaves, so an idle
dashboard costs the backend nothing and a busy one costs one subscription however many
browsers watch. Each client has a bounded queue (:data:`CLIENT_QUEUE`): a client that
does not keep up loses events (counted in the next message's ``dropped``), never slows
the others or the subscription. A client gets at most :data:`MAX_RATE` messages a second,
each ``{"events": [{"kind", "job_id", "task", "queue", "at"}, ...], "dropped": n, "gap": bool}``
with what arrived since the last one, ``gap`` true when events of the meantime were not
forwarded (below). If the backend's stream fails, the hub subscribes again after a pause
while clients remain. Events are best effort: the page refreshes its data from the API
when a message arrives; it never builds state from events alone.

Under load the hub samples. A busy queue moves tens of thousands of jobs a second, each
with its events, and the pages refresh at most once a second whatever arrives. So once
:data:`BUSY` events came within one :data:`WINDOW`, the hub closes its subscription for
the rest of that window (the backend stops producing events: it publishes only while
someone listens), then subscribes again and sends every client ``"gap": true``, which
refreshes the page as an event would. Decoding every event of a busy system in the
dashboard's process, and publishing them all, cost the workers 20-35 % of their drain
rate on a 2-core machine (``python -m benchmarks --dashboard-open``).
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

BUSY = 1000
"""Events in one :data:`WINDOW` past which the hub stops listening until the window ends."""

WINDOW = 1.0

GAP: dict[str, Any] = {}
"""Put in a client's queue (this very object): events were skipped, refresh."""

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
        """Queue an event (or :data:`GAP`); a full queue counts it as dropped (a message follows
        either way: the page refreshes)."""
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1

    async def next_batch(self) -> dict[str, Any]:
        """Wait for an event, then take whatever else is waiting (up to :data:`BATCH_MAX`)."""
        items = [await self.queue.get()]
        while len(items) < BATCH_MAX:
            try:
                items.append(self.queue.get_nowait())
            except asyncio.QueueEmpty:
                break
        dropped, self.dropped = self.dropped, 0
        events = [item for item in items if item is not GAP]
        return {"events": events, "dropped": dropped, "gap": len(events) < len(items)}


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
        loop = asyncio.get_running_loop()
        gap = False
        while self.clients:
            self.subscriptions += 1
            if gap:  # subscribed again after a pause: whatever happened meanwhile, refresh
                for client in tuple(self.clients):
                    client.offer(GAP)
            window_end, count = loop.time() + WINDOW, 0
            stream = self.app.events()
            try:
                async for event in stream:
                    data = {"kind": event.kind, "job_id": event.job_id, "task": event.task,
                            "queue": event.queue, "at": event.at}
                    for client in tuple(self.clients):
                        client.offer(data)
                    count += 1
                    if loop.time() >= window_end:
                        window_end, count = loop.time() + WINDOW, 1
                    elif count >= BUSY:
                        break  # busy: stop listening until the window ends (see the module docstring)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the backend failed: try again while someone watches
                log.warning("dashboard events: the backend's stream failed (%s: %s); subscribing again in %.0f s",
                            type(exc).__name__, exc, RESUBSCRIBE_DELAY)
                window_end = loop.time() + RESUBSCRIBE_DELAY
            finally:
                aclose = getattr(stream, "aclose", None)  # unsubscribes now, not when collected
                if aclose is not None:
                    await aclose()
            gap = True
            await asyncio.sleep(max(0.0, window_end - loop.time()))


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
