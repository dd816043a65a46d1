"""procrastinate: ``task.batch_defer_async`` (one call per 1,000); ``procrastinate worker --concurrency 16``."""

from __future__ import annotations

import os
import time

import procrastinate

from ..records import append_record
from . import QUEUE, URL_ENV

URL = os.environ.get(URL_ENV, "postgresql://postgres@127.0.0.1:5432/fastjobs_compare")
app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=URL))


@app.task(name="noop", queue=QUEUE)
async def noop(i: int) -> None:
    append_record(i)


async def setup() -> None:
    async with app.open_async():
        await app.schema_manager.apply_schema_async()


async def produce(first: int, count: int) -> tuple[float, float]:
    async with app.open_async():
        started = time.time()
        for start in range(first, first + count, 1000):
            await noop.batch_defer_async(*({"i": i} for i in range(start, min(first + count, start + 1000))))
        return started, time.time()
