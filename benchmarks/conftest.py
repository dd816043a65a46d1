"""Micro-benchmarks reuse the test suite's ``core`` fixture (compiled and pure side by side)."""

from tests.conftest import core  # noqa: F401
