"""The App-level operations tests run on every backend, through the contract suite's fixtures."""

from __future__ import annotations

from tests.contract.conftest import app, backend, backend_kind, make_app, make_backend

__all__ = ["app", "backend", "backend_kind", "make_app", "make_backend"]
