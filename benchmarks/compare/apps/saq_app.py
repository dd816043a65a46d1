"""SAQ (Redis or PostgreSQL): ``queue.enqueue`` (no bulk API), 100 awaited at once, ``ttl=-1`` (no
job info or result kept); ``saq ...settings`` with ``concurrency`` 100."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from saq import Queue

from ..records import append_record
from . import QUEUE, URL_ENV

queue = Queue.from_url(os.environ.get(URL_ENV, "redis://127.0.0.1:6379/15"), name=QUEUE)


async def noop(ctx: Any, *, i: int) -> None:
    append_record(i)


settings = {"queue": queue, "functions": [noop], "concurrency": 100}


async def setup() -> None:
    await queue.connect()
    await queue.disconnect()


async def produce(first: int, count: int) -> tuple[float, float]:
    await queue.connect()
    started = time.time()
    for start in range(first, first + count, 100):
        await asyncio.gather(*(queue.enqueue("noop", i=i, ttl=-1) for i in range(start, min(first + count, start + 100))))
    finished = time.time()
    await queue.disconnect()
    return started, finished
