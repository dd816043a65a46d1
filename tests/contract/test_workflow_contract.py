"""Chains, batches with callbacks, depends_on and limits, end to end with a real worker, on every backend."""

from __future__ import annotations

import asyncio
import time

import pytest

import fastjobs
from tests.contract.conftest import MakeApp


@pytest.fixture
def app(make_app: MakeApp) -> fastjobs.App:
    return make_app(lease=5.0)


async def drain(app: fastjobs.App, **options: object) -> fastjobs.Worker:
    worker = app.worker(handle_signals=False, burst=True, **options)
    await asyncio.wait_for(worker.run(), 30)
    return worker


async def test_a_chain_passes_each_result_to_the_next_step(app: fastjobs.App) -> None:
    @app.task()
    async def fetch(n: int) -> list[int]:
        return list(range(n))

    @app.task()
    def total(values: list[int], scale: int) -> int:
        return sum(values) * scale

    @app.task()
    async def describe(value: int) -> str:
        return f"total={value}"

    steps = await app.chain(fetch.call(4), total.call(scale=10), describe.call())
    assert len(steps) == 3
    info = await steps[2].info()
    assert info is not None and info.state == "waiting" and info.depends_on == (steps[1].id,)
    await drain(app)
    assert await steps[-1].result(timeout=5) == "total=60"


async def test_a_failing_step_stops_the_chain_with_a_clear_state(app: fastjobs.App) -> None:
    ran: list[str] = []

    @app.task()
    async def first() -> int:
        ran.append("first")
        return 1

    @app.task(max_attempts=1)
    async def second(value: int) -> int:
        ran.append("second")
        raise fastjobs.Fail("the upstream API said no")

    @app.task()
    async def third(value: int) -> None:
        ran.append("third")

    steps = await app.chain(first.call(), second.call(), third.call())
    await drain(app)
    assert ran == ["first", "second"]
    infos = [await s.info() for s in steps]
    assert [i.state for i in infos if i] == ["succeeded", "dead", "cancelled"]
    assert infos[2] is not None and infos[2].failed_parents == 1
    with pytest.raises(fastjobs.JobFailedError, match="cancelled"):
        await steps[2].result(timeout=1)


async def test_depends_on_waits_for_every_parent(app: fastjobs.App) -> None:
    order: list[str] = []
    gate = asyncio.Event()

    @app.task()
    async def export(name: str) -> None:
        if name == "slow":
            await gate.wait()
        order.append(name)

    @app.task()
    async def report() -> None:
        order.append("report")

    slow, fast = await export.enqueue("slow"), await export.enqueue("fast")
    rep = await report.options(depends_on=[slow, fast.id]).enqueue()
    worker = app.worker(handle_signals=False, poll_interval=0.05)
    runner = asyncio.ensure_future(worker.run())
    await fast.result(timeout=5)
    await asyncio.sleep(0.2)
    info = await rep.info()
    assert info is not None and (info.state, info.pending_parents) == ("waiting", 1)
    gate.set()
    await rep.result(timeout=5)
    worker.request_stop()
    await runner
    assert order == ["fast", "slow", "report"]


async def test_depends_on_is_checked_at_enqueue(app: fastjobs.App) -> None:
    @app.task()
    async def step() -> None: ...

    with pytest.raises(fastjobs.DependencyError, match="does not exist"):
        await step.options(depends_on=["no-such-job"]).enqueue()
    a = step.options(job_id="a", depends_on=["b"]).call()
    b = step.options(job_id="b", depends_on=["a"]).call()
    with pytest.raises(fastjobs.InvalidOptionError, match="cycle"):
        await app.enqueue_many([a, b])
    with pytest.raises(fastjobs.InvalidOptionError, match="depends on itself"):
        await step.options(job_id="me", depends_on=["me"]).enqueue()
    with pytest.raises(fastjobs.InvalidOptionError, match="depends_on takes job ids"):
        step.options(depends_on=[42])  # type: ignore[list-item]
    assert all(sum(counts.values()) == 0 for counts in (await app.stats()).values())  # nothing was stored


