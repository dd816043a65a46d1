"""Huey: one ``task(i)`` call per job (no bulk API), ``results=False``; ``huey_consumer -k thread -w 16``."""

from __future__ import annotations

import os
import time

from huey import RedisHuey

from ..records import append_record
from . import URL_ENV

huey = RedisHuey("fjcompare", url=os.environ.get(URL_ENV, "redis://127.0.0.1:6379/15"), results=False)


@huey.task()
def noop(i: int) -> None:
    append_record(i)


def produce(first: int, count: int) -> tuple[float, float]:
    huey.storage.conn.ping()
    started = time.time()
    for i in range(first, first + count):
        noop(i)
    return started, time.time()
