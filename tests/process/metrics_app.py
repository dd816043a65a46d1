"""An app for the Prometheus tests: ``ok`` succeeds; ``flaky`` fails, is retried at once and
fails again (dead); ``slow`` times out, is retried at once and times out again (dead).

The worker processes load ``app`` (URL and prefix from the environment); a test enqueues
through :func:`build`'s App of its own, with the same tasks and options.
"""

from __future__ import annotations

import asyncio
import os

import fastjobs


def build(url: str, prefix: str | None = None) -> fastjobs.App:
    app = fastjobs.App(url, **({"prefix": prefix} if prefix else {}))

    @app.task(name="ok", queue="fast")
    async def ok(n: int) -> int:
        return n

    @app.task(name="flaky", queue="fast", max_attempts=2, backoff=None)
    async def flaky() -> None:
        raise RuntimeError("always")

    @app.task(name="slow", queue="slow", max_attempts=2, backoff=None, timeout=0.05)
    async def slow() -> None:
        await asyncio.sleep(10)

    return app


app = build(os.environ.get("FASTJOBS_TEST_URL", "memory://"), os.environ.get("FASTJOBS_TEST_PREFIX"))