async def test_a_batch_runs_then_and_finally_once_and_reports_progress(app: fastjobs.App) -> None:
    calls: list[tuple[str, str | None]] = []
    gate = asyncio.Event()

    @app.task()
    async def resize(n: int) -> int:
        if n >= 3:
            await gate.wait()
        return n

    @app.task(context=True)
    async def notify(ctx: fastjobs.Context, what: str) -> None:
        calls.append((what, ctx.batch_id))

    batch = await app.batch(
        [resize.call(n) for n in range(5)],
        then=notify.call("then"), catch=notify.call("catch"), finally_=notify.call("finally"),
    )
    assert await batch.progress() == fastjobs.BatchProgress(5, 0, 0, 5, False)
    worker = app.worker(handle_signals=False, poll_interval=0.05)
    runner = asyncio.ensure_future(worker.run())
    deadline = time.monotonic() + 10
    while (await batch.progress()).succeeded < 3:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    assert await batch.progress() == fastjobs.BatchProgress(5, 3, 0, 2, False)
    assert calls == []
    gate.set()
    assert await batch.wait(timeout=10) == fastjobs.BatchProgress(5, 5, 0, 0, True)
    for job_id in batch.callback_ids:
        info = await app.get_job(job_id)
        assert info is not None
        if info.args == ("catch",):
            assert info.state == "cancelled"
        else:
            await fastjobs.JobHandle(app, job_id).result(timeout=10)
    worker.request_stop()
    await runner
    assert sorted(calls) == [("finally", batch.id), ("then", batch.id)]
    assert [j.id for j in batch.jobs] == batch.job_ids and len(batch.job_ids) == 5
    again = await app.get_batch(batch.id)
    assert again is not None and sorted(again.job_ids) == sorted(batch.job_ids)


async def test_a_batch_with_a_failure_runs_catch_and_finally(app: fastjobs.App) -> None:
    calls: list[str] = []

    @app.task(max_attempts=1)
    async def member(n: int) -> int:
        if n == 2:
            raise ValueError("bad input")
        return n

    @app.task()
    def callback(what: str) -> None:
        calls.append(what)

    batch = await app.batch([member.call(n) for n in range(4)], then=callback.call("then"),
                            catch=callback.call("catch"), finally_=callback.call("finally"))
    await drain(app)
    assert sorted(calls) == ["catch", "finally"]
    assert await batch.progress() == fastjobs.BatchProgress(4, 3, 1, 0, True)


async def test_a_concurrency_cap_holds_in_a_worker(app: fastjobs.App) -> None:
    running = peak = 0

    @app.task(limit=fastjobs.Limit(concurrency=2))
    async def crawl(n: int) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        running -= 1

    await app.enqueue_many([crawl.call(n) for n in range(10)])
    info = await (await app.enqueue_many([crawl.call(99)]))[0].info()
    assert info is not None and info.limit_key == crawl.name
    await drain(app, concurrency=20, poll_interval=0.05)
    assert peak == 2


async def test_limit_keys_partition_a_task(app: fastjobs.App) -> None:
    running: dict[str, int] = {}
    peaks: dict[str, int] = {}
    together = 0

    @app.task(limit=fastjobs.Limit(concurrency=1))
    async def sync_tenant(tenant: str) -> None:
        nonlocal together
        running[tenant] = running.get(tenant, 0) + 1
        peaks[tenant] = max(peaks.get(tenant, 0), running[tenant])
        together = max(together, sum(running.values()))
        await asyncio.sleep(0.05)
        running[tenant] -= 1

    await app.enqueue_many(
        [sync_tenant.options(limit_key=f"tenant:{t}").call(t) for t in ("a", "b") for _ in range(4)]
    )
    await drain(app, concurrency=20, poll_interval=0.05)
    assert peaks == {"a": 1, "b": 1}
    assert together == 2  # two tenants at once: one key does not hold up the other


