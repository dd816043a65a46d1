"""OpenTelemetry tracing for fastjobs: :func:`instrument` (``pip install "fastjobs[otel]"``).

Built on the App's hooks (:mod:`fastjobs.hooks`), nothing else:

- ``around_enqueue``: a PRODUCER span ``send <queue>`` per enqueue call and queue, a child of
  the caller's current span, over the call's round trip (its error recorded); its context
  goes into each job's meta (``traceparent``, ``tracestate``, and ``baggage`` if any) through
  the global propagator. A single job's span carries its ``messaging.message.id`` and
  ``fastjobs.task``; a batch's, ``messaging.batch.message_count``.
- ``before_job``: a CONSUMER span ``process <queue>`` per attempt, a child of that context
  and linked to it, made current for the handler (a span the handler starts is its child);
  ``after_job`` sets its status from the outcome and ends it.

A job enqueued by an uninstrumented process (no trace context in its meta) gets a root
``process`` span. Attributes follow the messaging semantic conventions (1.27):
``messaging.system`` ``"fastjobs"``, ``messaging.destination.name`` (the queue),
``messaging.message.id`` (the job id), ``messaging.operation.type`` and ``.name``
(``send`` / ``process``), ``fastjobs.task``; the process span adds ``fastjobs.attempt``,
``fastjobs.outcome`` and ``messaging.client.id`` (the worker's id).

Outcomes: succeeded leaves the status unset; failed, timed_out and dead set ERROR, record
the exception as an event and set ``error.type``; cancelled (the job was cancelled, its
lease lost, or shutdown gave it back to run again) is no error of the job's: status unset,
``fastjobs.outcome="cancelled"``.

Why one ``send`` span per call, not per job: the messaging conventions' batch send (when
there is no per-message "create" span, each message carries the send span's context); an
``enqueue_many`` of 1,000 jobs is one round trip and one span, not 1,000 spans that each
cost the SDK more than fastjobs spends on the job. The jobs of one call may go to several
queues, and a span is named after one: one span per queue.

Example:
    >>> import fastjobs, fastjobs.otel
    >>> app = fastjobs.App("memory://")
    >>> fastjobs.otel.instrument(app)  # doctest: +SKIP
    >>> fastjobs.otel.uninstrument(app)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import ConfigurationError

try:
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
    from opentelemetry.trace import Link, SpanKind, Status, StatusCode
except ImportError as exc:  # pragma: no cover - depends on the install
    _MISSING: ImportError | None = exc
else:
    _MISSING = None

if TYPE_CHECKING:
    from opentelemetry.context import Context as OtelContext
    from opentelemetry.trace import Span, Tracer, TracerProvider

    from .app import App
    from .context import Context
    from .hooks import Enqueuing, JobOutcome

log = logging.getLogger("fastjobs.otel")

SCHEMA_URL = "https://opentelemetry.io/schemas/1.27.0"
"""The semantic conventions version whose messaging attributes the spans carry."""

SYSTEM = "fastjobs"

_RUNNING: contextvars.ContextVar[tuple[Span, OtelContext] | None] = contextvars.ContextVar(
    "fastjobs_otel_process_span", default=None
)
"""The running job's process span and the OpenTelemetry context current before it. Each job's
hooks and handler share a contextvars context of their own, so before_job's value is after_job's."""

_PARENTS_KEPT = 1024
"""Trace contexts whose extraction is kept (then all are dropped and it starts again)."""

_INSTRUMENTED: weakref.WeakKeyDictionary[App, _Tracing] = weakref.WeakKeyDictionary()


def _error_type(error: BaseException) -> str:
    cls = type(error)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


class _Tracing:
    """The three hooks of one instrumented App, with what they share hoisted out of the per-job path."""

    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer
        # Per queue: the span name and the attributes every span of that queue carries. Built
        # once, copied per job (a dict copy is cheaper than building six entries again).
        self._send: dict[str, tuple[str, dict[str, Any]]] = {}
        self._process: dict[str, tuple[str, dict[str, Any]]] = {}
        # A job without a trace context is a root, whatever span the worker runs inside.
        self._root = otel_context.Context()
        # Per trace context carried (the values of the global propagator's fields in a job's
        # meta): the parent context extracted and the link to it. The jobs of one enqueue call
        # carry the same one, so a batch is extracted once, not once per job.
        self._textmap: Any = None
        self._fields: tuple[str, ...] = ()
        self._parents: dict[tuple[Any, ...], tuple[OtelContext, tuple[Link, ...] | None]] = {}

    def _named(self, cache: dict[str, tuple[str, dict[str, Any]]], operation: str,
               queue: str) -> tuple[str, dict[str, Any]]:
        named = cache[queue] = (f"{operation} {queue}", {
            "messaging.system": SYSTEM,
            "messaging.destination.name": queue,
            "messaging.operation.type": operation,
            "messaging.operation.name": operation,
        })
        return named

    @contextlib.contextmanager
    def around_enqueue(self, jobs: list[Enqueuing]) -> Iterator[None]:
        """One ``send <queue>`` span per queue of the call, over its round trip."""
        spans = []
        # An enqueue hook that raises fails the enqueue: tracing must never do that.
        try:
            groups: dict[str, list[Enqueuing]] = {}
            for job in jobs:
                groups.setdefault(job.queue, []).append(job)
            for queue, group in groups.items():
                name, common = self._send.get(queue) or self._named(self._send, "send", queue)
                attributes = common.copy()
                if len(group) == 1:
                    attributes["messaging.message.id"] = group[0].job_id
                    attributes["fastjobs.task"] = group[0].task
                else:
                    attributes["messaging.batch.message_count"] = len(group)
                span = self.tracer.start_span(name, kind=SpanKind.PRODUCER, attributes=attributes)
                spans.append(span)
                # Injected from a context holding the span rather than attached to the caller's:
                # no attach/detach of the caller's context; encoded once for the whole group.
                carrier: dict[str, str] = {}
                propagate.inject(carrier, context=trace.set_span_in_context(span))
                for job in group:
                    job.meta.update(carrier)
        except Exception:
            log.exception("tracing an enqueue of %d jobs failed; enqueued without a trace context", len(jobs))
        try:
            yield
        except BaseException as error:
            for span in spans:
                span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
                span.set_attribute("error.type", _error_type(error))
                span.record_exception(error, escaped=True)
            raise
        finally:
            for span in spans:
                span.end()

    def _parent(self, meta: dict[str, Any]) -> tuple[OtelContext, tuple[Link, ...] | None]:
        """The context a job's meta carries and the link to it (None without one)."""
        textmap = propagate.get_global_textmap()
        if textmap is not self._textmap:
            self._textmap, self._parents = textmap, {}
            self._fields = tuple(sorted(textmap.fields))
        key: tuple[Any, ...] | None = tuple(map(meta.get, self._fields)) if self._fields else None
        try:
            found = self._parents.get(key) if key is not None else None
        except TypeError:  # a value that cannot be a key (a list under `baggage`): extracted each time
            key = found = None
        if found is None:
            # propagate.extract reads only the carrier (no current context): a function of
            # those fields' values, for propagators whose `fields` name what they read.
            parent = propagate.extract(meta)
            creation = trace.get_current_span(parent).get_span_context()
            found = (parent, (Link(creation),) if creation.is_valid else None)
            if key is not None:
                if len(self._parents) >= _PARENTS_KEPT:
                    self._parents.clear()
                self._parents[key] = found
        return found

    def before_job(self, ctx: Context) -> None:
        meta = ctx.meta
        parent, links = self._parent(meta) if meta else (self._root, None)
        name, common = self._process.get(ctx.queue) or self._named(self._process, "process", ctx.queue)
        attributes = common.copy()
        attributes["messaging.message.id"] = ctx.job_id
        attributes["messaging.client.id"] = ctx.worker_id
        attributes["fastjobs.task"] = ctx.task
        attributes["fastjobs.attempt"] = ctx.attempt
        span = self.tracer.start_span(name, parent, SpanKind.CONSUMER, attributes, links)
        _RUNNING.set((span, otel_context.get_current()))
        otel_context.attach(trace.set_span_in_context(span, parent))

    def after_job(self, ctx: Context, outcome: JobOutcome) -> None:
        running = _RUNNING.get()
        if running is None:  # our before_job did not run for this job: a span for its outcome all the same
            self.before_job(ctx)
            running = _RUNNING.get()
            assert running is not None
        _RUNNING.set(None)
        span, previous = running
        status = outcome.status
        span.set_attribute("fastjobs.outcome", status)
        if status != "succeeded" and status != "cancelled":
            error = outcome.error
            if error is None:
                span.set_status(Status(StatusCode.ERROR, status))
                span.set_attribute("error.type", status)
            else:
                span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
                span.set_attribute("error.type", _error_type(error))
                span.record_exception(error, escaped=True)
        span.end()
        # Set back rather than detach(token): when a plain def handler runs on past its timeout,
        # its thread is still inside the job's context and after_job gets a copy of it, where
        # the token (made in the original) cannot be reset.
        otel_context.attach(previous)


