"""fastjobs.otel: one trace from the caller's span through the enqueue to the handler's spans,
on every backend, with the SDK's in-memory exporter on a provider of the test's own (the
global provider is never set)."""

from __future__ import annotations

import asyncio
import contextvars
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import fastjobs
import fastjobs.otel
from tests.backends import IMPLEMENTED, unique_prefix, wipe_namespace

MakeApp = Callable[..., fastjobs.App]


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    spans = InMemorySpanExporter()
    yield spans
    spans.shutdown()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    tracers = TracerProvider()
    tracers.add_span_processor(SimpleSpanProcessor(exporter))
    yield tracers
    tracers.shutdown()


@pytest.fixture(autouse=True)
def no_hook_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """A hook that raises is only logged, and OpenTelemetry logs its own misuse (a failed detach):
    either would leave a test green with a span missing or wrong."""
    yield
    records = [*caplog.get_records("setup"), *caplog.get_records("call")]
    logged = [r for r in records if r.name.startswith(("opentelemetry", "fastjobs.hooks", "fastjobs.otel"))]
    assert not logged, [r.getMessage() for r in logged]


@pytest.fixture(params=IMPLEMENTED)
async def make_app(request: pytest.FixtureRequest) -> AsyncIterator[MakeApp]:
    """Apps on a fresh namespace of each backend, closed and wiped at teardown."""
    kind = str(request.param)
    url = "memory://" if kind == "memory" else str(request.getfixturevalue(f"{kind}_url"))
    prefix = unique_prefix()
    made: list[fastjobs.App] = []

    def make(**options: Any) -> fastjobs.App:
        application = fastjobs.App(url, prefix=prefix, lease=5.0, **options)
        made.append(application)
        return application

    yield make
    for application in made:
        fastjobs.otel.uninstrument(application)
        await application.close()
    await wipe_namespace(url, prefix)


@pytest.fixture
def app(make_app: MakeApp, provider: TracerProvider) -> fastjobs.App:
    application = make_app()
    fastjobs.otel.instrument(application, tracer_provider=provider)
    return application


async def run_burst(app: fastjobs.App) -> fastjobs.Worker:
    worker = app.worker(burst=True, handle_signals=False, schedule=False)
    await asyncio.wait_for(worker.run(), 30)
    return worker


def by_name(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == name]


