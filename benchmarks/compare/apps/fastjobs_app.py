"""fastjobs: ``enqueue_many`` in batches of 1,000; ``fastjobs worker --concurrency 100``."""

from __future__ import annotations

import os
import time

import fastjobs

from ..records import append_record
from . import QUEUE, URL_ENV

app = fastjobs.App(os.environ.get(URL_ENV, "memory://"), prefix="fjcompare")


@app.task(name="compare.noop", queue=QUEUE)
async def noop(i: int) -> None:
    append_record(i)


async def setup() -> None:
    """Connect once (which creates the schema on PostgreSQL) before the worker starts."""
    health = await app.check()
    await app.close()
    if not health.ok:
        raise RuntimeError(f"fastjobs: the backend does not answer: {health}")


async def produce(first: int, count: int) -> tuple[float, float]:
    await app.check()  # connected before the clock starts, as every peer
    started = time.time()
    for start in range(first, first + count, 1000):
        await app.enqueue_many([noop.call(i) for i in range(start, min(first + count, start + 1000))])
    finished = time.time()
    await app.close()
    return started, finished
