"""Developer experience on every backend: arguments checked at enqueue, enqueue by name,
custom backoff functions, the testing helpers."""

from __future__ import annotations

import asyncio
import unittest
from typing import Any

import pytest

import fastjobs
from fastjobs.signatures import Arity
from tests.contract.test_worker_contract import run_burst


async def stored_jobs(app: fastjobs.App) -> int:
    return sum(int(counts.get("queued", 0)) + int(counts.get("scheduled", 0)) + int(counts.get("waiting", 0))
               for counts in (await app.stats()).values())


# -- 1. arguments checked at enqueue ----------------------------------------------


async def test_arguments_that_cannot_bind_are_refused_at_enqueue(app: fastjobs.App) -> None:
    @app.task(name="billing.charge")
    async def charge(account: int, cents: int, *, currency: str = "EUR") -> str:
        return f"{account}:{cents}:{currency}"

    bad: list[Any] = [
        lambda: charge.enqueue(1),
        lambda: charge.enqueue(1, 2, 3),
        lambda: charge.enqueue(1, 2, curency="USD"),
        lambda: charge.enqueue(1, account=1, cents=2),
        lambda: charge.options(priority=3).enqueue(1),
        lambda: app.enqueue_many([charge.call(1, 2), charge.call()]),
        # With meta (a trace context, a tenant) the same checks hold.
        lambda: charge.options(meta={"tenant": "t1"}).enqueue(1),
        lambda: charge.options(meta={"tenant": "t1"}).enqueue(1, 2, 3),
    ]
    for make in bad:
        with pytest.raises(fastjobs.TaskArgumentsError) as caught:
            await make()
        text = str(caught.value)
        assert "'billing.charge'" in text and "(account: int, cents: int, *, currency: str = 'EUR')" in text
        assert isinstance(caught.value, fastjobs.InvalidOptionError) and isinstance(caught.value, TypeError)
    with pytest.raises(fastjobs.TaskArgumentsError, match="missing a required argument: 'cents'"):
        charge.enqueue_sync(1)
    with pytest.raises(fastjobs.TaskArgumentsError, match="unexpected keyword argument 'curency'"):
        await charge.enqueue(1, 2, curency="USD")
    assert await stored_jobs(app) == 0  # the good call of the refused enqueue_many was not stored either

    handles = [await charge.enqueue(1, 2), await charge.enqueue(1, cents=2, currency="USD"),
               await charge.options(priority=1).enqueue(account=3, cents=4),
               await charge.options(meta={"tenant": "t1"}).enqueue(5, 6)]
    await run_burst(app)
    assert [await h.result(timeout=10) for h in handles] == ["1:2:EUR", "1:2:USD", "3:4:EUR", "5:6:EUR"]


async def test_context_handlers_are_checked_without_their_context(app: fastjobs.App) -> None:
    @app.task(context=True)
    def resize(ctx: fastjobs.Context, path: str, /, width: int = 100) -> str:
        return f"{path}@{width}"

    with pytest.raises(fastjobs.TaskArgumentsError, match=r"takes \(path: str, /, width: int = 100\) after its Context"):
        await resize.enqueue()
    with pytest.raises(fastjobs.TaskArgumentsError, match="'path' is positional-only"):
        await resize.enqueue(path="x.png")
    job = await resize.enqueue("x.png", width=5)
    await run_burst(app)
    assert await job.result(timeout=10) == "x.png@5"


async def test_chain_steps_count_the_previous_result_and_varargs_take_anything(app: fastjobs.App) -> None:
    @app.task()
    async def fetch(url: str) -> str:
        return url.upper()

    @app.task()
    async def store(page: str, table: str) -> str:
        return f"{table}:{page}"

    @app.task()
    async def anything(*args: Any, **kwargs: Any) -> int:
        return len(args) + len(kwargs)

    with pytest.raises(fastjobs.TaskArgumentsError, match="at most 2 positional"):
        await app.chain(fetch.call("a"), store.call("x", "pages"))
    steps = await app.chain(fetch.call("a"), store.call(table="pages"))
    many = await anything.enqueue(1, 2, 3, k=4)
    await run_burst(app)
    assert await steps[-1].result(timeout=10) == "pages:A"
    assert await many.result(timeout=10) == 4


def test_arity_of_what_cannot_be_introspected_accepts_anything() -> None:
    arity = Arity.of(max, context=False)  # a builtin without a signature
    assert not arity.known and arity.problem(99, {"x": 1}) is None
    app = fastjobs.App("memory://")
    task = app.task(name="builtin.max")(max)
    task.call().to_new_job(1 << 20, "j1", 0.0)
    task.call(1, 2, key=abs).to_new_job  # keyword arguments pass too (nothing to check them against)
    assert task.arity.problem(0, {"key": 1}) is None