def one(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    spans = by_name(exporter, name)
    assert len(spans) == 1, [s.name for s in exporter.get_finished_spans()]
    return spans[0]


def assert_error(span: ReadableSpan, error_type: str) -> None:
    """The span says the operation failed with ``error_type``, the exception recorded once."""
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None and span.attributes["error.type"] == error_type
    assert [e.name for e in span.events] == ["exception"]


def parent_of(span: ReadableSpan) -> int | None:
    return None if span.parent is None else span.parent.span_id


@pytest.mark.parametrize("handler_kind", ["async", "async-eager", "def"])
async def test_one_trace_from_the_request_to_the_handlers_span(
    app: fastjobs.App, provider: TracerProvider, exporter: InMemorySpanExporter, handler_kind: str
) -> None:
    tracer = provider.get_tracer("test")
    seen: list[str] = []

    def work(n: int) -> int:
        with tracer.start_as_current_span("handler") as span:
            seen.append(format(span.get_span_context().trace_id, "032x"))
        return n + 1

    if handler_kind == "async":
        @app.task(queue="mail", name="tests.otel.work")
        async def handler(n: int) -> int:
            await asyncio.sleep(0)  # suspends: the rest runs in the handler's Task
            return work(n)
    elif handler_kind == "async-eager":
        @app.task(queue="mail", name="tests.otel.work")
        async def handler(n: int) -> int:  # done in its first step (eagerly, on Python 3.12+)
            return work(n)
    else:
        @app.task(queue="mail", name="tests.otel.work")
        def handler(n: int) -> int:  # on the worker's thread pool
            return work(n)

    with tracer.start_as_current_span("request"):
        job = await handler.enqueue(41)
    await run_burst(app)
    assert (await job.result(timeout=5)) == 42

    request, send, process, inner = (one(exporter, n) for n in ("request", "send mail", "process mail", "handler"))
    trace_id = request.context.trace_id
    assert {s.context.trace_id for s in (send, process, inner)} == {trace_id}
    assert seen == [format(trace_id, "032x")]
    assert parent_of(send) == request.context.span_id
    assert parent_of(process) == send.context.span_id
    assert parent_of(inner) == process.context.span_id
    assert [link.context.span_id for link in process.links] == [send.context.span_id]
    assert send.kind is SpanKind.PRODUCER and process.kind is SpanKind.CONSUMER
    assert dict(send.attributes or {}) == {
        "messaging.system": "fastjobs", "messaging.destination.name": "mail", "messaging.message.id": job.id,
        "messaging.operation.type": "send", "messaging.operation.name": "send", "fastjobs.task": "tests.otel.work",
    }
    attributes = dict(process.attributes or {})
    assert isinstance(attributes.pop("messaging.client.id"), str)
    assert attributes == {
        "messaging.system": "fastjobs", "messaging.destination.name": "mail", "messaging.message.id": job.id,
        "messaging.operation.type": "process", "messaging.operation.name": "process",
        "fastjobs.task": "tests.otel.work", "fastjobs.attempt": 1, "fastjobs.outcome": "succeeded",
    }
    assert process.status.status_code is StatusCode.UNSET
    assert process.instrumentation_scope is not None and process.instrumentation_scope.name == "fastjobs"
    info = await app.get_job(job.id)
    assert info is not None and info.meta["traceparent"].split("-")[1:3] == [
        format(trace_id, "032x"), format(send.context.span_id, "016x"),
    ]
    # Nothing of the job's context leaks into the caller's: the request span is long over.
    assert not trace.get_current_span().get_span_context().is_valid


async def test_a_dead_job_span_is_an_error_with_its_exception(
    app: fastjobs.App, exporter: InMemorySpanExporter
) -> None:
    @app.task(max_attempts=1)
    async def broken() -> None:
        raise ValueError("no such row")

    job = await broken.enqueue()
    await run_burst(app)
    process = one(exporter, "process default")
    assert process.status.status_code is StatusCode.ERROR
    assert process.status.description == "ValueError: no such row"
    assert process.attributes is not None
    assert process.attributes["fastjobs.outcome"] == "dead"
    assert process.attributes["error.type"] == "ValueError"
    assert process.attributes["messaging.message.id"] == job.id
    [event] = process.events
    assert event.name == "exception" and event.attributes is not None
    assert event.attributes["exception.type"] == "ValueError"
    assert event.attributes["exception.message"] == "no such row"


@pytest.mark.parametrize("handler_kind", ["async", "def"])
async def test_a_timed_out_job_span_is_an_error(
    app: fastjobs.App, exporter: InMemorySpanExporter, handler_kind: str
) -> None:
    if handler_kind == "async":
        @app.task(max_attempts=1, timeout=0.05)
        async def slow() -> None:
            await asyncio.sleep(5)
    else:
        @app.task(max_attempts=1, timeout=0.05)
        def slow() -> None:  # its thread runs on past the timeout, inside the job's context
            time.sleep(0.3)

    await slow.enqueue()
    await run_burst(app)
    assert_error(one(exporter, "process default"), "fastjobs.errors.JobTimeoutError")


async def test_each_attempt_is_a_process_span_of_the_same_send(
    app: fastjobs.App, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    attempts: list[int] = []

    @app.task(max_attempts=2, backoff=fastjobs.Fixed(0.01))
    def flaky() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("try again")
        return "ok"

    with provider.get_tracer("test").start_as_current_span("request"):
        job = await flaky.enqueue()
    worker = app.worker(handle_signals=False, schedule=False)  # a burst worker would not wait for the retry
    runner = asyncio.ensure_future(worker.run())
    try:
        assert (await job.result(timeout=10)) == "ok"
    finally:
        worker.request_stop()
        await runner
    send = one(exporter, "send default")
    first, second = sorted(by_name(exporter, "process default"), key=lambda s: s.start_time or 0)
    assert first.attributes is not None and second.attributes is not None
    assert (first.attributes["fastjobs.attempt"], second.attributes["fastjobs.attempt"]) == (1, 2)
    assert (first.attributes["fastjobs.outcome"], second.attributes["fastjobs.outcome"]) == ("failed", "succeeded")
    assert (first.status.status_code, second.status.status_code) == (StatusCode.ERROR, StatusCode.UNSET)
    assert parent_of(first) == parent_of(second) == send.context.span_id
    assert [e.name for e in first.events] == ["exception"] and not second.events


async def test_enqueue_many_makes_one_send_span_per_queue_over_its_round_trip(
    app: fastjobs.App, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    @app.task(queue="a")
    async def a(n: int) -> None: ...

    @app.task(queue="b")
    async def b(n: int) -> None: ...

    with provider.get_tracer("test").start_as_current_span("request") as request:
        handles = await app.enqueue_many([a.call(1), b.call(2), a.call(3)])
    send_a, send_b = one(exporter, "send a"), one(exporter, "send b")
    assert {parent_of(send_a), parent_of(send_b)} == {request.get_span_context().span_id}
    assert send_a.attributes is not None and send_a.attributes["messaging.batch.message_count"] == 2
    assert "messaging.message.id" not in send_a.attributes
    assert send_b.attributes is not None and send_b.attributes["messaging.message.id"] == handles.ids[1]
    await run_burst(app)
    processes = by_name(exporter, "process a") + by_name(exporter, "process b")
    assert len(processes) == 3
    for process in processes:
        assert process.attributes is not None
        send = send_a if process.attributes["messaging.destination.name"] == "a" else send_b
        assert parent_of(process) == send.context.span_id
        assert [link.context.span_id for link in process.links] == [send.context.span_id]
    assert {p.attributes["messaging.message.id"] for p in processes if p.attributes} == set(handles.ids)


async def test_a_failed_enqueue_is_an_error_on_its_send_span(
    app: fastjobs.App, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    @app.task()
    async def once() -> None: ...

    await once.options(job_id="only-once").enqueue()
    with pytest.raises(fastjobs.DuplicateJobError):
        await once.options(job_id="only-once").enqueue()
    first, second = by_name(exporter, "send default")
    assert first.status.status_code is StatusCode.UNSET
    assert_error(second, "fastjobs.errors.DuplicateJobError")


async def test_each_step_of_a_chain_follows_the_chains_send(
    app: fastjobs.App, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    @app.task()
    async def fetch() -> int:
        return 1

    @app.task()
    def parse(n: int) -> int:
        return n + 1

    with provider.get_tracer("test").start_as_current_span("request") as request:
        steps = await app.chain(fetch.call(), parse.call())
    await run_burst(app)
    assert (await steps[-1].result(timeout=5)) == 2
    send = one(exporter, "send default")
    processes = by_name(exporter, "process default")
    assert len(processes) == 2 and all(parent_of(p) == send.context.span_id for p in processes)
    assert {p.attributes["messaging.message.id"] for p in processes if p.attributes} == set(steps.ids)
    assert {s.context.trace_id for s in [send, *processes]} == {request.get_span_context().trace_id}


async def test_enqueue_sync_sees_the_callers_span_in_its_thread(
    app: fastjobs.App, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    @app.task()
    def ping() -> None: ...

    def view() -> str:
        with provider.get_tracer("test").start_as_current_span("view"):
            return ping.enqueue_sync().id

    job_id = await asyncio.to_thread(view)
    view_span, send = one(exporter, "view"), one(exporter, "send default")
    assert parent_of(send) == view_span.context.span_id
    assert send.attributes is not None and send.attributes["messaging.message.id"] == job_id


async def test_a_job_enqueued_untraced_runs_under_a_root_span(
    make_app: MakeApp, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    app = make_app()
    tracer = provider.get_tracer("test")

    @app.task()
    async def plain() -> str:
        with tracer.start_as_current_span("handler"):
            return "ok"

    with tracer.start_as_current_span("request"):
        job = await plain.enqueue()  # before instrument(): no trace context in its meta
    info = await app.get_job(job.id)
    assert info is not None and "traceparent" not in info.meta
    fastjobs.otel.instrument(app, tracer_provider=provider)
    with tracer.start_as_current_span("around the worker"):
        await run_burst(app)
    assert (await job.result(timeout=5)) == "ok"
    process, inner = one(exporter, "process default"), one(exporter, "handler")
    assert process.parent is None and not process.links
    assert parent_of(inner) == process.context.span_id
    assert by_name(exporter, "send default") == []


def test_instrument_twice_is_refused_and_uninstrument_removes_the_hooks(provider: TracerProvider) -> None:
    app = fastjobs.App("memory://")
    user_hook: Callable[[fastjobs.Context], None] = lambda ctx: None  # noqa: E731
    app.before_job(user_hook)
    fastjobs.otel.instrument(app, tracer_provider=provider)
    assert app.hooks.before_job[1] is user_hook  # the span is current in hooks registered before
    with pytest.raises(fastjobs.ConfigurationError, match="already instrumented"):
        fastjobs.otel.instrument(app, tracer_provider=provider)
    fastjobs.otel.uninstrument(app)
    assert (app.hooks.around_enqueue, app.hooks.before_job, app.hooks.after_job) == ([], [user_hook], [])
    fastjobs.otel.uninstrument(app)  # a no-op
    fastjobs.otel.instrument(app, tracer_provider=provider)


class FakeContext:
    """What the job hooks read of a :class:`fastjobs.Context`."""

    def __init__(self, meta: dict[str, Any] | None) -> None:
        self.job_id, self.task, self.queue, self.attempt, self.worker_id = "j1", "t", "q", 1, "w1"
        self.meta = meta


def test_a_cancelled_job_span_is_no_error(provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
    app = fastjobs.App("memory://")
    fastjobs.otel.instrument(app, tracer_provider=provider)
    [around_enqueue], [before_job], [after_job] = app.hooks.around_enqueue, app.hooks.before_job, app.hooks.after_job
    job = fastjobs.Enqueuing("j1", "t", "q", (), {}, {})
    with around_enqueue([job]):
        pass
    ctx: Any = FakeContext(job.meta)

    def attempt() -> None:
        before_job(ctx)
        assert trace.get_current_span().get_span_context().span_id != 0
        after_job(ctx, fastjobs.JobOutcome("cancelled", asyncio.CancelledError()))
        assert not trace.get_current_span().get_span_context().is_valid

    contextvars.copy_context().run(attempt)
    process = one(exporter, "process q")
    assert process.status.status_code is StatusCode.UNSET and not process.events
    assert process.attributes is not None and process.attributes["fastjobs.outcome"] == "cancelled"
    assert parent_of(process) == one(exporter, "send q").context.span_id


def test_after_job_alone_still_makes_the_span(provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
    app = fastjobs.App("memory://")
    fastjobs.otel.instrument(app, tracer_provider=provider)
    ctx: Any = FakeContext(None)
    error = fastjobs.UnknownTaskError("no task named 't'")
    contextvars.copy_context().run(app.hooks.after_job[0], ctx, fastjobs.JobOutcome("dead", error))
    process = one(exporter, "process q")
    assert process.parent is None and process.status.status_code is StatusCode.ERROR
    assert process.attributes is not None and process.attributes["error.type"] == "fastjobs.errors.UnknownTaskError"


def test_without_opentelemetry_instrument_says_what_to_install() -> None:
    code = textwrap.dedent("""
        import sys
        sys.modules["opentelemetry"] = None  # as if opentelemetry-api were not installed
        import fastjobs, fastjobs.otel
        try:
            fastjobs.otel.instrument(fastjobs.App("memory://"))
        except fastjobs.ConfigurationError as exc:
            print(exc)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert 'pip install "fastjobs[otel]"' in done.stdout


async def test_the_global_propagator_in_force_reads_each_jobs_context(
    make_app: MakeApp, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """Jobs carrying one trace context share its extraction; a propagator set later is used
    for the jobs that follow, even for a context extracted before under the old one."""
    from opentelemetry import propagate
    from opentelemetry.baggage.propagation import W3CBaggagePropagator

    app = make_app()

    @app.task()
    async def traced() -> None: ...

    trace_id, span_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    carried = {"traceparent": f"00-{trace_id}-{span_id}-01"}
    await app.enqueue_many([traced.options(meta=carried).call() for _ in range(3)])  # before instrument: kept as given
    fastjobs.otel.instrument(app, tracer_provider=provider)
    await run_burst(app)
    first = by_name(exporter, "process default")
    assert len(first) == 3
    for span in first:
        assert span.context.trace_id == int(trace_id, 16) and parent_of(span) == int(span_id, 16)
        assert [link.context.span_id for link in span.links] == [int(span_id, 16)]
    exporter.clear()
    saved = propagate.get_global_textmap()
    propagate.set_global_textmap(W3CBaggagePropagator())  # reads `baggage` only
    try:
        await traced.options(meta=carried).enqueue()  # the send span's context is not injected: no field for it
        await run_burst(app)
    finally:
        propagate.set_global_textmap(saved)
    second = one(exporter, "process default")
    assert second.parent is None and not second.links
    assert second.context.trace_id != int(trace_id, 16)


async def test_a_trace_field_holding_a_list_still_gets_its_span(
    make_app: MakeApp, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """A meta value the extraction cache cannot key on (a list) is extracted as before, not an error."""
    app = make_app()

    @app.task()
    async def listed() -> None: ...

    await listed.options(meta={"baggage": ["tenant=t1"]}).enqueue()  # before instrument: kept as given
    fastjobs.otel.instrument(app, tracer_provider=provider)
    await run_burst(app)
    process = one(exporter, "process default")
    assert process.parent is None and not process.links