async def test_a_rate_limit_spreads_starts_over_time(app: fastjobs.App) -> None:
    starts: list[float] = []

    @app.task(limit=fastjobs.Limit(rate=4, per=0.5))
    async def ping(n: int) -> None:
        starts.append(time.monotonic())

    await app.enqueue_many([ping.call(n) for n in range(10)])
    await drain(app, concurrency=20, poll_interval=0.05)
    assert len(starts) == 10
    starts.sort()
    # No 0.5 s window (less a little for scheduling jitter) holds more than 4 starts.
    for i in range(len(starts) - 4):
        assert starts[i + 4] - starts[i] >= 0.45, starts
    assert starts[-1] - starts[0] >= 0.9  # ten starts at four per half second take two windows at least


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"limit": fastjobs.Limit()}, "needs concurrency="),
        ({"limit": fastjobs.Limit(rate=5)}, "Limit.per must be more than 0"),
        ({"limit": fastjobs.Limit(concurrency=-1)}, "Limit.concurrency must be"),
        ({"limit": fastjobs.Limit(concurrency=1, per=5)}, "give rate= too"),
        ({"limit": "5/s"}, "limit must be a fastjobs.Limit"),
        ({"limit_key": "tenant:1"}, "limit_key needs a limit"),
        ({"limit": fastjobs.Limit(concurrency=1), "limit_key": ""}, "limit key must be"),
    ],
)
def test_bad_limits_are_refused(kwargs: dict[str, object], message: str) -> None:
    app = fastjobs.App()

    @app.task()
    async def plain() -> None: ...

    with pytest.raises(fastjobs.InvalidOptionError, match=message):
        plain.options(**kwargs)  # type: ignore[arg-type]


async def test_a_chain_step_whose_parent_result_is_gone_is_dead_lettered(app: fastjobs.App) -> None:
    @app.task()
    async def produce() -> int:
        return 7

    @app.task()
    async def consume(value: int) -> int:
        return value

    first, second = await app.chain(produce.call(), consume.call())
    backend = await app.backend()
    [claim] = await backend.claim(["default"], 1, 30.0)
    assert claim.id == first.id
    from fastjobs.backends import Ack, AckKind

    await backend.ack_many([Ack(claim.id, claim.token, AckKind.SUCCEED, b"\x07")])
    from fastjobs._core import SUCCEEDED

    assert await backend.purge(SUCCEEDED) == 1  # the result is gone before the next step runs
    await drain(app)
    info = await second.info()
    assert info is not None and info.state == "dead"
    assert info.error is not None and info.error.type == "DependencyError" and "result_ttl" in info.error.message


def test_a_chain_that_passes_results_needs_stored_results() -> None:
    app = fastjobs.App(result_ttl=0)

    @app.task()
    async def step() -> None: ...

    with pytest.raises(fastjobs.ConfigurationError, match="result_ttl=0"):
        app.run_sync(app.chain(step.call(), step.call()))
    handles = app.run_sync(app.chain(step.call(), step.call(), pass_results=False))
    assert len(handles) == 2


async def test_a_chain_step_after_a_step_that_returned_none_gets_none(app: fastjobs.App) -> None:
    got: list[object] = []

    @app.task()
    async def log_it() -> None:
        return None

    @app.task()
    async def after(value: object) -> str:
        got.append(value)
        return "ok"

    steps = await app.chain(log_it.call(), after.call())
    await drain(app)
    assert await steps[1].result(timeout=5) == "ok"
    assert got == [None]


async def test_a_chain_step_with_its_own_depends_on_gets_the_previous_steps_result(app: fastjobs.App) -> None:
    got: list[object] = []

    @app.task()
    async def produce(value: str) -> str:
        return value

    @app.task()
    async def consume(value: str) -> None:
        got.append(value)

    other = await produce.enqueue("from the unrelated parent")
    await drain(app)
    await app.chain(produce.call("from the previous step"), consume.options(depends_on=[other]).call())
    await drain(app)
    assert got == ["from the previous step"]


def test_a_batch_needs_stored_results_and_fastjobs_names_are_reserved() -> None:
    app = fastjobs.App(result_ttl=0)

    @app.task()
    async def member() -> None: ...

    with pytest.raises(fastjobs.ConfigurationError, match="result_ttl=0"):
        app.run_sync(app.batch([member.call()]))
    with pytest.raises(fastjobs.ConfigurationError, match="fastjobs' own"):
        app.task(name="fastjobs.batch")(member.fn)