# -- 2. enqueue by name ------------------------------------------------------------


async def test_a_producer_enqueues_by_name_and_a_worker_that_registers_the_handler_runs_it(
        make_app: Any, backend_kind: str) -> None:
    producer = make_app(lease=5.0)
    first = await producer.enqueue_by_name("billing.charge", args=[42], kwargs={"cents": 500}, queue="billing",
                                           priority=5, tags=["tenant:1"], meta={"source": "api"})
    second = await asyncio.to_thread(producer.enqueue_by_name_sync, "billing.charge", (7,), {"cents": 1}, queue="billing")
    # memory:// keeps one store per App: there the producer registers the handler after enqueuing.
    consumer = producer if backend_kind == "memory" else make_app(lease=5.0)

    @consumer.task(name="billing.charge", queue="billing")
    def charge(account: int, *, cents: int) -> str:
        return f"{account}:{cents}"

    await run_burst(consumer, queues=["billing"])
    assert await first.result(timeout=10) == "42:500" and await second.result(timeout=10) == "7:1"
    info = await producer.get_job(first.id)
    assert info is not None and (info.task, info.queue, info.priority, info.tags, info.meta) == (
        "billing.charge", "billing", 5, ("tenant:1",), {"source": "api"})


async def test_by_name_stores_exactly_what_the_task_would(make_app: Any) -> None:
    from fastjobs.task import configure_by_name

    producer = make_app()
    consumer = make_app()

    @consumer.task(name="reports.build")
    async def build(table: str, rows: int = 10) -> None: ...

    options = {"priority": 3, "delay": 0, "unique_key": "r:1", "tags": ["a"], "meta": {"m": 1}, "max_attempts": 4}
    expected = build.options(**options).call("orders", rows=5).to_new_job(1 << 20, "job-1", 100.0)
    for app in (producer, consumer):  # a stand-in with the default options, and the registered task
        configured, args, kwargs = configure_by_name(app, "reports.build", ["orders"], {"rows": 5}, options)
        assert configured.call(*args, **kwargs).to_new_job(1 << 20, "job-1", 100.0) == expected


async def test_by_name_checks_like_options(make_app: Any) -> None:
    producer = make_app()
    consumer = make_app()

    @consumer.task(name="billing.charge")
    def charge(account: int, cents: int) -> None: ...

    with pytest.raises(fastjobs.TaskArgumentsError, match=r"task 'billing.charge' takes \(account: int, cents: int\)"):
        await consumer.enqueue_by_name("billing.charge", args=[1])
    await producer.enqueue_by_name("billing.charge", args=[1])  # not registered here: nothing to check against
    for name, args, kwargs, options, match in [
        ("has space", (), None, {}, "task name"),
        ("", (), None, {}, "task name"),
        ("x", "abc", None, {}, "args takes a list"),
        ("x", (), [("a", 1)], {}, "kwargs takes a dict"),
        ("x", (), {1: 2}, {}, "kwargs takes a dict"),
        ("x", (), None, {"queue": "no spaces"}, "invalid queue name"),
        ("x", (), None, {"priority": "high"}, "priority must be"),
        ("x", (), None, {"delay": -1}, "delay must be"),
        ("fastjobs.batch", (), None, {}, "fastjobs' own task"),
        ("x", (), None, {"prio": 1}, r"unknown option 'prio': it takes args=, kwargs= and the options of task.options\(\): "
                                     "backoff, connection, delay, depends_on, eta,"),
    ]:
        with pytest.raises(fastjobs.InvalidOptionError, match=match):
            await producer.enqueue_by_name(name, args, kwargs, **options)
    with pytest.raises(fastjobs.UnencodableError):
        await producer.enqueue_by_name("x", args=[{1, 2}])
    with pytest.raises(fastjobs.ConfigurationError, match="connection"):
        producer.enqueue_by_name_sync("x", connection=object())
    queued = await producer.enqueue_by_name("other.task")
    info = await producer.get_job(queued.id)
    assert info is not None and (info.queue, info.max_attempts) == ("default", 3)


# -- 3. backoff functions -------------------------------------------------------------


def record_for(app: fastjobs.App, task: fastjobs.Task[..., Any], max_attempts: int = 5) -> Any:
    from fastjobs._core import decode_job

    new_job = task.options(max_attempts=max_attempts).call().to_new_job(1 << 20, "job-1", 0.0)
    return decode_job(new_job.body)


