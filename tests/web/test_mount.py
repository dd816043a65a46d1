"""A dashboard mounted in another app (``Mount("/jobs", create_app(...))``), served by uvicorn, on
every backend: Starlette never runs a mounted app's lifespan, so the outer app's lifespan calls
:func:`fastjobs.web.close`, which ends the events subscription even when the server's shutdown
cut the WebSockets short (a graceful shutdown timeout cancels their handlers before the last
one can end the subscription on its way out)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

import fastjobs
import fastjobs.web
from fastjobs.web import create_app
from tests.web.conftest import TOKEN
from tests.web.test_live import enqueue_until_heard

uvicorn = pytest.importorskip("uvicorn")
ws_client = pytest.importorskip("websockets.asyncio.client")

Lifespan = Callable[[Starlette], contextlib.AbstractAsyncContextManager[None]]


async def shut_down_while_watched(outer: Starlette, dashboard: Starlette, work: Any) -> None:
    """Serve ``outer`` (the dashboard at /jobs) with uvicorn, open the dashboard's events WebSocket,
    wait until its subscription delivers, then shut the server down with the socket still open."""
    config = uvicorn.Config(outer, host="127.0.0.1", port=0, log_level="critical", lifespan="on",
                            timeout_graceful_shutdown=0.2)
    server = uvicorn.Server(config)
    task = asyncio.ensure_future(server.serve())
    while not server.started:
        assert not task.done(), task.exception()
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    hub = dashboard.state.dashboard.hub
    async with ws_client.connect(f"ws://127.0.0.1:{port}/jobs/api/events", open_timeout=5,
                                 additional_headers={"Authorization": f"Bearer {TOKEN}"}) as ws:
        await enqueue_until_heard(work, ws)
        assert hub.task is not None and not hub.task.done() and hub.subscriptions == 1
        server.should_exit = True
        await asyncio.wait_for(task, 15)


def mounted(app: fastjobs.App, lifespan: Lifespan | None) -> tuple[Starlette, Starlette, Any]:
    @app.task(name="web.mount", queue="mount")
    async def work() -> None: ...

    dashboard = create_app(app, token=TOKEN)
    return Starlette(routes=[Mount("/jobs", dashboard)], lifespan=lifespan), dashboard, work


async def test_the_outer_lifespan_closes_a_mounted_dashboards_subscription(app: fastjobs.App) -> None:
    dashboards: list[Starlette] = []

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        for dashboard in dashboards:
            await fastjobs.web.close(dashboard)

    outer, dashboard, work = mounted(app, lifespan)
    dashboards.append(dashboard)
    hub = dashboard.state.dashboard.hub
    await shut_down_while_watched(outer, dashboard, work)
    assert hub.task is None and not hub.stopping and not hub.clients, "the subscription outlived the server"
    await fastjobs.web.close(dashboard)  # twice: harmless


async def test_without_close_the_mounted_subscription_outlives_the_server(app: fastjobs.App) -> None:
    """Why the outer lifespan must call close(): this setup does leave the subscription running."""
    outer, dashboard, work = mounted(app, None)
    hub = dashboard.state.dashboard.hub
    try:
        await shut_down_while_watched(outer, dashboard, work)
        assert hub.task is not None and not hub.task.done()
    finally:
        await fastjobs.web.close(dashboard)
    assert hub.task is None and not hub.stopping


def test_close_refuses_what_is_not_a_dashboard() -> None:
    with pytest.raises(TypeError, match="create_app"):
        asyncio.run(fastjobs.web.close(Starlette()))
