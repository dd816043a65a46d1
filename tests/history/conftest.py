"""The contract suite's fixtures (``backend_kind`` over every implemented backend, ``make_backend``,
``backend``, ``make_app``), so history and events are tested on memory, Redis and PostgreSQL alike."""

from __future__ import annotations

import pytest

import fastjobs
from tests.contract.conftest import MakeApp, backend, backend_kind, make_app, make_backend

__all__ = ["app", "backend", "backend_kind", "make_app", "make_backend"]


@pytest.fixture
def app(make_app: MakeApp) -> fastjobs.App:
    return make_app(lease=5.0)
