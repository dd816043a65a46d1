"""The ``backend`` fixture: a fresh, connected backend of each implemented kind."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

import fastjobs
from fastjobs.backends import Backend, BackendOptions, create_backend
from tests.backends import IMPLEMENTED, unique_prefix, wipe_namespace

MakeBackend = Callable[..., Awaitable[Backend]]


def backend_url(kind: str, request: pytest.FixtureRequest) -> str:
    if kind == "memory":
        return "memory://"
    return str(request.getfixturevalue(f"{kind}_url"))


@pytest.fixture(params=IMPLEMENTED)
def backend_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def make_backend(backend_kind: str, request: pytest.FixtureRequest) -> AsyncIterator[MakeBackend]:
    """Build connected backends that share one fresh namespace; closed at teardown."""
    url = backend_url(backend_kind, request)
    prefix = unique_prefix()
    opened: list[Backend] = []

    async def make(**options: Any) -> Backend:
        b = create_backend(url, BackendOptions(prefix=prefix, **options))
        await b.connect()
        opened.append(b)
        return b

    yield make
    for b in opened:
        await b.close()
    await wipe_namespace(url, prefix)


async def clients(make_backend: MakeBackend, kind: str, n: int) -> list[Backend]:
    """``n`` connected clients of one store: separate connections for Redis and PostgreSQL;
    for memory (one store per object) the same object ``n`` times."""
    if kind == "memory":
        return [await make_backend()] * n
    return [await make_backend() for _ in range(n)]


@pytest.fixture
async def backend(make_backend: MakeBackend) -> Backend:
    return await make_backend()


MakeApp = Callable[..., fastjobs.App]


@pytest.fixture
async def make_app(backend_kind: str, request: pytest.FixtureRequest) -> AsyncIterator[MakeApp]:
    """Build Apps on a fresh namespace of the backend under test; closed and wiped at teardown."""
    url = backend_url(backend_kind, request)
    prefix = unique_prefix()
    made: list[fastjobs.App] = []

    def make(**options: Any) -> fastjobs.App:
        application = fastjobs.App(url, prefix=prefix, **options)
        made.append(application)
        return application

    yield make
    for application in made:
        await application.close()
    await wipe_namespace(url, prefix)


@pytest.fixture
def app(make_app: MakeApp) -> fastjobs.App:
    return make_app(lease=5.0)
