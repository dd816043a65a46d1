"""An App used from many short-lived event loops (``asyncio.run`` per call, as Django's async
views under WSGI and scripts do) keeps no connection of a loop that has ended."""

from __future__ import annotations

import asyncio
import gc
import os
import warnings

import pytest

import fastjobs
from tests.backends import unique_prefix, wipe_namespace


def open_sockets() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except OSError:  # closed meanwhile (the listing's own fd)
            pass
    return count


@pytest.mark.parametrize("server", ["redis", "postgres"])
def test_each_ended_loop_closes_its_connections(server: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue(f"{server}_url")
    app = fastjobs.App(url, prefix=unique_prefix())

    @app.task(name="loops.echo")
    async def echo(x: int) -> int:
        return x

    async def request_handler(i: int) -> None:  # never closes the App, as a view would not
        handle = await echo.enqueue(i)
        assert (await app.get_job(handle.id)) is not None

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # an unclosed transport or socket would warn
            asyncio.run(request_handler(0))
            gc.collect()
            before = open_sockets()
            for i in range(1, 6):
                asyncio.run(request_handler(i))
            gc.collect()
        assert open_sockets() <= before, "connections of ended loops are still open"
    finally:
        asyncio.run(wipe_namespace(url, app.options.prefix))
