"""Shared helpers of the App operations tests: making jobs in a given state through backend calls."""

from __future__ import annotations

import time
from typing import Any

import fastjobs
from fastjobs.backends import Ack, AckKind
from fastjobs.job import error_record

WORKER = "host-1:4242:a1b2c3"
"""The worker id the helpers record in the error records they write."""


def failing_task(app: fastjobs.App, name: str = "ops.fail", queue: str = "ops") -> fastjobs.Task[..., Any]:
    """A task that always fails (never run here: the helpers ack its jobs by hand)."""

    async def fail(i: int = 0) -> None:
        raise ValueError(f"boom {i}")

    return app.task(name=name, queue=queue, max_attempts=1)(fail)


async def finish_claimed(app: fastjobs.App, queue: str, n: int, kind: AckKind = AckKind.DEAD) -> list[str]:
    """Claim ``n`` jobs of ``queue`` and ack them with ``kind`` (DEAD: an error record naming
    :data:`WORKER`), in calls of at most 1,000; their ids."""
    backend = await app.backend()
    done: list[str] = []
    while len(done) < n:
        claims = await backend.claim([queue], min(1000, n - len(done)), 60.0)
        assert claims, f"only {len(done)} of {n} jobs of {queue!r} could be claimed"
        started = time.time()
        acks = [
            Ack(c.id, c.token, kind, None if kind == AckKind.SUCCEED else
                error_record(c.attempt, "ValueError", f"boom {c.id}", "Traceback ...", worker=WORKER,
                             started_at=started))
            for c in claims
        ]
        assert all(await backend.ack_many(acks))
        done += [c.id for c in claims]
    return done


async def make_dead(app: fastjobs.App, task: fastjobs.Task[..., Any], n: int, **options: Any) -> list[str]:
    """Enqueue ``n`` jobs of ``task`` (with ``options``) and dead-letter them; their ids."""
    configured = task.options(**options) if options else task
    handles = await app.enqueue_many([configured.call(i) for i in range(n)])
    queue = options.get("queue", task.default_options.queue)
    dead = await finish_claimed(app, queue, n)
    assert set(dead) == set(handles.ids)
    return handles.ids
