"""Hooks on every backend: worker lifecycle and state, before/after/on_dead around each job, enqueue hooks."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import fastjobs
from fastjobs.hooks import JobOutcome

TENANT: contextvars.ContextVar[str] = contextvars.ContextVar("tenant")


async def run_burst(app: fastjobs.App, **options: Any) -> fastjobs.Worker:
    options.setdefault("handle_signals", False)
    worker = app.worker(burst=True, **options)
    await asyncio.wait_for(worker.run(), 30)
    return worker


async def run_until(app: fastjobs.App, done: Any, **options: Any) -> fastjobs.Worker:
    """Run a worker until ``done()`` is true (retries are delayed: a burst would not wait for them)."""
    worker = app.worker(handle_signals=False, poll_interval=0.05, **options)
    running = asyncio.ensure_future(worker.run())
    deadline = time.monotonic() + 30
    while not done() and time.monotonic() < deadline and not running.done():
        await asyncio.sleep(0.02)
    worker.request_stop()
    await asyncio.wait_for(running, 30)
    return worker


async def test_lifecycle_hooks_and_state_reach_every_kind_of_handler(app: fastjobs.App) -> None:
    events: list[str] = []
    seen: list[tuple[str, Any]] = []

    @app.on_worker_start
    async def open_pool(state: fastjobs.WorkerState) -> None:
        await asyncio.sleep(0)
        state.pool = {"opened": True}
        events.append("start")

    @app.on_worker_start
    def second(state: fastjobs.WorkerState) -> None:
        events.append(f"start2 {state.pool['opened']}")

    @app.on_worker_stop
    async def close_pool(state: fastjobs.WorkerState) -> None:
        events.append(f"stop {state.pool['opened']}")

    @app.task(context=True)
    async def with_ctx(ctx: fastjobs.Context) -> str:
        seen.append(("ctx", ctx.state.pool))
        return ctx.worker_id

    @app.task()
    async def plain_async() -> None:
        seen.append(("async", fastjobs.worker_state().pool))

    @app.task()
    def plain_sync() -> None:
        seen.append(("sync", fastjobs.worker_state().pool))

    @app.task(context=True)
    def sync_ctx(ctx: fastjobs.Context) -> None:
        seen.append(("sync-ctx", ctx.state.pool))

    job = await with_ctx.enqueue()
    await plain_async.enqueue()
    await plain_sync.enqueue()
    await sync_ctx.enqueue()
    worker = await run_burst(app)
    assert events == ["start", "start2 True", "stop True"]
    assert sorted(seen, key=lambda s: s[0]) == [
        ("async", {"opened": True}), ("ctx", {"opened": True}), ("sync", {"opened": True}), ("sync-ctx", {"opened": True}),
    ]
    assert await job.result(timeout=5) == worker.id
    with pytest.raises(RuntimeError, match="only set while a worker runs a job"):
        fastjobs.worker_state()


async def test_a_failing_start_hook_stops_the_worker_before_it_claims(app: fastjobs.App) -> None:
    ran: list[int] = []

    @app.on_worker_start
    def broken(state: fastjobs.WorkerState) -> None:
        raise OSError("database unreachable")

    stopped: list[int] = []

    @app.on_worker_stop
    def stop(state: fastjobs.WorkerState) -> None:
        stopped.append(1)

    @app.task()
    async def work() -> None:
        ran.append(1)

    job = await work.enqueue()
    worker = app.worker(burst=True, handle_signals=False)
    with pytest.raises(fastjobs.HookError, match="on_worker_start hook .*broken raised OSError: database unreachable") as info:
        await asyncio.wait_for(worker.run(), 30)
    assert isinstance(info.value.__cause__, OSError)
    assert ran == [] and stopped == [1]
    assert (await job.info()).state == "queued"  # nothing was claimed, nothing lost


async def test_before_and_after_job_see_every_outcome_and_share_the_jobs_context(
    app: fastjobs.App, caplog: pytest.LogCaptureFixture
) -> None:
    outcomes: dict[str, list[tuple[str, bool, str]]] = {}
    dead: list[tuple[str, str]] = []
    task_dead: list[str] = []
    in_handler: list[tuple[str, str]] = []

    @app.before_job
    def bind(ctx: fastjobs.Context) -> None:
        TENANT.set(f"tenant-of-{ctx.job_id}")

    @app.after_job
    def record(ctx: fastjobs.Context, outcome: JobOutcome) -> None:
        # The context variable set before the job is still set after it: the job's own context.
        outcomes.setdefault(ctx.task.rsplit(".", 1)[-1], []).append(
            (outcome.status, outcome.will_retry, TENANT.get() == f"tenant-of-{ctx.job_id}" and "same" or "other")
        )

    @app.on_dead
    async def page(ctx: fastjobs.Context, outcome: JobOutcome) -> None:
        await asyncio.sleep(0)
        dead.append((ctx.task.rsplit(".", 1)[-1], type(outcome.error).__name__))

    def dead_letter_hook(ctx: fastjobs.Context, outcome: JobOutcome) -> None:
        task_dead.append(ctx.job_id)

    @app.task()
    async def ok() -> int:
        in_handler.append(("async", TENANT.get()))
        return 1

    @app.task()
    def ok_sync() -> int:
        in_handler.append(("sync", TENANT.get()))
        return 2

    @app.task(max_attempts=2, backoff=fastjobs.Fixed(0.01), on_dead=dead_letter_hook)
    async def boom() -> None:
        raise ValueError("boom")

    @app.task(max_attempts=2, backoff=fastjobs.Fixed(0.01), timeout=0.05)
    async def slow() -> None:
        await asyncio.sleep(5)

    @app.task(max_attempts=1, timeout=0.05)
    def slow_sync() -> None:
        time.sleep(0.3)

    @app.task()
    async def unstorable() -> object:
        return object()

    a = await ok.enqueue()
    s = await ok_sync.enqueue()
    b = await boom.enqueue()
    await slow.enqueue()
    await slow_sync.enqueue()
    await unstorable.enqueue()
    with caplog.at_level(logging.ERROR):
        await run_until(app, lambda: len(dead) == 4)
    assert sorted(in_handler) == [("async", f"tenant-of-{a.id}"), ("sync", f"tenant-of-{s.id}")]
    assert outcomes["ok"] == [("succeeded", False, "same")]
    assert outcomes["ok_sync"] == [("succeeded", False, "same")]
    assert outcomes["boom"] == [("failed", True, "same"), ("dead", False, "same")]
    assert outcomes["slow"] == [("timed_out", True, "same"), ("dead", False, "same")]
    assert outcomes["slow_sync"] == [("dead", False, "same")]
    assert outcomes["unstorable"] == [("dead", False, "same")]
    assert sorted(dead) == [("boom", "ValueError"), ("slow", "JobTimeoutError"), ("slow_sync", "JobTimeoutError"),
                            ("unstorable", "UnencodableError")]
    assert task_dead == [b.id]


async def test_hooks_that_raise_change_no_outcome_and_lose_no_job(app: fastjobs.App, caplog: pytest.LogCaptureFixture) -> None:
    @app.before_job
    def bad_before(ctx: fastjobs.Context) -> None:
        raise RuntimeError("before broke")

    @app.after_job
    async def bad_after(ctx: fastjobs.Context, outcome: JobOutcome) -> None:
        raise RuntimeError("after broke")

    @app.on_dead
    def bad_dead(ctx: fastjobs.Context, outcome: JobOutcome) -> None:
        raise RuntimeError("dead broke")

    @app.task()
    async def ok(i: int) -> int:
        return i

    @app.task()
    def ok_sync(i: int) -> int:
        return -i

    @app.task(max_attempts=1)
    async def fails() -> None:
        raise ValueError("x")

    handles = await app.enqueue_many([ok.call(i) for i in range(20)] + [ok_sync.call(i) for i in range(20)])
    failing = await fails.enqueue()
    with caplog.at_level(logging.ERROR, logger="fastjobs.hooks"):
        worker = await run_burst(app)
        await asyncio.sleep(0.1)
    assert worker.succeeded == 40 and worker.failed == 1
    assert [await h.result(timeout=5) for h in handles] == list(range(20)) + [-i for i in range(20)]
    assert (await failing.info()).state == "dead"
    messages = [r.getMessage() for r in caplog.records if r.name == "fastjobs.hooks"]
    assert sum("before_job hook" in m and "bad_before raised" in m for m in messages) == 41
    assert sum("after_job hook" in m for m in messages) == 41
    assert sum("on_dead hook" in m for m in messages) == 1
    assert all("for job " in m for m in messages)


async def test_async_before_job_hooks_run_before_async_and_sync_handlers(app: fastjobs.App) -> None:
    order: list[str] = []

    @app.before_job
    async def fetch_tenant(ctx: fastjobs.Context) -> None:
        await asyncio.sleep(0.001)
        TENANT.set(ctx.meta.get("tenant", "none"))
        order.append(f"before {ctx.args[0]}")

    @app.task()
    async def a(name: str) -> str:
        order.append(f"run {name}")
        return TENANT.get()

    @app.task()
    def s(name: str) -> str:
        order.append(f"run {name}")
        return TENANT.get()

    ha = await a.options(meta={"tenant": "acme"}).enqueue("a")
    hs = await s.options(meta={"tenant": "globex"}).enqueue("s")
    await run_burst(app)
    assert await ha.result(timeout=5) == "acme" and await hs.result(timeout=5) == "globex"
    assert order.index("before a") < order.index("run a") and order.index("before s") < order.index("run s")


async def test_a_cancelled_running_job_gets_a_cancelled_outcome(app: fastjobs.App) -> None:
    outcomes: list[tuple[str, str]] = []
    started = asyncio.Event()

    @app.after_job
    def record(ctx: fastjobs.Context, outcome: JobOutcome) -> None:
        outcomes.append((outcome.status, type(outcome.error).__name__))

    @app.task()
    async def long() -> None:
        started.set()
        await asyncio.sleep(30)

    job = await long.enqueue()
    worker = app.worker(handle_signals=False)
    running = asyncio.ensure_future(worker.run())
    await asyncio.wait_for(started.wait(), 10)
    await job.cancel()
    for _ in range(200):  # seen at the next renewal (lease/3 = 1.7 s)
        if outcomes:
            break
        await asyncio.sleep(0.05)
    worker.request_stop()
    await asyncio.wait_for(running, 30)
    assert outcomes == [("cancelled", "LeaseExpiredError")]


async def test_shutdown_gives_back_running_jobs_with_a_cancelled_outcome(app: fastjobs.App) -> None:
    outcomes: list[str] = []
    started = asyncio.Event()

    @app.after_job
    def record(ctx: fastjobs.Context, outcome: JobOutcome) -> None:
        outcomes.append(f"{outcome.status} {type(outcome.error).__name__}")

    @app.task()
    async def long() -> None:
        started.set()
        await asyncio.sleep(30)

    job = await long.enqueue()
    worker = app.worker(handle_signals=False, shutdown_grace=0.1)
    running = asyncio.ensure_future(worker.run())
    await asyncio.wait_for(started.wait(), 10)
    worker.request_stop()
    await asyncio.wait_for(running, 30)
    assert outcomes == ["cancelled WorkerShutdown"]
    assert (await job.info()).state == "queued"  # given back, its attempt unused


async def test_before_enqueue_adds_meta_on_every_enqueue_path(app: fastjobs.App) -> None:
    seen_by_hook: list[tuple[str, str, tuple[Any, ...]]] = []

    @app.before_enqueue
    def tenant(job: fastjobs.Enqueuing) -> None:
        seen_by_hook.append((job.job_id, job.queue, job.args))
        job.meta["tenant"] = TENANT.get("none")

    @app.task(queue="q1")
    async def echo(x: int) -> int:
        return x

    TENANT.set("acme")
    one = await echo.enqueue(1)
    many = await app.enqueue_many([echo.call(2), echo.options(meta={"source": "api"}).call(3)])
    steps = await app.chain(echo.call(4), echo.call())
    batch = await app.batch([echo.call(5)], then=echo.call(6))
    got = {}
    for handle in [one, *many, *steps]:
        info = await handle.info()
        got[info.id] = {k: v for k, v in info.meta.items()}
    assert all(m["tenant"] == "acme" for m in got.values())
    assert got[many[1].id]["source"] == "api"
    assert [h.id for h in (one, *many, *steps)] == [s[0] for s in seen_by_hook[:5]]
    assert seen_by_hook[0][1:] == ("q1", (1,))
    member = await app.get_job(batch.job_ids[0])
    assert member is not None and member.meta["tenant"] == "acme"
    await run_burst(app)
    assert await steps[-1].result(timeout=5) == 4  # the chain still passes results: its own meta kept

    def sync_enqueue() -> dict[str, Any]:
        TENANT.set("from-thread")
        handle = echo.enqueue_sync(7)
        return app.run_sync(handle.info()).meta  # type: ignore[union-attr]

    if app._backend_cls.loop_bound:
        meta = await asyncio.to_thread(sync_enqueue)
        assert meta["tenant"] == "from-thread"  # run in the caller's thread, not the bridge's


async def test_a_raising_enqueue_hook_stores_nothing(app: fastjobs.App) -> None:
    @app.before_enqueue
    def refuse(job: fastjobs.Enqueuing) -> None:
        if job.args == (13,):
            raise PermissionError("no tenant")

    @app.task()
    async def echo(x: int) -> int:
        return x

    with pytest.raises(PermissionError):
        await app.enqueue_many([echo.call(1), echo.call(13)])
    assert sum(q.get("queued", 0) for q in (await app.stats()).values()) == 0


def test_hooks_with_the_wrong_signature_are_refused_at_registration() -> None:
    app = fastjobs.App("memory://")
    with pytest.raises(fastjobs.ConfigurationError, match=r"called with 2 arguments \(ctx, outcome\), but .*takes 1"):
        @app.after_job
        def after(ctx: fastjobs.Context) -> None: ...
    with pytest.raises(fastjobs.ConfigurationError, match=r"def before_job\(ctx: fastjobs.Context\)"):
        app.before_job(lambda: None)
    with pytest.raises(fastjobs.ConfigurationError, match="cannot be async"):
        @app.before_enqueue
        async def enq(job: fastjobs.Enqueuing) -> None: ...
    with pytest.raises(fastjobs.ConfigurationError, match=r"on_dead hook is called with 2"):
        @app.task(on_dead=lambda ctx: None)
        async def t() -> None: ...
    with pytest.raises(fastjobs.ConfigurationError, match="must be a function"):
        app.on_worker_start(42)  # type: ignore[arg-type]
    with pytest.raises(fastjobs.InvalidOptionError, match="reserved|fastjobs' own"):
        @app.before_enqueue
        def reserved(job: fastjobs.Enqueuing) -> None:
            job.meta["fastjobs.x"] = 1

        @app.task()
        async def u() -> None: ...
        u.enqueue_sync()
    # Defaults and *args are fine.
    app.after_job(lambda ctx, outcome, extra=None: None)
    app.on_worker_stop(lambda *args: None)
    assert threading.current_thread() is threading.main_thread()


async def test_on_dead_hears_of_jobs_that_could_not_start(make_app: Any) -> None:
    app = make_app(lease=5.0)
    other = make_app(lease=5.0)
    dead: list[tuple[str, str, str]] = []

    @app.on_dead
    def page(ctx: fastjobs.Context, outcome: JobOutcome) -> None:
        dead.append((ctx.task, outcome.status, type(outcome.error).__name__))

    @app.task(name="known")
    async def known() -> int:
        return 1

    @other.task(name="elsewhere")
    async def elsewhere() -> None: ...

    await app.enqueue_many([elsewhere.call()])  # stored in app's backend; no worker of app knows the task
    await run_burst(app)
    assert dead == [("elsewhere", "dead", "UnknownTaskError")]


async def test_around_enqueue_wraps_each_call_and_sees_its_error(app: fastjobs.App) -> None:
    seen: list[tuple[int, str | None]] = []

    @app.around_enqueue
    @contextlib.contextmanager
    def audit(jobs: list[fastjobs.Enqueuing]) -> Iterator[None]:
        for job in jobs:
            job.meta["call_size"] = len(jobs)
        try:
            yield
        except Exception as exc:
            seen.append((len(jobs), type(exc).__name__))
            raise
        seen.append((len(jobs), None))

    @app.task()
    async def echo(x: int) -> int:
        return x

    handles = await app.enqueue_many([echo.call(1), echo.call(2), echo.call(3)])
    one = await echo.options(job_id="fixed-id").enqueue(4)
    with pytest.raises(fastjobs.DuplicateJobError):
        await echo.options(job_id="fixed-id").enqueue(5)
    assert seen == [(3, None), (1, None), (1, "DuplicateJobError")]
    assert [(await h.info()).meta["call_size"] for h in (*handles, one)] == [3, 3, 3, 1]  # type: ignore[union-attr]

    @app.around_enqueue
    def not_a_manager(jobs: list[fastjobs.Enqueuing]) -> None:
        return None

    with pytest.raises(fastjobs.ConfigurationError, match="not a context manager"):
        await echo.enqueue(6)
    assert await app.get_job("fixed-id") is not None and sum(
        q.get("queued", 0) for q in (await app.stats()).values()) == 4  # nothing of the refused calls stored


async def test_a_failing_stop_hook_is_logged_and_the_worker_stops_cleanly(
    app: fastjobs.App, caplog: pytest.LogCaptureFixture
) -> None:
    @app.on_worker_stop
    async def broken(state: fastjobs.WorkerState) -> None:
        raise RuntimeError("close failed")

    @app.task()
    async def work() -> int:
        return 7

    job = await work.enqueue()
    with caplog.at_level(logging.ERROR, logger="fastjobs.worker"):
        worker = await run_burst(app)
    assert worker.succeeded == 1 and await job.result(timeout=5) == 7
    assert any("on_worker_stop hook" in r.getMessage() and "broken raised" in r.getMessage() and r.exc_info
               for r in caplog.records)


async def test_after_job_of_a_lost_async_job_runs_once_its_handler_unwound(app: fastjobs.App) -> None:
    events: list[str] = []

    @app.before_job
    def open_session(ctx: fastjobs.Context) -> None:
        events.append("open")

    @app.after_job
    def close_session(ctx: fastjobs.Context, outcome: JobOutcome) -> None:
        events.append(f"close {outcome.status}")

    @app.task()
    async def long() -> None:
        try:
            await asyncio.sleep(30)
        finally:
            events.append("handler finally")

    job = await long.enqueue()
    worker = app.worker(handle_signals=False, poll_interval=0.05)
    running = asyncio.ensure_future(worker.run())
    for _ in range(500):
        if events:
            break
        await asyncio.sleep(0.01)
    await job.cancel()
    for _ in range(500):  # seen at the next renewal (lease/3)
        if len(events) == 3:
            break
        await asyncio.sleep(0.01)
    worker.request_stop()
    await asyncio.wait_for(running, 30)
    assert events == ["open", "handler finally", "close cancelled"]


async def test_a_def_job_still_on_its_thread_at_the_end_of_the_grace_gets_its_after_job_before_stop(
    app: fastjobs.App,
) -> None:
    events: list[str] = []
    started = threading.Event()

    @app.after_job
    def after(ctx: fastjobs.Context, outcome: JobOutcome) -> None:
        events.append(f"after {outcome.status} {type(outcome.error).__name__}")

    @app.on_worker_stop
    def stop(state: fastjobs.WorkerState) -> None:
        events.append("stop")

    @app.task()
    def slow() -> None:
        started.set()
        time.sleep(0.5)

    await slow.enqueue()
    worker = app.worker(handle_signals=False, poll_interval=0.05, shutdown_grace=0.05)
    running = asyncio.ensure_future(worker.run())
    await asyncio.to_thread(started.wait, 10)
    worker.request_stop()
    await asyncio.wait_for(running, 30)
    assert events == ["after cancelled WorkerShutdown", "stop"]
    await asyncio.sleep(0.7)  # the thread's late outcome is discarded: no second after_job
    assert events == ["after cancelled WorkerShutdown", "stop"]


async def test_slow_async_hooks_are_cancelled_at_shutdown_before_the_stop_hooks(app: fastjobs.App) -> None:
    events: list[str] = []

    @app.after_job
    async def slow_report(ctx: fastjobs.Context, outcome: JobOutcome) -> None:
        try:
            await asyncio.sleep(30)
        finally:
            events.append("report cancelled")

    @app.on_worker_stop
    def stop(state: fastjobs.WorkerState) -> None:
        events.append("stop")

    @app.task()
    async def quick() -> None: ...

    await quick.enqueue()
    await asyncio.wait_for(run_burst(app, shutdown_grace=0.1), 30)
    assert events == ["report cancelled", "stop"]


async def test_async_before_job_hooks_and_def_handlers_share_the_jobs_context_without_a_race(app: fastjobs.App) -> None:
    import sys

    seen: list[str] = []

    @app.before_job
    async def bind(ctx: fastjobs.Context) -> None:
        TENANT.set(ctx.job_id)

    @app.task()
    def handler() -> None:
        seen.append("same" if TENANT.get(None) is not None else "missing")

    await app.enqueue_many([handler.call() for _ in range(300)])
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch as often as they can: a race would show
    try:
        worker = await run_burst(app, threads=4)
    finally:
        sys.setswitchinterval(interval)
    assert worker.succeeded == 300 and worker.failed == 0  # none failed with "cannot enter context"
    assert seen == ["same"] * 300


async def test_an_around_enqueue_hook_cannot_swallow_a_failed_enqueue(app: fastjobs.App) -> None:
    seen: list[str] = []

    @app.around_enqueue
    @contextlib.contextmanager
    def swallowing(jobs: list[fastjobs.Enqueuing]) -> Iterator[None]:
        try:
            yield
        except Exception as exc:  # logs and (by mistake) swallows
            seen.append(type(exc).__name__)

    @app.task()
    async def echo(x: object) -> None: ...

    with pytest.raises(fastjobs.UnencodableError):
        await echo.enqueue(object())
    assert seen == ["UnencodableError"]


async def test_one_hook_of_a_kind_gets_the_jobs_fields_and_may_raise(app: fastjobs.App,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    """One before_job and one plain def after_job (called without run_hooks): the Context a worker
    makes reads the job's fields from its claim and record; a raising after_job is logged."""
    seen: list[tuple[Any, ...]] = []

    @app.on_worker_start
    def start(state: fastjobs.WorkerState) -> None:
        state.pool = "pool"

    @app.before_job
    def before(ctx: fastjobs.Context) -> None:
        ctx.meta["seen"] = True
        seen.append((ctx.job_id, ctx.task, ctx.queue, ctx.attempt, ctx.max_attempts, ctx.args, ctx.kwargs,
                     ctx.batch_id, ctx.state.pool, ctx.worker_id, ctx.cancelled, ctx.lease_until > time.time()))

    @app.after_job
    def after(ctx: fastjobs.Context, outcome: JobOutcome) -> None:
        seen.append((ctx.meta.get("seen"), outcome.status, outcome.result))
        raise RuntimeError("after broke")

    @app.task(queue="q1", max_attempts=4)
    async def add(a: int, b: int = 0) -> int:
        return a + b

    handle = await add.enqueue(1, b=2)
    with caplog.at_level(logging.ERROR, logger="fastjobs.hooks"):
        worker = await run_burst(app, queues=["q1"])
    assert await handle.result(timeout=5) == 3 and worker.succeeded == 1
    assert seen == [(handle.id, add.name, "q1", 1, 4, (1,), {"b": 2}, None, "pool", worker.id, False, True),
                    (True, "succeeded", 3)]
    [record] = [r for r in caplog.records if r.name == "fastjobs.hooks"]
    assert "after_job hook" in record.getMessage() and f"for job {handle.id}" in record.getMessage() and record.exc_info
