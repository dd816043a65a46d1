"""The handlers of the executor rows (:mod:`benchmarks.executors`), importable by a process pool's children.

:func:`register` puts them, under fixed names, on the benchmark's App; :data:`app` here holds
the same names for the children (``process_app="benchmarks.executor_app:app"``).
"""

from __future__ import annotations

from typing import Any

import fastjobs

REF = "benchmarks.executor_app:app"


def noop_sync() -> None:
    return None


def burn(loops: int) -> int:
    """Pure-Python CPU work: ``loops`` iterations (calibrated to about 5 ms)."""
    total = 0
    for i in range(loops):
        total += i * i % 7
    return total


def register(target: fastjobs.App, executor: str) -> dict[str, fastjobs.Task[..., Any]]:
    return {
        "noop": target.task(name="bench.noop_sync", queue="bench", executor=executor)(noop_sync),
        "burn": target.task(name="bench.burn", queue="bench", executor=executor)(burn),
    }


app = fastjobs.App("memory://")
register(app, "process")
