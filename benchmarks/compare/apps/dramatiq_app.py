"""Dramatiq: ``actor.send`` per job (no bulk API); ``dramatiq --processes 1 --threads 16``, no result backend."""

from __future__ import annotations

import os
import time

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from ..records import append_record
from . import QUEUE, URL_ENV

broker = RedisBroker(url=os.environ.get(URL_ENV, "redis://127.0.0.1:6379/15"), namespace="fjcompare-dramatiq")
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def noop(i: int) -> None:
    append_record(i)


def produce(first: int, count: int) -> tuple[float, float]:
    broker.client.ping()
    started = time.time()
    for i in range(first, first + count):
        noop.send(i)
    return started, time.time()
