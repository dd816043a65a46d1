"""``app.events``: what a listener sees while a real worker runs, on every backend."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

import fastjobs
from fastjobs.backends.base import Event

from .test_worker_history import register

GUARD = 30.0
"""Seconds before a test that waits for events gives up (a hang guard, not a timing assertion)."""


class Listener:
    """Collects ``app.events(queues)`` in a task; :meth:`subscribed` returns once it demonstrably listens."""

    def __init__(self, app: fastjobs.App, queues: list[str] | None = None) -> None:
        self.app = app
        self.events: list[Event] = []
        self.changed = asyncio.Event()
        self.task = asyncio.ensure_future(self._run(queues))

    async def _run(self, queues: list[str] | None) -> None:
        async for event in self.app.events(queues):
            self.events.append(event)
            self.changed.set()

    async def wait_for(self, done: Callable[[], bool]) -> None:
        deadline = time.monotonic() + GUARD
        while not done():
            assert time.monotonic() < deadline, f"events still missing; seen: {self.events}"
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), 0.5)
            except asyncio.TimeoutError:
                pass
            if self.task.done():
                self.task.result()  # raise what stopped it

    async def subscribed(self, probe: fastjobs.Task[..., object]) -> None:
        """Enqueue ``probe`` jobs until one of their events arrives: the subscription is then live
        (it starts when the listener's generator first runs, which nothing else signals)."""
        sent: set[str] = set()
        deadline = time.monotonic() + GUARD
        while not sent & {e.job_id for e in self.events}:
            assert time.monotonic() < deadline, "the listener never saw an event"
            sent.add((await probe.enqueue()).id)
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), 0.1)
            except asyncio.TimeoutError:
                pass

    async def close(self) -> None:
        self.task.cancel()
        try:
            await self.task
        except asyncio.CancelledError:
            pass

    def kinds(self, job_id: str) -> list[str]:
        return [e.kind for e in self.events if e.job_id == job_id]


async def test_a_listener_sees_each_job_move_during_a_worker_run(app: fastjobs.App) -> None:
    tasks = register(app)

    @app.task(name="probe", queue="probe")
    async def probe() -> None: ...

    # Connected first: App.backend() hands a second concurrent first caller the backend while
    # the first still connects (migrates), and PostgreSQL's listener needs the schema.
    await app.backend()
    everything = Listener(app)
    only_other = Listener(app, ["other"])
    try:
        await everything.subscribed(probe)
        await only_other.subscribed(tasks["doomed"])  # runs below like the others
        before = time.time()
        fast = await tasks["fast"].enqueue(1)
        flaky = await tasks["flaky"].enqueue()
        doomed = await tasks["doomed"].enqueue()
        worker = app.worker(["hist", "other"], burst=True, handle_signals=False)
        await asyncio.wait_for(worker.run(), GUARD)
        expected = {
            fast.id: ["enqueued", "started", "succeeded"],
            flaky.id: ["enqueued", "started", "failed", "started", "succeeded"],
            doomed.id: ["enqueued", "started", "failed", "started", "dead"],
        }
        await everything.wait_for(lambda: all(len(everything.kinds(i)) >= len(k) for i, k in expected.items()))
        for job_id, kinds in expected.items():
            assert everything.kinds(job_id) == kinds
        mine = [e for e in everything.events if e.job_id in expected]
        assert {(e.job_id, e.task, e.queue) for e in mine} == {
            (fast.id, "fast", "hist"), (flaky.id, "flaky", "hist"), (doomed.id, "doomed", "other"),
        }
        assert all(before - 60 < e.at < time.time() + 60 for e in mine)
        await only_other.wait_for(lambda: len(only_other.kinds(doomed.id)) >= 5)
        assert only_other.kinds(doomed.id) == expected[doomed.id]
        assert {e.queue for e in only_other.events} == {"other"}
    finally:
        await everything.close()
        await only_other.close()


async def test_events_reject_bad_queues(app: fastjobs.App) -> None:
    register(app)
    for queues in ([], "", ["bad queue"], [""]):
        with pytest.raises(fastjobs.InvalidOptionError):
            app.events(queues)
    stream = app.events("hist,other")  # a string may name several, as for workers
    await stream.aclose()  # type: ignore[attr-defined]
