"""The App and the Worker on every backend: what a user sees end to end."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
import uuid
from decimal import Decimal
from typing import Any

import pytest

import fastjobs
from fastjobs.backends import NewJob
from fastjobs.job import new_job_id


async def run_burst(app: fastjobs.App, **options: Any) -> fastjobs.Worker:
    options.setdefault("handle_signals", False)
    worker = app.worker(burst=True, **options)
    await asyncio.wait_for(worker.run(), 30)
    return worker


async def test_async_and_sync_handlers_run_and_store_results(app: fastjobs.App) -> None:
    @app.task()
    async def add(a: int, b: int) -> int:
        return a + b

    @app.task()
    async def add_later(a: int, b: int) -> int:
        await asyncio.sleep(0.01)
        return a + b

    @app.task()
    def mul(a: int, b: int) -> int:
        return a * b

    handles = await app.enqueue_many(
        [add.call(i, 1) for i in range(50)] + [add_later.call(i, 2) for i in range(50)] + [mul.call(i, 3) for i in range(50)]
    )
    worker = await run_burst(app)
    assert worker.succeeded == 150
    results = [(await app.get_job(h.id)).result for h in handles]  # type: ignore[union-attr]
    assert results == [i + 1 for i in range(50)] + [i + 2 for i in range(50)] + [i * 3 for i in range(50)]
    info = await app.get_job(handles[0].id)
    assert info is not None and info.state == "succeeded" and info.attempt == 1
    assert info.started_at is not None and info.finished_at is not None and info.finished_at >= info.started_at


async def test_arguments_travel_with_their_types(app: fastjobs.App) -> None:
    seen: list[Any] = []

    @app.task()
    async def record(*args: Any, **kwargs: Any) -> Any:
        seen.append((args, kwargs))
        return kwargs["when"]

    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    uid = uuid.uuid4()
    job = await record.enqueue(b"\x00raw", Decimal("1.10"), uid, [1, (2, 3)], when=when, nested={"a": [None, True]})
    await run_burst(app)
    assert seen == [((b"\x00raw", Decimal("1.10"), uid, [1, [2, 3]]), {"when": when, "nested": {"a": [None, True]}})]
    assert (await job.result(timeout=5)) == when


async def test_failures_retry_with_errors_kept_per_attempt(app: fastjobs.App) -> None:
    calls: list[int] = []

    @app.task(max_attempts=3, backoff=fastjobs.Fixed(0.05))
    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ValueError(f"failure {len(calls)}")
        return "ok"

    job = await flaky.enqueue()
    worker = app.worker(handle_signals=False)
    runner = asyncio.ensure_future(worker.run())
    try:
        assert await job.result(timeout=10) == "ok"
    finally:
        worker.request_stop()
        await runner
    info = await job.info()
    assert info is not None and info.attempt == 3 and len(calls) == 3
    assert [(e.attempt, e.type, e.message) for e in info.errors] == [(1, "ValueError", "failure 1"), (2, "ValueError", "failure 2")]
    assert "raise ValueError" in info.errors[0].traceback


async def test_last_attempt_dead_letters_and_retry_dead_revives(app: fastjobs.App) -> None:
    fail = {"on": True}

    @app.task(max_attempts=2, backoff=None)
    async def broken(n: int) -> int:
        if fail["on"]:
            raise RuntimeError("still broken")
        return n

    job = await broken.enqueue(7)
    await run_burst(app)
    info = await job.info()
    assert info is not None and info.state == "dead" and info.attempt == 2
    dead = await app.dead_letters()
    assert [d.id for d in dead] == [job.id]
    assert dead[0].error is not None and dead[0].error.type == "RuntimeError"
    with pytest.raises(fastjobs.JobFailedError, match="dead"):
        await job.result(timeout=1)
    fail["on"] = False
    assert await app.retry_dead(job.id) is True
    await run_burst(app)
    assert await job.result(timeout=5) == 7
    assert await app.dead_letters() == []


async def test_retry_and_fail_exceptions(app: fastjobs.App) -> None:
    attempts: list[float] = []

    @app.task(max_attempts=5)
    async def again() -> None:
        attempts.append(time.monotonic())
        if len(attempts) == 1:
            raise fastjobs.Retry(delay=0.3, reason="not yet")

    @app.task(max_attempts=5)
    async def give_up() -> None:
        raise fastjobs.Fail("bad input, no point retrying")

    a, b = await again.enqueue(), await give_up.enqueue()
    worker = app.worker(handle_signals=False)
    runner = asyncio.ensure_future(worker.run())
    try:
        await a.result(timeout=10)
    finally:
        worker.request_stop()
        await runner
    assert len(attempts) == 2 and attempts[1] - attempts[0] >= 0.25
    info = await b.info()
    assert info is not None and info.state == "dead" and info.attempt == 1
    assert info.errors[0].type == "Fail"


async def test_unknown_task_and_corrupt_payload_are_dead_lettered_and_others_run(app: fastjobs.App) -> None:
    @app.task()
    async def fine(n: int) -> int:
        return n

    good = await fine.enqueue(1)
    backend = await app.backend()
    stranger_app = fastjobs.App("memory://")

    @stranger_app.task(name="not.registered.here")
    async def stranger() -> None: ...

    unknown = stranger.call().to_new_job(app.max_payload, new_job_id(), time.time())
    garbage = NewJob(new_job_id(), "default", 0, 0.0, 3, b"\xc1\x00garbage")
    truncated_body = fine.call(5).to_new_job(app.max_payload, new_job_id(), time.time()).body[:-3]
    truncated = NewJob(new_job_id(), "default", 0, 0.0, 3, truncated_body)
    await backend.enqueue_many([unknown, garbage, truncated])
    good2 = await fine.enqueue(2)
    await run_burst(app)
    assert await good.result(timeout=5) == 1 and await good2.result(timeout=5) == 2
    reasons = {}
    for job_id in (unknown.id, garbage.id, truncated.id):
        info = await app.get_job(job_id)
        assert info is not None and info.state == "dead" and info.attempt == 1, info
        reasons[job_id] = info.errors[-1]
    assert reasons[unknown.id].type == "UnknownTaskError" and "not.registered.here" in reasons[unknown.id].message
    assert reasons[garbage.id].type == "CorruptJobError"
    assert reasons[truncated.id].type == "CorruptJobError"


async def test_timeouts_fail_the_attempt(app: fastjobs.App) -> None:
    @app.task(timeout=0.2, max_attempts=1)
    async def hangs() -> None:
        await asyncio.sleep(30)

    @app.task(timeout=0.2, max_attempts=1)
    def hangs_in_thread() -> None:
        time.sleep(0.6)

    a, b = await hangs.enqueue(), await hangs_in_thread.enqueue()
    started = time.monotonic()
    await run_burst(app)
    assert time.monotonic() - started < 5
    for job in (a, b):
        info = await job.info()
        assert info is not None and info.state == "dead"
        assert info.errors[-1].type == "JobTimeoutError"


async def test_result_that_cannot_be_encoded_dead_letters(app: fastjobs.App) -> None:
    @app.task(max_attempts=3)
    async def returns_set() -> Any:
        return {1, 2}

    job = await returns_set.enqueue()
    await run_burst(app)
    info = await job.info()
    assert info is not None and info.state == "dead" and info.attempt == 1
    assert info.errors[-1].type == "UnencodableError"


async def test_invalid_options_are_refused_at_enqueue(app: fastjobs.App) -> None:
    @app.task()
    async def t(x: Any) -> None: ...

    with pytest.raises(fastjobs.InvalidOptionError, match="delay"):
        t.options(delay=-1)
    with pytest.raises(fastjobs.InvalidOptionError, match="queue"):
        t.options(queue="bad queue{x}")
    with pytest.raises(fastjobs.InvalidOptionError, match="priority"):
        t.options(priority=10**9)
    with pytest.raises(fastjobs.InvalidOptionError, match="max_attempts"):
        t.options(max_attempts=0)
    with pytest.raises(fastjobs.InvalidOptionError, match="eta"):
        t.options(eta=dt.datetime(2030, 1, 1))
    with pytest.raises(fastjobs.UnencodableError, match="set"):
        await t.enqueue({1, 2})
    with pytest.raises(fastjobs.PayloadTooLargeError):
        await t.enqueue("x" * (app.max_payload + 1))
    assert sum(sum(s.values()) for s in (await app.stats()).values()) == 0


async def test_delayed_job_does_not_run_early(app: fastjobs.App) -> None:
    ran: list[float] = []

    @app.task()
    async def later() -> None:
        ran.append(time.time())

    enqueued = time.time()
    job = await later.options(delay=0.5).enqueue()
    assert (await job.info()).state == "scheduled"  # type: ignore[union-attr]
    worker = app.worker(handle_signals=False)
    runner = asyncio.ensure_future(worker.run())
    try:
        await job.result(timeout=10)
    finally:
        worker.request_stop()
        await runner
    assert ran[0] - enqueued >= 0.45
    assert ran[0] - enqueued < 0.5 + 0.5  # woken by the due time, not a slow poll


async def test_priority_order_with_one_slot(app: fastjobs.App) -> None:
    order: list[str] = []

    @app.task()
    async def mark(name: str) -> None:
        order.append(name)

    await mark.options(priority=0).enqueue("low")
    await mark.options(priority=9).enqueue("high")
    await mark.options(priority=0).enqueue("low2")
    await mark.options(queue="second", priority=99).enqueue("other-queue")
    await run_burst(app, queues=["default", "second"], concurrency=1)
    assert order == ["high", "low", "low2", "other-queue"]


async def test_lease_is_renewed_while_a_job_runs(request: pytest.FixtureRequest, app: fastjobs.App) -> None:
    # The job outlives three leases; renewals every lease/3 keep it ours. A lease
    # of a second leaves room for a slow round trip on a loaded machine.
    app.lease = 1.0
    runs: list[int] = []

    @app.task()
    async def long() -> str:
        runs.append(1)
        await asyncio.sleep(3.0)
        return "done"

    job = await long.enqueue()
    await run_burst(app, concurrency=10)
    assert runs == [1]
    info = await job.info()
    assert info is not None and info.state == "succeeded" and info.attempt == 1


async def test_cancelling_a_running_job_stops_it(app: fastjobs.App) -> None:
    app.lease = 0.3
    started = asyncio.Event()
    finished: list[bool] = []

    @app.task()
    async def long() -> None:
        started.set()
        await asyncio.sleep(10)
        finished.append(True)

    job = await long.enqueue()
    worker = app.worker(handle_signals=False)
    runner = asyncio.ensure_future(worker.run())
    try:
        await asyncio.wait_for(started.wait(), 5)
        assert await job.cancel() is True
        deadline = time.monotonic() + 5
        while worker.running_count and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert worker.running_count == 0
    finally:
        worker.request_stop()
        await runner
    assert finished == []
    assert (await job.info()).state == "cancelled"  # type: ignore[union-attr]


async def test_enqueue_sync_from_another_thread_while_a_worker_runs(app: fastjobs.App) -> None:
    done: list[int] = []

    @app.task()
    async def note(n: int) -> None:
        done.append(n)

    worker = app.worker(handle_signals=False)
    runner = asyncio.ensure_future(worker.run())
    await asyncio.sleep(0.05)
    thread = threading.Thread(target=lambda: [note.enqueue_sync(i) for i in range(100)])
    thread.start()
    deadline = time.monotonic() + 10
    while len(done) < 100 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    thread.join()
    worker.request_stop()
    await runner
    assert sorted(done) == list(range(100))


async def test_enqueue_many_and_options_variants(app: fastjobs.App) -> None:
    @app.task(queue="emails")
    async def send(to: str) -> str:
        return to

    handles = await app.enqueue_many([send.call("a"), send.options(queue="bulk").call("b"), send.options(job_id="my-id-1").call("c")])
    assert handles[2].id == "my-id-1"
    stats = await app.stats()
    assert stats["emails"]["queued"] == 2 and stats["bulk"]["queued"] == 1
    await run_burst(app, queues=["emails", "bulk"])
    assert [await h.result(timeout=5) for h in handles] == ["a", "b", "c"]


async def test_handlers_run_in_their_own_task_and_context(app: fastjobs.App) -> None:
    """asyncio.timeout / current_task inside a handler see the job's Task, never the worker's."""
    import contextvars

    var: contextvars.ContextVar[int | None] = contextvars.ContextVar("var", default=None)
    seen: list[int | None] = []
    tasks: set[asyncio.Task[Any] | None] = set()

    @app.task(max_attempts=1)
    async def times_itself_out() -> None:
        async with asyncio.timeout(0.05):  # type: ignore[attr-defined]
            await asyncio.sleep(5)

    @app.task()
    async def sets_var(i: int) -> None:
        seen.append(var.get())
        var.set(i)
        tasks.add(asyncio.current_task())

    if not hasattr(asyncio, "timeout"):  # Python 3.10
        pytest.skip("asyncio.timeout needs Python 3.11")
    bad = await times_itself_out.enqueue()
    await app.enqueue_many([sets_var.call(i) for i in range(5)])
    worker = await run_burst(app, concurrency=1)  # the worker must not be cancelled by the handler's timeout
    info = await app.get_job(bad.id)
    assert info is not None and info.state == "dead"
    assert "TimeoutError" in info.errors[-1].type
    assert seen == [None] * 5  # no job sees a variable another job set
    assert len(tasks) == 5 and None not in tasks
    assert worker.succeeded == 5


async def test_a_full_worker_does_not_spin_on_empty_claims(app: fastjobs.App) -> None:
    """With every slot busy and the queue empty, the worker waits instead of claiming in a loop."""
    @app.task()
    async def slow() -> None:
        await asyncio.sleep(1.0)

    await app.enqueue_many([slow.call(), slow.call()])
    backend = await app.backend()
    claims = 0
    real_claim = backend.claim

    async def counting_claim(*args: Any, **kwargs: Any) -> Any:
        nonlocal claims
        claims += 1
        return await real_claim(*args, **kwargs)

    backend.claim = counting_claim  # type: ignore[method-assign]  # counts calls; the real backend answers
    try:
        cpu = time.process_time()
        await run_burst(app, concurrency=2)
        cpu = time.process_time() - cpu
    finally:
        del backend.claim
    assert claims < 20, f"{claims} claims while two 1 s jobs ran"
    assert cpu < 0.5


async def test_sync_timeout_counts_from_when_a_thread_starts_the_job(app: fastjobs.App) -> None:
    ran: list[int] = []

    @app.task(timeout=0.5, max_attempts=1)
    def steady(i: int) -> None:
        time.sleep(0.2)
        ran.append(i)

    await app.enqueue_many([steady.call(i) for i in range(4)])
    worker = await run_burst(app, threads=1, concurrency=4)
    assert sorted(ran) == [0, 1, 2, 3]
    assert worker.succeeded == 4 and worker.failed == 0


async def test_burst_worker_stops_soon_after_its_last_job(app: fastjobs.App) -> None:
    @app.task()
    def quick() -> None:
        time.sleep(0.05)

    await quick.enqueue()
    started = time.monotonic()
    await run_burst(app, poll_interval=5.0)
    assert time.monotonic() - started < 2.0


async def test_leases_are_renewed_while_running_jobs_finish_after_a_stop(make_app: Any) -> None:
    """The shutdown grace may outlast the lease: jobs finishing in it keep their lease."""
    app = make_app(lease=1.0)
    started = asyncio.Event()

    @app.task()
    async def slow() -> str:
        started.set()
        await asyncio.sleep(2.5)
        return "done"

    job = await slow.enqueue()
    worker = app.worker(handle_signals=False, shutdown_grace=10.0)
    running = asyncio.ensure_future(worker.run())
    await asyncio.wait_for(started.wait(), 10)
    worker.request_stop()
    await asyncio.sleep(1.8)  # past the 1 s lease: only a renewal during the grace keeps it
    assert await (await app.backend()).recover() == 0
    await asyncio.wait_for(running, 15)
    info = await job.info()
    assert info is not None and (info.state, info.attempt, info.result, info.errors) == ("succeeded", 1, "done", [])


async def _record_claims(app: fastjobs.App) -> list[tuple[int, int]]:
    """Wrap the App's backend's claim: each call's (n asked, jobs returned)."""
    backend = await app.backend()
    claim = backend.claim
    calls: list[tuple[int, int]] = []

    async def recording(queues: Any, n: int, lease: float) -> Any:
        claims = await claim(queues, n, lease)
        calls.append((n, len(claims)))
        return claims

    backend.claim = recording  # type: ignore[method-assign]
    return calls