def test_the_policy_asks_the_function_while_attempts_remain(caplog: pytest.LogCaptureFixture) -> None:
    from fastjobs.retries import RetryPolicy

    app = fastjobs.App("memory://")
    asked: list[tuple[int, str]] = []
    answers: list[Any] = [2.5, None, ValueError("bug"), -1, float("nan"), True, "5", 10**9]

    def backoff(attempt: int, error: BaseException) -> float | None:
        asked.append((attempt, type(error).__name__))
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[no-any-return]

    @app.task(name="t.custom", backoff=backoff)
    def custom() -> None: ...

    @app.task(name="t.plain", backoff=fastjobs.Fixed(7))
    def plain() -> None: ...

    policy = RetryPolicy()
    fn = custom.backoff_fn
    assert fn is backoff
    record = record_for(app, custom, max_attempts=10)
    assert record.backoff == fastjobs.Backoff().to_spec()  # what a job of a backoff function carries
    assert policy.decide("job-1", record, 1, KeyError(), fn) == (True, 2.5)
    assert policy.decide("job-1", record, 2, KeyError(), fn) == (False, 0.0)
    for attempt in range(3, 9):  # raises, then bad values: the job's own backoff (exponential) decides
        retry, delay = policy.decide("job-1", record, attempt, KeyError(), fn)
        assert retry and 0 <= delay <= 2 ** attempt
    assert "raised on job job-1 attempt 3" in caplog.text and "returned -1" in caplog.text
    for shown in ("nan", "True", "'5'", "1000000000"):
        assert f"returned {shown} " in caplog.text
    assert asked[0] == (1, "KeyError") and len(asked) == 8
    asked.clear()
    assert policy.decide("job-1", record, 10, KeyError(), fn) == (False, 0.0)  # the last attempt: not asked
    assert policy.decide("job-1", record, 1, fastjobs.Fail("no"), fn) == (False, 0.0)
    assert policy.decide("job-1", record, 1, fastjobs.Retry(delay=3), fn) == (True, 3)
    assert asked == []
    assert policy.decide("job-1", record_for(app, plain), 1, KeyError(), plain.backoff_fn) == (True, 7.0)
    assert policy.decide("job-1", record, 1, KeyError())[0]  # without the function: the body's backoff


def test_backoff_functions_are_checked_at_registration() -> None:
    app = fastjobs.App("memory://")

    async def later(attempt: int, error: BaseException) -> float:
        return 1.0

    with pytest.raises(fastjobs.InvalidOptionError, match="plain def"):
        app.task(name="a", backoff=later)(print)
    with pytest.raises(fastjobs.InvalidOptionError, match="a function"):
        app.task(name="b", backoff=5)(print)  # type: ignore[call-overload]
    task = app.task(name="c", backoff=lambda attempt, error: 1.0)(print)
    with pytest.raises(fastjobs.InvalidOptionError, match=r"@app.task\(backoff=fn\)"):
        task.options(backoff=lambda attempt, error: 1.0)  # type: ignore[arg-type]


async def run_until_finished(app: fastjobs.App, job: fastjobs.JobHandle[Any], **options: Any) -> Any:
    """Burst workers one after another until ``job`` ended (a burst leaves retries that are not due yet)."""
    for _ in range(100):
        await run_burst(app, **options)
        info = await app.get_job(job.id)
        assert info is not None
        if info.state in ("succeeded", "dead"):
            return info
        await asyncio.sleep(0.05)
    raise AssertionError(f"job still {info.state}")


@pytest.mark.parametrize("executor", ["async", "thread", "process"])
async def test_the_worker_asks_the_backoff_function_of_the_jobs_task(app: fastjobs.App, executor: str) -> None:
    from tests.process import pool_app

    asked: list[int] = []

    def backoff(attempt: int, error: BaseException) -> float | None:
        asked.append(attempt)
        return 0.0 if attempt < 2 else None  # then dead-letter, though attempts remain

    options: dict[str, Any] = {}
    if executor == "async":
        @app.task(name="pool.boom", backoff=backoff, max_attempts=5)
        async def boom(text: str) -> None:
            raise ValueError(text)
    elif executor == "thread":
        app.task(name="pool.boom", backoff=backoff, max_attempts=5)(pool_app.boom)
    else:
        app.task(name="pool.boom", backoff=backoff, max_attempts=5, executor="process")(pool_app.boom)
        options = {"process_app": pool_app.REF, "process_pool": 1, "poll_interval": 0.05}
    job = await app.enqueue_by_name("pool.boom", args=["no"])
    info = await run_until_finished(app, job, **options)
    assert (info.state, info.attempt, asked) == ("dead", 2, [1, 2])


async def test_a_failing_backoff_function_falls_back_to_the_default_backoff(
        app: fastjobs.App, caplog: pytest.LogCaptureFixture) -> None:
    def backoff(attempt: int, error: BaseException) -> float | None:
        raise RuntimeError("bug in backoff")

    @app.task(backoff=backoff, max_attempts=2)
    async def flaky() -> None:
        raise ValueError("down")

    job = await flaky.enqueue()
    info = await run_until_finished(app, job)
    assert (info.state, info.attempt) == ("dead", 2)  # retried after the default backoff, then out of attempts
    assert "backoff function of task" in caplog.text and "bug in backoff" in caplog.text


