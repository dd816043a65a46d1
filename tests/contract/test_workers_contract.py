"""The live worker registry on every backend: register, beat with renewals, gone after the ttl, deregister."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

import fastjobs
from fastjobs.backends import Backend, Beat, NewJob, WorkerInfo
from fastjobs.job import new_job_id
from tests.contract.conftest import MakeApp, MakeBackend, clients


def info(worker_id: str = "host-1:4242:a1b2c3", **changes: Any) -> WorkerInfo:
    base = WorkerInfo(worker_id, "host-1", 4242, ("emails", "default"), 50, fastjobs.__version__, 0.0, 0.0)
    return dataclasses.replace(base, **changes)


async def listed(backend: Backend, worker_id: str) -> WorkerInfo | None:
    return next((w for w in await backend.workers() if w.id == worker_id), None)


async def test_a_registered_worker_is_listed_alive_with_backend_times(backend: Backend) -> None:
    before = await backend.now()
    await backend.register_worker(info(started_at=1.0, last_seen=2.0, running=("x",), alive=False), ttl=30.0)
    after = await backend.now()
    (w,) = await backend.workers()
    assert (w.id, w.hostname, w.pid, w.queues, w.concurrency, w.version) == (
        "host-1:4242:a1b2c3", "host-1", 4242, ("emails", "default"), 50, fastjobs.__version__)
    # Stamped by the backend's clock; what the caller put there is ignored.
    assert before - 0.01 <= w.started_at == w.last_seen <= after + 0.01
    assert w.running == () and w.alive


async def test_a_beat_with_the_renewal_updates_last_seen_and_running(backend: Backend) -> None:
    await backend.register_worker(info(), ttl=30.0)
    (registered,) = await backend.workers()
    await backend.enqueue_many([NewJob(new_job_id(), "emails", 0, 0.0, 3, b"body")])
    (claim,) = await backend.claim(["emails"], 1, 30.0)
    await asyncio.sleep(0.05)
    applied = await backend.renew([(claim.id, claim.token, 30.0)], Beat(registered.id, (claim.id,), 30.0))
    assert applied == [True]
    (beaten,) = await backend.workers()
    assert beaten.running == (claim.id,) and beaten.last_seen > registered.last_seen
    assert beaten.started_at == registered.started_at and beaten.alive


async def test_one_beat_rides_on_a_renewal_across_queues(backend: Backend) -> None:
    await backend.register_worker(info(), ttl=30.0)
    await backend.enqueue_many([NewJob(new_job_id(), q, 0, 0.0, 3, b"") for q in ("emails", "default", "pdf")])
    claims = await backend.claim(["emails", "default", "pdf"], 3, 30.0)
    leases = [(c.id, c.token, 30.0) for c in claims] + [(new_job_id(), 1, 30.0)]
    running = tuple(c.id for c in claims)
    assert await backend.renew(leases, Beat(info().id, running, 30.0)) == [True, True, True, False]
    assert (await backend.workers())[0].running == running


async def test_a_beat_alone_needs_no_lease(backend: Backend) -> None:
    await backend.register_worker(info(), ttl=30.0)
    await backend.renew([], Beat("host-1:4242:a1b2c3", ("j1", "j2"), 30.0))
    assert (await backend.workers())[0].running == ("j1", "j2")
    assert await backend.renew([], Beat("host-1:4242:a1b2c3", (), 30.0)) == []
    assert (await backend.workers())[0].running == ()


async def test_no_beat_within_the_ttl_lists_the_worker_as_gone_until_it_beats_again(backend: Backend) -> None:
    await backend.register_worker(info("a:1:x"), ttl=0.3)
    await backend.register_worker(info("b:2:y"), ttl=30.0)
    await asyncio.sleep(0.5)
    states = {w.id: w.alive for w in await backend.workers()}
    assert states == {"a:1:x": False, "b:2:y": True}
    await backend.renew([], Beat("a:1:x", (), 0.3))
    assert (await listed(backend, "a:1:x")).alive  # type: ignore[union-attr]


async def test_deregister_removes_at_once(backend: Backend) -> None:
    await backend.register_worker(info("a:1:x"), ttl=30.0)
    await backend.register_worker(info("b:2:y"), ttl=30.0)
    assert await backend.deregister_worker("a:1:x") is True
    assert [w.id for w in await backend.workers()] == ["b:2:y"]
    assert await backend.deregister_worker("a:1:x") is False
    # A late beat of a deregistered worker does not bring it back.
    await backend.renew([], Beat("a:1:x", (), 30.0))
    assert await listed(backend, "a:1:x") is None


async def test_registering_again_replaces_the_record(backend: Backend) -> None:
    await backend.register_worker(info(), ttl=30.0)
    await backend.renew([], Beat(info().id, ("j1",), 30.0))
    await backend.register_worker(info(concurrency=7), ttl=30.0)
    (w,) = await backend.workers()
    assert w.concurrency == 7 and w.running == ()


async def test_workers_are_listed_oldest_first_and_shared_by_clients(make_backend: MakeBackend, backend_kind: str) -> None:
    one, two = await clients(make_backend, backend_kind, 2)
    await one.register_worker(info("z:1:a"), ttl=30.0)
    await asyncio.sleep(0.01)
    await two.register_worker(info("a:2:b"), ttl=30.0)
    assert [w.id for w in await one.workers()] == ["z:1:a", "a:2:b"]
    assert [w.id for w in await two.workers()] == ["z:1:a", "a:2:b"]


@pytest.mark.parametrize(
    ("worker", "ttl"),
    [
        (info(""), 30.0),
        (info("x" * 201), 30.0),
        (info(pid=-1), 30.0),
        (info(concurrency=0), 30.0),
        (info(), 0.0),
        (info(), -1.0),
        (info(), True),
        (info(), 1e9),
    ],
)
async def test_bad_registrations_raise_and_store_nothing(backend: Backend, worker: WorkerInfo, ttl: float) -> None:
    with pytest.raises(ValueError):
        await backend.register_worker(worker, ttl)
    assert await backend.workers() == []


async def test_bad_beats_and_ids_raise_before_anything_applies(backend: Backend) -> None:
    await backend.register_worker(info(), ttl=30.0)
    with pytest.raises(TypeError):
        await backend.register_worker({"id": "x"}, 30.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await backend.renew([], ("host-1:4242:a1b2c3", (), 30.0))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        await backend.renew([], Beat("host-1:4242:a1b2c3", ["j1"], 30.0))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        await backend.renew([], Beat("host-1:4242:a1b2c3", (), 0.0))
    with pytest.raises(ValueError):
        await backend.deregister_worker("")
    assert (await backend.workers())[0].running == ()


async def test_an_unknown_worker_beat_changes_nothing(backend: Backend) -> None:
    assert await backend.renew([], Beat("ghost:1:x", ("j",), 30.0)) == []
    assert await backend.workers() == []


async def test_a_running_worker_is_listed_with_its_jobs_and_leaves_when_it_stops(make_app: MakeApp) -> None:
    app = make_app(lease=0.3)  # a beat every 0.1 s, gone after 0.3 s without one
    started = asyncio.Event()
    release = asyncio.Event()

    @app.task()
    async def slow() -> None:
        started.set()
        await release.wait()

    handle = await slow.enqueue()
    worker = app.worker(handle_signals=False, concurrency=4)
    running = asyncio.ensure_future(worker.run())
    try:
        await asyncio.wait_for(started.wait(), 10)
        deadline = asyncio.get_running_loop().time() + 5
        while True:
            (w,) = await app.workers()
            if w.running == (handle.id,) or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.05)
        assert (w.id, w.alive, w.running, w.concurrency) == (worker.id, True, (handle.id,), 4)
        release.set()
        await handle.result(timeout=10)
        await asyncio.sleep(0.3)  # idle: it still beats, with nothing running
        (w,) = await app.workers()
        assert w.alive and w.running == ()
    finally:
        release.set()
        worker.request_stop()
        await asyncio.wait_for(running, 10)
    assert await app.workers() == []
