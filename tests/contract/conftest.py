"""The ``backend`` fixture: a fresh, connected backend of each implemented kind."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

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


@pytest.fixture
async def backend(make_backend: MakeBackend) -> Backend:
    return await make_backend()
