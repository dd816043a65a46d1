"""Events: ``Backend.events()`` yields job lifecycle events live, to any number of listeners (best effort).

No timing is asserted: every wait is for an event to arrive, with a generous timeout.
"""

from __future__ import annotations

import asyncio

from fastjobs._core import QUEUED
from fastjobs.backends import Ack, AckKind, Backend, DependencyMode
from fastjobs.backends.base import EVENT_KINDS
from tests.contract.conftest import MakeBackend
from tests.contract.ops_helpers import FAR, LEASE, Listener, new


async def test_a_listener_sees_each_kind_of_event(backend: Backend) -> None:
    listener = Listener(backend)
    try:
        await listener.ready(backend)
        ok, failing, doomed, released, cancelled, deleted = (
            new(queue="emails", task=f"app.{name}", tags=("t",))
            for name in ("ok", "failing", "doomed", "released", "cancelled", "deleted")
        )
        await backend.enqueue_many([ok, failing, doomed, released])
        for j in (ok, failing, doomed, released):
            await listener.expect("enqueued", j)
        claims = {c.id: c for c in await backend.claim(["emails"], 10, LEASE)}
        assert len(claims) == 4
        for j in (ok, failing, doomed, released):
            await listener.expect("started", j)
        assert await backend.set_progress(ok.id, claims[ok.id].token, b"\x01") is True
        await listener.expect("progress", ok)
        acks = [
            Ack(ok.id, claims[ok.id].token, AckKind.SUCCEED, b"\xc0"),
            Ack(failing.id, claims[failing.id].token, AckKind.RETRY, b"e", FAR),
            Ack(doomed.id, claims[doomed.id].token, AckKind.DEAD, b"e"),
            Ack(released.id, claims[released.id].token, AckKind.RELEASE),
        ]
        assert await backend.ack_many(acks) == [True] * 4
        await listener.expect("succeeded", ok)
        await listener.expect("failed", failing)
        await listener.expect("dead", doomed)
        await listener.expect("released", released)
        await backend.enqueue_many([cancelled, deleted])
        assert await backend.cancel_jobs([cancelled.id]) == [True]
        await listener.expect("cancelled", cancelled)
        assert await backend.delete_jobs([deleted.id]) == [True]
        await listener.expect("deleted", deleted)
        seen = len(listener.seen)
        assert await backend.retry_jobs([doomed.id]) == [True]
        await listener.expect("enqueued", doomed, start=seen)
        assert {e.kind for e in listener.seen} <= set(EVENT_KINDS)
    finally:
        await listener.close()


async def test_a_lease_recovered_to_its_queue_is_released(backend: Backend) -> None:
    listener = Listener(backend)
    try:
        await listener.ready(backend)
        j = new()
        await backend.enqueue_many([j])
        assert len(await backend.claim(["q"], 1, 0.05)) == 1
        await asyncio.sleep(0.2)
        assert await backend.recover() == 1
        await listener.expect("released", j)
        got = await backend.get(j.id)
        assert got is not None and got.state == QUEUED
    finally:
        await listener.close()


async def test_dependants_cancelled_by_a_parent_are_cancelled_events(backend: Backend) -> None:
    listener = Listener(backend)
    try:
        await listener.ready(backend)
        parent = new(task="parent")
        child = new(task="child", depends_on=(parent.id,), after=int(DependencyMode.SUCCEEDED))
        grandchild = new(task="grandchild", depends_on=(child.id,))
        await backend.enqueue_many([parent, child, grandchild])
        assert await backend.cancel_jobs([parent.id]) == [True]
        for j in (parent, child, grandchild):
            await listener.expect("cancelled", j)
    finally:
        await listener.close()


async def test_two_listeners_both_see_every_event(backend: Backend) -> None:
    first, second = Listener(backend), Listener(backend)
    try:
        await first.ready(backend)
        await second.ready(backend)
        jobs = [new(queue=f"q{i}", task=f"t{i}") for i in range(5)]
        await backend.enqueue_many(jobs)
        for listener in (first, second):
            for j in jobs:
                await listener.expect("enqueued", j)
    finally:
        await first.close()
        await second.close()