def instrument(app: App, *, tracer_provider: TracerProvider | None = None) -> None:
    """Trace this App's enqueues and job runs with OpenTelemetry (see :mod:`fastjobs.otel`).

    Call it where the App is made, in every process that enqueues or runs its jobs (a
    worker reads the hooks when it starts), after registering your own job hooks: its
    ``before_job`` goes first and its ``after_job`` last, so yours run inside the job's span.

    Args:
        app: the App to trace.
        tracer_provider: where the spans go (default: the global one, as set by
            ``opentelemetry.trace.set_tracer_provider``, also if set after this call).

    Raises:
        ConfigurationError: opentelemetry-api is not installed, or the App is already instrumented.

    Example:
        >>> from opentelemetry.sdk.trace import TracerProvider  # doctest: +SKIP
        >>> fastjobs.otel.instrument(app, tracer_provider=TracerProvider())  # doctest: +SKIP
    """
    if _MISSING is not None:
        raise ConfigurationError(
            f'fastjobs.otel needs opentelemetry-api, which is not installed ({_MISSING}): pip install "fastjobs[otel]"'
        )
    if app in _INSTRUMENTED:
        raise ConfigurationError(
            f"{app!r} is already instrumented: call fastjobs.otel.uninstrument(app) first to change its tracer provider"
        )
    tracer = trace.get_tracer("fastjobs", __version__, tracer_provider, schema_url=SCHEMA_URL)
    tracing = _Tracing(tracer)
    hooks = app.hooks
    hooks.add("around_enqueue", tracing.around_enqueue)
    hooks.add("before_job", tracing.before_job)
    hooks.before_job.insert(0, hooks.before_job.pop())  # first: other hooks see the span
    hooks.add("after_job", tracing.after_job)
    _INSTRUMENTED[app] = tracing


def uninstrument(app: App) -> None:
    """Stop tracing this App (its hooks are removed); a no-op if it is not instrumented.

    Example:
        >>> fastjobs.otel.uninstrument(app)  # doctest: +SKIP
    """
    tracing = _INSTRUMENTED.pop(app, None)
    if tracing is None:
        return
    for kind, hook in (("around_enqueue", tracing.around_enqueue), ("before_job", tracing.before_job),
                       ("after_job", tracing.after_job)):
        app.hooks.remove(kind, hook)


__all__ = ["SCHEMA_URL", "instrument", "uninstrument"]
