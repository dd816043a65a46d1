"""Fixtures of the dashboard tests: an App on each backend (the contract suite's fixtures),
its dashboard, and httpx clients on the ASGI app (admin, read-only, anonymous)."""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator

import pytest

import fastjobs
from tests.contract.conftest import app, backend_kind, make_app

MISSING = [name for name in ("starlette", "httpx", "uvicorn") if importlib.util.find_spec(name) is None]
if MISSING:  # not installed: say so once instead of failing every module's import
    collect_ignore_glob = ["test_*.py"]
    print(f'tests/web skipped: {", ".join(MISSING)} missing; pip install -e ".[test]"')
else:
    import httpx
    from starlette.applications import Starlette

    from fastjobs.web import create_app

__all__ = ["app", "backend_kind", "make_app"]

TOKEN = "admin-token-for-tests"
READ_TOKEN = "read-only-token-for-tests"
BASE = "http://testserver"


@pytest.fixture
def web(app: fastjobs.App) -> "Starlette":
    return create_app(app, token=TOKEN, read_only_token=READ_TOKEN)


def client_for(web: "Starlette", token: str | None = TOKEN) -> "httpx.AsyncClient":
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=web), base_url=BASE, headers=headers)


@pytest.fixture
async def client(web: "Starlette") -> "AsyncIterator[httpx.AsyncClient]":
    async with client_for(web) as c:
        yield c


@pytest.fixture
async def reader(web: "Starlette") -> "AsyncIterator[httpx.AsyncClient]":
    async with client_for(web, READ_TOKEN) as c:
        yield c


@pytest.fixture
async def anonymous(web: "Starlette") -> "AsyncIterator[httpx.AsyncClient]":
    async with client_for(web, None) as c:
        yield c
