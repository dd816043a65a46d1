"""The App that the process-level tests run with ``python -m fastjobs worker``.

Configured from the environment: FASTJOBS_TEST_URL, FASTJOBS_TEST_PREFIX,
FASTJOBS_TEST_LEASE; ``slow`` sleeps only where FASTJOBS_TEST_SLOW is set (the
worker that gets killed), so another worker finishes the same jobs at once.
"""

from __future__ import annotations

import asyncio
import os

import fastjobs

app = fastjobs.App(
    os.environ.get("FASTJOBS_TEST_URL", "memory://"),
    prefix=os.environ.get("FASTJOBS_TEST_PREFIX", "fastjobs"),
    lease=float(os.environ.get("FASTJOBS_TEST_LEASE", "30")),
)


@app.task(name="slow", queue="kill9")
async def slow(n: int) -> int:
    if os.environ.get("FASTJOBS_TEST_SLOW"):
        await asyncio.sleep(3600)
    return n