# -- 4. testing helpers ----------------------------------------------------------------


async def test_capture_enqueues_records_every_path_and_stores_without_running(app: fastjobs.App) -> None:
    from fastjobs.testing import capture_enqueues

    @app.task(name="emails.send")
    async def send(to: str, subject: str = "hi") -> str:
        return to

    with capture_enqueues(app) as enqueued:
        first = await send.enqueue("a@b.c")
        await send.options(priority=5, queue="bulk", delay=60, tags=["t"]).enqueue("b@b.c", subject="yo")
        await app.enqueue_many([send.call("c@b.c")])
        await app.enqueue_by_name("other.task", args=[1], queue="elsewhere")
        await app.chain(send.call("d@b.c"), send.call(), pass_results=True)
        await app.batch([send.call("e@b.c")], then=send.call("done@b.c"))
        await asyncio.to_thread(send.enqueue_sync, "f@b.c")
    assert "_enqueue" not in vars(app)  # the App is as before
    await send.enqueue("not@recorded")
    assert [(job.task, job.args) for job in enqueued] == [
        ("emails.send", ("a@b.c",)), ("emails.send", ("b@b.c",)), ("emails.send", ("c@b.c",)),
        ("other.task", (1,)), ("emails.send", ("d@b.c",)), ("emails.send", ()), ("emails.send", ("e@b.c",)),
        ("emails.send", ("done@b.c",)), ("emails.send", ("f@b.c",)),
    ]
    second = enqueued[1]
    assert (second.kwargs, second.queue, second.priority, second.delay, second.tags) == (
        {"subject": "yo"}, "bulk", 5, 60.0, ("t",))
    assert enqueued[5].depends_on == (enqueued[4].id,)
    assert [job.args for job in enqueued.named("other.task")] == [(1,)]
    assert enqueued[0].id == first.id
    info = await app.get_job(first.id)
    assert info is not None and info.state == "queued"  # stored, not run


async def test_run_jobs_runs_what_the_block_enqueued_and_what_those_enqueue(app: fastjobs.App) -> None:
    from fastjobs.testing import run_jobs

    @app.task(name="emails.send")
    async def send(to: str) -> str:
        return to.upper()

    @app.task(name="users.signup")
    async def signup(to: str) -> None:
        await send.enqueue(to)  # a queue the worker serves (it serves its tasks' queues and the block's)

    async with run_jobs(app) as enqueued:
        job = await signup.enqueue("a@b.c")
        later = await send.options(delay=3600).enqueue("later@b.c")
    info = await app.get_job(job.id)
    assert info is not None and info.state == "succeeded"
    assert [job.task for job in enqueued] == ["users.signup", "emails.send"]  # the block's own enqueues
    later_info = await app.get_job(later.id)
    assert later_info is not None and later_info.state == "scheduled"
    assert [j.result for j in await app.jobs(task="emails.send", state="succeeded")] == ["A@B.C"]

    async with run_jobs(app, ignore_delays=True) as enqueued:
        soon = await send.options(delay=3600).enqueue("soon@b.c")
    assert await soon.result(timeout=5) == "SOON@B.C" and enqueued[0].delay == 3600.0


class RunJobsInUnittest(unittest.IsolatedAsyncioTestCase):
    """The helpers are plain context managers: unittest needs no plugin."""

    async def test_run_jobs(self) -> None:
        from fastjobs.testing import capture_enqueues, run_jobs

        app = fastjobs.App("memory://")

        @app.task(name="math.add")
        def add(a: int, b: int) -> int:
            return a + b

        async with run_jobs(app) as enqueued:
            job = await add.enqueue(1, 2)
        self.assertEqual(await job.result(timeout=5), 3)
        self.assertEqual([(j.task, j.args) for j in enqueued], [("math.add", (1, 2))])
        with capture_enqueues(app) as captured:
            add.enqueue_sync(3, 4)
        self.assertEqual(captured[0].args, (3, 4))
        await app.close()


def test_a_periodic_handler_that_needs_arguments_is_refused_at_registration() -> None:
    app = fastjobs.App("memory://")
    with pytest.raises(fastjobs.ConfigurationError, match="missing a required argument: 'day'; give those parameters defaults"):
        @app.periodic(60.0, name="reports.daily")
        def daily(day: str) -> None: ...
    assert "reports.daily" not in app.tasks

    @app.periodic(60.0, name="reports.daily", context=True)
    def daily_with_context(ctx: fastjobs.Context, day: str = "today") -> None: ...
    assert "reports.daily" in app.schedules