async def test_an_adaptive_prefetch_grows_claims_for_fast_jobs_up_to_twice_the_batch(app: fastjobs.App) -> None:
    @app.task()
    async def fast() -> None:
        return None

    await app.enqueue_many([fast.call() for _ in range(1500)])
    calls = await _record_claims(app)
    worker = await run_burst(app, concurrency=10, batch_size=50)
    assert worker.succeeded == 1500
    asked = [n for n, _ in calls]
    assert asked[0] == 20  # concurrency + prefetch (= concurrency) at first
    assert max(asked) == 50  # then full batches: the worker ran dry waiting for each claim
    assert len(calls) < 1500 / 20  # fewer round trips than at the starting size


async def test_a_fixed_prefetch_or_slow_jobs_keep_claims_small(app: fastjobs.App) -> None:
    running = 0
    most = 0

    @app.task()
    async def slow() -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.005)
        running -= 1

    await app.enqueue_many([slow.call() for _ in range(200)])
    calls = await _record_claims(app)
    worker = await run_burst(app, concurrency=10, batch_size=50, prefetch=5)
    assert worker.succeeded == 200 and most <= 10
    assert max(n for n, _ in calls) <= 15  # concurrency + the fixed prefetch, never more

    @app.task()
    async def slower() -> None:
        await asyncio.sleep(0.2)  # far longer than a claim's round trip: slots never run dry

    await app.enqueue_many([slower.call() for _ in range(40)])
    calls.clear()
    worker = await run_burst(app, concurrency=10, batch_size=50)  # adaptive
    assert worker.succeeded == 40
    assert max(n for n, _ in calls) <= 20
