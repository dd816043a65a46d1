"""Live updates over a real server (uvicorn in the test's loop), on every backend: one backend
subscription shared by every WebSocket, started with the first and ended with the last, events
coalesced to at most 10 messages a second, and the same auth as the API."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

import fastjobs
from fastjobs.web import create_app
from tests.web.conftest import TOKEN

uvicorn = pytest.importorskip("uvicorn")
ws_client = pytest.importorskip("websockets.asyncio.client")
ws_exceptions = pytest.importorskip("websockets.exceptions")


@contextlib.asynccontextmanager
async def serve(web: Any) -> AsyncIterator[int]:
    """Serve ``web`` on 127.0.0.1 (a free port) in this loop; yields the port."""
    server = uvicorn.Server(uvicorn.Config(web, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]  # older uvicorn
    task = asyncio.ensure_future(server.serve())
    try:
        while not server.started:
            assert not task.done(), task.exception()
            await asyncio.sleep(0.01)
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)  # the lifespan's end closes the hub's subscription
        hub = web.state.dashboard.hub
        assert hub is None or (hub.task is None and not hub.stopping)


def connect(port: int, token: str | None = TOKEN, **headers: str) -> Any:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return ws_client.connect(f"ws://127.0.0.1:{port}/api/events", additional_headers=headers, open_timeout=5)


async def receive_events(ws: Any, job_ids: set[str], kinds: set[str], timeout: float = 10.0) -> list[dict[str, Any]]:
    """Messages until every id in ``job_ids`` was seen with a kind in ``kinds``."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while not job_ids <= {e["job_id"] for e in seen if e["kind"] in kinds}:
        message = json.loads(await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic())))
        assert set(message) == {"events", "dropped", "gap"}
        seen += message["events"]
    return seen


async def enqueue_until_heard(task: Any, ws: Any, *args: Any) -> str:
    """Enqueue (with ``args``) until the WebSocket reports it (the hub subscribes when the socket
    opens: a job enqueued before its subscription is live is not announced)."""
    for _ in range(50):
        job = await task.enqueue(*args)
        try:
            await receive_events(ws, {job.id}, {"enqueued"}, timeout=0.3)
            return str(job.id)
        except asyncio.TimeoutError:
            continue
    raise AssertionError("no event came through the WebSocket")


async def test_events_reach_every_client_through_one_subscription(app: fastjobs.App) -> None:
    @app.task(name="web.live", queue="live")
    async def work() -> None: ...

    web = create_app(app, token=TOKEN)
    hub = web.state.dashboard.hub
    async with serve(web) as port:
        async with connect(port) as first, connect(port) as second:
            await enqueue_until_heard(work, first)
            assert hub.subscriptions == 1 and len(hub.clients) == 2
            job = await work.enqueue()
            for ws in (first, second):
                events = await receive_events(ws, {job.id}, {"enqueued"})
                (event,) = [e for e in events if e["job_id"] == job.id]
                assert event["task"] == "web.live" and event["queue"] == "live" and event["at"] > 0
            await app.run_worker(["live"], burst=True)
            await receive_events(first, {job.id}, {"succeeded"})
        for _ in range(200):  # the server notices both closes
            if hub.task is None:
                break
            await asyncio.sleep(0.02)
        assert hub.task is None and not hub.clients, "the subscription ends with the last client"
        async with connect(port) as third:
            await enqueue_until_heard(work, third)
        assert hub.subscriptions == 2


async def test_a_burst_is_coalesced_to_at_most_ten_messages_a_second(app: fastjobs.App) -> None:
    @app.task(name="web.burst", queue="burst")
    async def work(i: int) -> None: ...

    async with serve(create_app(app, token=TOKEN)) as port, connect(port) as ws:
        await enqueue_until_heard(work, ws, -1)
        started = time.monotonic()
        handles = [await work.enqueue(i) for i in range(300)]
        messages = 0
        seen: set[str] = set()
        while not {h.id for h in handles} <= seen:
            message = json.loads(await asyncio.wait_for(ws.recv(), 10))
            messages += 1
            seen |= {e["job_id"] for e in message["events"]}
        elapsed = time.monotonic() - started
        assert messages <= 10 * elapsed + 2, (messages, elapsed)


async def test_websocket_needs_auth_and_the_same_origin(app: fastjobs.App) -> None:
    async with serve(create_app(app, token=TOKEN)) as port:
        for token, headers in ((None, {}), ("wrong", {}), (TOKEN, {"Origin": "http://evil.example"})):
            with pytest.raises(ws_exceptions.InvalidStatus):
                async with connect(port, token, **headers):
                    pass
        async with connect(port, TOKEN, Origin=f"http://127.0.0.1:{port}"):
            pass


async def test_live_off_refuses_the_websocket(app: fastjobs.App) -> None:
    async with serve(create_app(app, token=TOKEN, live=False)) as port:
        with pytest.raises(ws_exceptions.InvalidStatus):
            async with connect(port):
                pass


async def test_a_slow_client_loses_events_and_is_told_how_many() -> None:
    from fastjobs.web.live import CLIENT_QUEUE, Client

    client = Client()
    for i in range(CLIENT_QUEUE + 7):
        client.offer({"kind": "enqueued", "job_id": str(i), "task": "t", "queue": "q", "at": 1.0})
    first = await client.next_batch()
    assert first["dropped"] == 7 and len(first["events"]) == 500
    assert first["events"][0]["job_id"] == "0"
    second = await client.next_batch()
    assert second["dropped"] == 0 and len(second["events"]) == 500


async def test_a_busy_hub_pauses_its_subscription_and_tells_clients_to_refresh(
    app: fastjobs.App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past BUSY events in a WINDOW the hub stops listening (the backend stops publishing) until
    the window ends, then subscribes again and sends "gap": true (the page refreshes)."""
    from fastjobs.web import live

    monkeypatch.setattr(live, "BUSY", 5)

    @app.task(name="web.busy", queue="busy")
    async def work(i: int) -> None: ...

    web = create_app(app, token=TOKEN)
    hub = web.state.dashboard.hub
    async with serve(web) as port, connect(port) as ws:
        await enqueue_until_heard(work, ws, -1)
        await app.enqueue_many([work.call(i) for i in range(40)])
        forwarded, gap = 0, False
        deadline = time.monotonic() + 10
        while not gap:
            message = json.loads(await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic())))
            forwarded += len(message["events"])
            gap = message["gap"]
        assert forwarded < 40, "the hub forwarded every event of the burst"
        assert hub.subscriptions >= 2
        # Subscribed again: a later job is announced as usual.
        await enqueue_until_heard(work, ws, -1)
