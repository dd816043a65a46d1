"""RQ: ``Queue.enqueue_many`` (one pipeline per 1,000), ``result_ttl=0``; ``rq worker`` with the
non-forking ``SimpleWorker`` (the default Worker forks a child per job)."""

from __future__ import annotations

import os
import time

from redis import Redis
from rq import Queue

from ..records import append_record
from . import QUEUE, URL_ENV

connection = Redis.from_url(os.environ.get(URL_ENV, "redis://127.0.0.1:6379/15"))
queue = Queue(QUEUE, connection=connection)


def noop(i: int) -> None:
    append_record(i)


def produce(first: int, count: int) -> tuple[float, float]:
    connection.ping()
    started = time.time()
    for start in range(first, first + count, 1000):
        queue.enqueue_many([Queue.prepare_data(noop, (i,), result_ttl=0)
                            for i in range(start, min(first + count, start + 1000))])
    return started, time.time()
