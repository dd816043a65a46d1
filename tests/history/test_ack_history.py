"""The ack buffer sends each run's history once, even when a flush fails and is retried."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

from fastjobs.acks import AckBuffer
from fastjobs.backends.base import Ack, Backend, HistoryRow, NewJob, Outcome
from fastjobs.job import decode_error, new_job_ids


async def claim_some(backend: Backend, n: int) -> list[Any]:
    jobs = [NewJob(i, "acks", 0, 0.0, 3, b"body", None, 0.0, (), 0, None, "t", ()) for i in new_job_ids(n)]
    await backend.enqueue_many(jobs)
    claims = await backend.claim(["acks"], n, 30.0)
    assert len(claims) == n
    return claims


def lose_first_call(backend: Backend, applied: bool) -> list[Sequence[HistoryRow]]:
    """Make the backend's next ack_many fail: before reaching it, or after it applied (a lost reply)."""
    real = backend.ack_many
    sent: list[Sequence[HistoryRow]] = []

    async def ack_many(acks: Sequence[Ack], history: Sequence[HistoryRow] = ()) -> list[bool]:
        sent.append(history)
        if len(sent) == 1:
            if applied:
                await real(acks, history=history)
            raise ConnectionError("connection reset (injected)")
        return await real(acks, history=history)

    backend.ack_many = ack_many  # type: ignore[method-assign]
    return sent


async def runs_recorded(backend: Backend) -> dict[int, int]:
    now = await backend.now()
    counts: dict[int, int] = {}
    for point in await backend.history(now - 3600, now + 3600, 3600, queue="acks"):
        counts[point.row.outcome] = counts.get(point.row.outcome, 0) + point.row.runs
    return counts


async def flush(backend: Backend, applied: bool) -> tuple[AckBuffer, list[Sequence[HistoryRow]]]:
    claims = await claim_some(backend, 6)
    sent = lose_first_call(backend, applied)
    buffer = AckBuffer(ack_batch=1000, ack_interval=0.001, max_payload=1 << 20, worker="w-1")
    buffer.start(backend, asyncio.get_running_loop())
    record: Any = SimpleNamespace(queue="acks", task="t", max_attempts=3, backoff=None)
    for claim in claims[:4]:
        buffer.succeed(claim, record, None, 0.02)
    buffer.fail(claims[4], record, ValueError("boom"), 0.5)
    buffer.release(claims[5])
    assert await buffer.flush_all(timeout=30.0)
    return buffer, sent


async def test_a_flush_that_never_arrived_is_counted_once_it_lands(backend: Backend) -> None:
    buffer, sent = await flush(backend, applied=False)
    assert buffer.acked == 6 and buffer.stale == 0
    assert await runs_recorded(backend) == {Outcome.SUCCEEDED: 4, Outcome.RETRIED: 1}
    # The retry carried no rows of its own (they were unsure), then a call sent the rows of the applied ones.
    assert [sum(r.runs for r in rows) for rows in sent] == [5, 0, 5]


async def test_a_flush_applied_with_its_reply_lost_is_not_counted_twice(backend: Backend) -> None:
    buffer, sent = await flush(backend, applied=True)
    assert buffer.stale == 6  # the retry found them applied: their tokens used
    assert await runs_recorded(backend) == {Outcome.SUCCEEDED: 4, Outcome.RETRIED: 1}
    assert [sum(r.runs for r in rows) for rows in sent] == [5, 0]


async def test_failed_attempts_record_the_worker_and_start(backend: Backend) -> None:
    claims = await claim_some(backend, 1)
    buffer = AckBuffer(ack_batch=1000, ack_interval=0.001, max_payload=1 << 20, worker="w-7")
    buffer.start(backend, asyncio.get_running_loop())
    record: Any = SimpleNamespace(queue="acks", task="t", max_attempts=3, backoff=None)
    before = time.time()
    buffer.fail(claims[0], record, ValueError("boom"), 2.0)
    error = decode_error(buffer.pending[0].payload or b"")
    assert error.worker == "w-7" and error.type == "ValueError"
    assert error.started_at is not None and before - 2.0 - 1 < error.started_at <= error.at - 2.0 + 0.01
    assert await buffer.flush_all(timeout=30.0)
    stored = await backend.get(claims[0].id)
    assert stored is not None and decode_error(stored.errors[-1]).worker == "w-7"
