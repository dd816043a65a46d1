"""fastjobs benchmarks: ``python -m benchmarks`` (end to end) and pytest-benchmark micro-benchmarks."""

import asyncio
import os
from collections.abc import Callable
from typing import Any

URLS = {
    "memory": lambda: "memory://",
    "redis": lambda: os.environ.get("FASTJOBS_REDIS_URL", "redis://127.0.0.1:6379/0"),
    "postgres": lambda: os.environ.get("FASTJOBS_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"),
}
"""The server each backend's runs use: ``FASTJOBS_REDIS_URL`` and ``FASTJOBS_DATABASE_URL``
(default: the local servers)."""


def print_table(table: object, width: int = 100) -> None:
    """Print a ``rich`` table; to a pipe or a CI log ``width`` columns wide, not squeezed to 80."""
    from rich.console import Console

    console = Console()
    if not console.is_terminal:
        console = Console(width=width)
    console.print(table)


async def stop_and_wipe(app: object, worker: object, runner: object) -> None:
    """Stop a benchmark's worker, close its App, and remove what the run stored."""
    from tests.backends import wipe_namespace

    worker.request_stop()  # type: ignore[attr-defined]
    await runner  # type: ignore[misc]
    await app.close()  # type: ignore[attr-defined]
    await wipe_namespace(app.url, app.options.prefix)  # type: ignore[attr-defined]


def loop_runner() -> Callable[[Any], Any]:
    """``uvloop.run`` where uvloop is installed (as the benchmarks are meant to run), else ``asyncio.run``."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run  # type: ignore[no-any-return]
