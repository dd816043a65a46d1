"""Fixtures for the PostgreSQL-only tests: a fresh schema per test, dropped afterwards,
and a private server for the tests that restart one."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import asyncpg
import pytest

from fastjobs.backends import BackendOptions
from fastjobs.backends.postgres import PostgresBackend
from tests.postgres.server import ThrowawayPostgres, find_bindir

MakePostgres = Callable[..., Awaitable[PostgresBackend]]

NO_EXTRAS = (False, None, None, None, None, None, None, 86400.0, 86400.0)
"""The ack query's arguments after keep_results for an ack without events or history."""


def fresh_schema() -> str:
    return "pgt_" + uuid.uuid4().hex[:12]


async def drop_schema(url: str, schema: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture
async def schema(postgres_url: str) -> AsyncIterator[str]:
    """A schema name no other test uses; dropped after the test."""
    name = fresh_schema()
    yield name
    await drop_schema(postgres_url, name)


@pytest.fixture
async def make_pg(postgres_url: str, schema: str) -> AsyncIterator[MakePostgres]:
    """Build connected PostgreSQL backends on the test's schema (closed at teardown)."""
    opened: list[PostgresBackend] = []

    async def make(url: str | None = None, **kwargs: Any) -> PostgresBackend:
        options = {k: kwargs.pop(k) for k in ("result_ttl", "dead_ttl") if k in kwargs}
        backend = PostgresBackend(url or postgres_url, BackendOptions(prefix=schema, **options), **kwargs)
        opened.append(backend)
        await backend.connect()
        return backend

    yield make
    for backend in opened:
        await backend.close()


@pytest.fixture
async def pg(make_pg: MakePostgres) -> PostgresBackend:
    return await make_pg()


@pytest.fixture
async def admin(postgres_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain asyncpg connection to the shared test database."""
    conn = await asyncpg.connect(postgres_url)
    yield conn
    await conn.close()


@pytest.fixture(scope="module")
def private_server() -> Iterator[ThrowawayPostgres]:
    """A PostgreSQL server of this module's own, safe to restart and stop."""
    bindir = find_bindir()
    if bindir is None:
        pytest.skip("no PostgreSQL binaries (initdb, pg_ctl) found; set FASTJOBS_PG_BIN")
    server = ThrowawayPostgres(bindir)
    try:
        server.start()
        yield server
    finally:
        server.destroy()
