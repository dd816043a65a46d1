"""Shared helpers of the operations-layer contract tests (search, actions, history, events)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from fastjobs._core import CANCELLED, DEAD, SUCCEEDED
from fastjobs.backends import Ack, AckKind, Backend, NewJob
from fastjobs.backends.base import Event, JobFilter, Position, StoredJob
from fastjobs.job import new_job_id

LEASE = 60.0
FAR = 3600.0
"""A delay that never falls due during a test."""


def new(queue: str = "q", task: str = "t", tags: tuple[str, ...] = (), delay: float = 0.0,
        max_attempts: int = 3, priority: int = 0, unique_key: str | None = None, unique_ttl: float = 0.0,
        depends_on: tuple[str, ...] = (), after: int = 0, body: bytes | None = None) -> NewJob:
    """A NewJob with every one of its 13 fields given."""
    jid = new_job_id()
    return NewJob(jid, queue, priority, delay, max_attempts, body or jid.encode(), unique_key, unique_ttl,
                  depends_on, after, None, task, tags)


def at_us(job: StoredJob) -> int:
    """A job's search time as a Position's integer microseconds."""
    at = job.finished_at if job.state in (SUCCEEDED, DEAD, CANCELLED) else job.enqueued_at
    assert at is not None
    return round(at * 1e6)


def newest_first(jobs: Sequence[StoredJob]) -> list[str]:
    return [j.id for j in sorted(jobs, key=lambda j: (at_us(j), j.id), reverse=True)]


async def stored(backend: Backend, ids: Sequence[str]) -> list[StoredJob]:
    found = [await backend.get(i) for i in ids]
    assert all(j is not None for j in found)
    return [j for j in found if j is not None]


async def search_all(backend: Backend, where: JobFilter, limit: int,
                     max_calls: int = 100_000) -> list[StoredJob]:
    """Every job ``where`` matches, page by page until the position is None."""
    found: list[StoredJob] = []
    position: Position | None = None
    for _ in range(max_calls):
        page, after = await backend.search(where, limit, position)
        assert len(page) <= limit
        if after is not None:
            assert position is None or after < position, "a position must move down"
        found += page
        if after is None:
            return found
        position = after
    raise AssertionError(f"no end after {max_calls} pages")


async def claim_all(backend: Backend, queue: str, n: int) -> dict[str, int]:
    """Claim ``n`` jobs of ``queue`` (in as many calls as it takes): id -> token."""
    tokens: dict[str, int] = {}
    for _ in range(1000):
        if len(tokens) >= n:
            break
        for c in await backend.claim([queue], min(1000, n - len(tokens)), LEASE):
            tokens[c.id] = c.token
    assert len(tokens) == n, f"claimed {len(tokens)} of {n}"
    return tokens


async def finish(backend: Backend, queue: str, n: int, kind: AckKind = AckKind.SUCCEED,
                 delay: float = 0.0) -> list[str]:
    """Claim ``n`` jobs of ``queue`` and ack them all in ONE ack_many; their ids."""
    tokens = await claim_all(backend, queue, n)
    payload = None if kind in (AckKind.SUCCEED, AckKind.RELEASE) else b"\x80"
    acks = [Ack(i, t, kind, payload, delay) for i, t in tokens.items()]
    assert all(await backend.ack_many(acks))
    return list(tokens)


class Listener:
    """Collects what ``backend.events(queues)`` yields, in a task of its own."""

    def __init__(self, backend: Backend, queues: Sequence[str] | None = None) -> None:
        self.iterator = backend.events(queues)
        self.seen: list[Event] = []
        self.error: BaseException | None = None
        self._arrived = asyncio.Event()
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        try:
            async for event in self.iterator:
                self.seen.append(event)
                self._arrived.set()
        except Exception as exc:  # surfaced by wait_for
            self.error = exc
            self._arrived.set()

    async def wait_for(self, predicate: Callable[[Event], bool], timeout: float = 20.0, start: int = 0) -> Event:
        """The first event seen (from the ``start``-th on) or to come that ``predicate`` accepts."""

        async def look() -> Event:
            nonlocal start
            while True:
                for event in self.seen[start:]:
                    if predicate(event):
                        return event
                start = len(self.seen)
                if self.error is not None:
                    raise self.error
                self._arrived.clear()
                await self._arrived.wait()

        return await asyncio.wait_for(look(), timeout)

    async def expect(self, kind: str, job: NewJob, start: int = 0) -> Event:
        """The ``kind`` event of ``job`` (from the ``start``-th seen on), checked to name its task and queue."""
        event = await self.wait_for(lambda e: e.kind == kind and e.job_id == job.id, start=start)
        assert (event.task, event.queue) == (job.task, job.queue), event
        assert event.at > 0
        return event

    async def ready(self, backend: Backend, queue: str = "probe") -> None:
        """Return once the listener is subscribed: probe jobs are enqueued until one is seen."""
        for _ in range(3):
            await asyncio.sleep(0)  # let the listener's task start (and memory:// subscribe at once)
        for _ in range(60):
            probe = new(queue=queue, task="probe")
            await backend.enqueue_many([probe])
            try:
                await self.wait_for(lambda e: e.job_id == probe.id, timeout=0.5)
                return
            except asyncio.TimeoutError:
                continue
        raise AssertionError("the listener never saw a probe's event")

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.iterator.aclose()  # type: ignore[attr-defined]
