"""Celery: ``apply_async`` on one held producer (no bulk API), ``ignore_result``; ``celery worker
--pool threads --concurrency 16``, prefetch multiplier 64, no gossip, mingle or heartbeat."""

from __future__ import annotations

import os
import time

from celery import Celery

from ..records import append_record
from . import QUEUE, URL_ENV

app = Celery("fjcompare", broker=os.environ.get(URL_ENV, "redis://127.0.0.1:6379/15"))
app.conf.update(task_ignore_result=True, task_default_queue=QUEUE, worker_prefetch_multiplier=64,
                broker_connection_retry_on_startup=True, worker_hijack_root_logger=False)


@app.task(name="noop", ignore_result=True)
def noop(i: int) -> None:
    append_record(i)


def produce(first: int, count: int) -> tuple[float, float]:
    with app.producer_or_acquire() as producer:
        producer.connection.ensure_connection()
        started = time.time()
        for i in range(first, first + count):
            noop.apply_async((i,), producer=producer)
    return started, time.time()