async def test_a_queues_filter_filters(backend: Backend) -> None:
    picky = Listener(backend, ["wanted", "probe"])
    everything = Listener(backend)
    try:
        await picky.ready(backend)
        await everything.ready(backend)
        unwanted, wanted, unwanted2, wanted2 = new(queue="unwanted"), new(queue="wanted"), new(queue="x"), new(queue="wanted")
        await backend.enqueue_many([unwanted])
        await backend.enqueue_many([wanted])
        await backend.enqueue_many([unwanted2])
        await backend.enqueue_many([wanted2])
        await picky.expect("enqueued", wanted)
        await picky.expect("enqueued", wanted2)
        # In Redis Cluster the queues live on different nodes: events of different queues
        # may arrive in any order, so each is waited for by itself.
        for job in (unwanted, wanted, unwanted2, wanted2):
            await everything.expect("enqueued", job)
        assert {e.queue for e in picky.seen} <= {"wanted", "probe"}
    finally:
        await picky.close()
        await everything.close()


async def test_events_off_publishes_nothing(make_backend: MakeBackend, backend_kind: str) -> None:
    quiet = await make_backend(events=False)
    # memory:// is one store per object, so it is watched on itself; a server is watched
    # from a client of the same namespace that publishes, so a marker of its own can say
    # "everything the quiet one did before is delivered by now".
    watcher = quiet if backend_kind == "memory" else await make_backend()
    listener = Listener(watcher)
    try:
        if watcher is not quiet:
            await listener.ready(watcher)
        else:
            for _ in range(10):
                await asyncio.sleep(0)  # let the listener's task subscribe
        jobs = [new(), new()]
        await quiet.enqueue_many(jobs)
        claims = await quiet.claim(["q"], 10, LEASE)
        assert len(claims) == 2
        await quiet.set_progress(claims[0].id, claims[0].token, b"\x01")
        await quiet.ack_many([Ack(c.id, c.token, AckKind.DEAD, b"e") for c in claims])
        await quiet.retry_jobs([jobs[0].id])
        await quiet.cancel_jobs([jobs[0].id])
        await quiet.delete_jobs([j.id for j in jobs])
        if watcher is not quiet:
            marker = new(queue="q")
            await watcher.enqueue_many([marker])
            await listener.expect("enqueued", marker)
        else:
            await asyncio.sleep(0.05)  # memory publishes inside the call: nothing can be on its way
        assert not {e.job_id for e in listener.seen} & {j.id for j in jobs}
    finally:
        await listener.close()


async def test_closing_the_iterator_unsubscribes(backend: Backend, backend_kind: str) -> None:
    iterator = backend.events()
    first = new()

    async def first_event() -> None:
        async for event in iterator:
            if event.job_id == first.id:
                return

    waiting = asyncio.ensure_future(first_event())
    for _ in range(60):  # until subscribed: the first event arrives
        await backend.enqueue_many([first])
        done, _ = await asyncio.wait({waiting}, timeout=0.5)
        if done:
            break
        first = new()
    assert waiting.done() and waiting.exception() is None
    await iterator.aclose()  # type: ignore[attr-defined]
    # Closed: no more events, and the backend carries on without the listener.
    try:
        await iterator.__anext__()
    except StopAsyncIteration:
        pass
    else:
        raise AssertionError("a closed iterator yielded")
    await backend.enqueue_many([new() for _ in range(100)])
    assert len(await backend.claim(["q"], 200, LEASE)) >= 100
    if backend_kind == "memory":
        assert getattr(backend, "_listeners") == []
    # A new subscription works.
    again = Listener(backend)
    try:
        await again.ready(backend)
    finally:
        await again.close()
    if backend_kind == "memory":
        assert getattr(backend, "_listeners") == []
