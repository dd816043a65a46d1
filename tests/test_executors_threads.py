"""The thread runner of plain ``def`` handlers (:class:`fastjobs.executors.ThreadRunner`), without
a lock per job: every outcome delivered once, a job withdrawn or started but never both, a job
whose lease was not confirmed in time given back unstarted."""

from __future__ import annotations

import asyncio
import threading
import time
import types
from typing import Any

from fastjobs.executors import LEASE_UNCONFIRMED, Running, ThreadRunner


def job(fn: Any, *args: Any) -> Running:
    task = types.SimpleNamespace(invoke=fn, context=False)
    record = types.SimpleNamespace(args=args, kwargs={})
    running = Running(None, record, task, None, 30.0)  # type: ignore[arg-type]
    running.start_by = time.monotonic() + 60.0
    return running


async def collect(runner: ThreadRunner, delivered: list[Any], count: int) -> None:
    for _ in range(2000):
        if len(delivered) >= count:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"{len(delivered)} outcomes of {count}")


async def test_every_outcome_is_delivered_once() -> None:
    delivered: list[Any] = []
    batches: list[int] = []

    def deliver(outcomes: list[Any]) -> None:
        batches.append(len(outcomes))
        delivered.extend(outcomes)

    runner = ThreadRunner(asyncio.get_running_loop(), 8, deliver)
    jobs = [job(lambda i: i * 2 if i % 7 else 1 // 0, i) for i in range(3000)]
    for running in jobs:
        runner.submit(running)
    await collect(runner, delivered, len(jobs))
    await asyncio.sleep(0.05)
    runner.stop()
    assert len(delivered) == len(jobs) and {id(r) for r, _, _ in delivered} == {id(r) for r in jobs}
    for running, value, exc in delivered:
        i = running.record.args[0]
        if i % 7:
            assert (value, exc) == (i * 2, None)
        else:
            assert value is None and isinstance(exc, ZeroDivisionError)
        assert running.ran >= 0.0 and running.started is not None
    assert all(batches) and not runner.unstarted and not runner.outcomes


async def test_a_job_is_withdrawn_or_started_never_both() -> None:
    delivered: list[Any] = []
    runner = ThreadRunner(asyncio.get_running_loop(), 1, delivered.extend)
    gate, ran = threading.Event(), []
    first = job(lambda: gate.wait(10))
    second = job(lambda: ran.append("second"))
    runner.submit(first)
    runner.submit(second)
    for _ in range(200):
        if first.started is not None:
            break
        await asyncio.sleep(0.005)
    assert not runner.withdraw(first)  # its thread took it
    assert runner.withdraw(second)  # still queued: taken back
    assert not runner.withdraw(second)  # once
    gate.set()
    await collect(runner, delivered, 1)
    await asyncio.sleep(0.05)
    runner.stop()
    assert [r for r, _, _ in delivered] == [first] and ran == []


async def test_a_job_past_its_start_by_is_given_back_unstarted() -> None:
    delivered: list[Any] = []
    runner = ThreadRunner(asyncio.get_running_loop(), 2, delivered.extend)
    ran: list[int] = []
    late = job(ran.append, 1)
    late.start_by = time.monotonic() - 1.0
    runner.submit(late)
    await collect(runner, delivered, 1)
    runner.stop()
    assert delivered == [(late, None, LEASE_UNCONFIRMED)] and ran == []
