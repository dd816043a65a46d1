"""arq: ``enqueue_job`` (no bulk API), 100 awaited at once; ``arq ...WorkerSettings`` with
``max_jobs`` 100 and ``keep_result`` 0 (no result kept)."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from arq import create_pool
from arq.connections import RedisSettings

from ..records import append_record
from . import QUEUE, URL_ENV

REDIS = RedisSettings.from_dsn(os.environ.get(URL_ENV, "redis://127.0.0.1:6379/15"))


async def noop(ctx: Any, i: int) -> None:
    append_record(i)


class WorkerSettings:
    functions = [noop]
    redis_settings = REDIS
    queue_name = QUEUE
    max_jobs = 100
    keep_result = 0


async def produce(first: int, count: int) -> tuple[float, float]:
    redis = await create_pool(REDIS, default_queue_name=QUEUE)
    await redis.ping()
    started = time.time()
    for start in range(first, first + count, 100):
        await asyncio.gather(*(redis.enqueue_job("noop", i) for i in range(start, min(first + count, start + 100))))
    finished = time.time()
    await redis.aclose()
    return started, finished


LOGGING = {
    # arq logs two INFO lines per job by default; every library here runs at WARNING.
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler", "level": "WARNING"}},
    "loggers": {"arq": {"handlers": ["stderr"], "level": "WARNING"}},
}
