"""Prometheus metrics of workers (``pip install "fastjobs[prometheus]"``): collectors and a small HTTP server.

What it exposes, one name each (labels in braces):

* ``fastjobs_jobs_started_total{queue,task}``, ``fastjobs_jobs_finished_total{queue,task,outcome}``
  (outcome: one of :data:`fastjobs.metrics.OUTCOMES`), ``fastjobs_acks_discarded_total``;
* ``fastjobs_job_duration_seconds{queue,task}``, ``fastjobs_job_wait_seconds{queue,task}``,
  ``fastjobs_backend_round_trip_seconds{operation}`` (histograms);
* ``fastjobs_jobs_running``, ``fastjobs_worker_slots`` (gauges);
* ``fastjobs_queue_jobs{queue,state}``: the backend's job counts, read at most once per
  ``cache_seconds`` however often it is scraped.

The counters come from a :class:`~fastjobs.metrics.WorkerMetrics` snapshot (one worker
process), or from :class:`ChildSnapshots`, the merge a ``fastjobs worker --processes N``
supervisor keeps of what its children report through :class:`SnapshotReporter` (the
supervisor alone serves the port; prometheus_client's own multiprocess mode needs a shared
directory and an environment variable set before import, and loses nothing we need here).

The server binds 127.0.0.1 unless told otherwise and wants the token as ``Authorization:
Bearer <token>`` (what a Prometheus scrape config's ``authorization:`` sends) or as the
password of HTTP basic auth; a wrong or missing one gets 401.

Example:
    >>> from fastjobs.metrics import WorkerMetrics
    >>> metrics = WorkerMetrics(slots=10)
    >>> server = start_metrics_server(metrics.snapshot, port=0, token="s3cret")  # doctest: +SKIP
    >>> server.url  # doctest: +SKIP
    'http://127.0.0.1:43127/metrics'
    >>> server.close()  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import concurrent.futures
import errno
import hmac
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from .errors import ConfigurationError
from .metrics import DURATION_BOUNDS, OUTCOMES, ROUND_TRIP_BOUNDS, WAIT_BOUNDS, merge

try:
    from prometheus_client import CollectorRegistry
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
    from prometheus_client.exposition import choose_encoder
    from prometheus_client.registry import Collector
    from prometheus_client.utils import floatToGoString as _untyped_go_float
except ImportError as exc:  # pragma: no cover - the extra is installed wherever the tests run
    raise ConfigurationError(
        f'worker metrics for Prometheus need prometheus_client ({exc}): pip install "fastjobs[prometheus]"'
    ) from exc

if TYPE_CHECKING:
    from .backends.base import Backend

log = logging.getLogger("fastjobs.prometheus")

_go_float: Callable[[float], str] = _untyped_go_float
"""A bucket bound as Prometheus writes it (``0.5``, ``1.0``, ``+Inf``)."""

TOKEN_ENV = "FASTJOBS_METRICS_TOKEN"
"""The environment variable the metrics token is read from when none is given."""

CACHE_SECONDS = 10.0
"""How long one read of the queue counts serves scrapes (a PostgreSQL count is not free)."""

READ_TIMEOUT = 5.0
"""Longest a scrape waits for the queue counts before it serves the last ones (Prometheus'
default scrape timeout is 10 s)."""

REPORT_INTERVAL = 1.0
"""Seconds between two snapshots a supervised worker process sends its supervisor."""

Snapshot = dict[str, Any]
"""A :meth:`fastjobs.metrics.WorkerMetrics.snapshot` (or a :func:`fastjobs.metrics.merge` of some)."""


def metrics_token(token: str | None = None, *, no_auth: bool = False) -> str | None:
    """The token the metrics server will want: ``token``, else ``$FASTJOBS_METRICS_TOKEN``;
    None only with ``no_auth``. Called when a worker is configured, so a missing token stops
    it before it starts (or forks).

    Example:
        >>> metrics_token("s3cret")
        's3cret'
        >>> print(metrics_token(no_auth=True))
        None

    Raises:
        ConfigurationError: no token anywhere and no ``no_auth``, or an unusable one.
    """
    if no_auth:
        if token:
            raise ConfigurationError("give either a metrics token or --metrics-no-auth, not both")
        return None
    token = token or os.environ.get(TOKEN_ENV) or None
    if token is None:
        raise ConfigurationError(
            f"the metrics port needs a token: set {TOKEN_ENV} (or pass --metrics-token T / metrics_token=T; "
            "`ps` shows a command line), and have Prometheus send it (`authorization: {credentials: T}` in its "
            "scrape config); or pass --metrics-no-auth (metrics_no_auth=True) to serve the metrics to anyone "
            "who can reach the port"
        )
    if any(c.isspace() or not c.isprintable() for c in token):
        raise ConfigurationError("the metrics token must be printable and without spaces (it goes in an HTTP header)")
    return token


def read_snapshot(snapshot: Callable[[], Snapshot]) -> Snapshot:
    """``snapshot()`` called from a thread other than the worker's event loop.

    The loop adds to the metrics' dicts meanwhile without a lock (a lock per batch would
    cost every job): a dict that gains a key while it is copied raises RuntimeError, and
    then the copy is simply taken again. Values are ints and floats, read whole; counters
    only grow, so a snapshot never shows less than an earlier one.
    """
    for _ in range(9):
        try:
            return snapshot()
        except RuntimeError:  # "dictionary changed size during iteration"
            time.sleep(0.001)
    return snapshot()


# -- collectors ------------------------------------------------------------------------


def _histogram(family: HistogramMetricFamily, labels: list[str], total: float, counts: list[int],
               bounds: tuple[float, ...]) -> None:
    cumulative = 0
    buckets: list[tuple[str, float]] = []
    for bound, count in zip(bounds, counts):
        cumulative += count
        buckets.append((_go_float(bound), cumulative))
    buckets.append(("+Inf", cumulative + sum(counts[len(bounds):])))
    family.add_metric(labels, buckets, total)


class WorkerCollector(Collector):
    """The counters, histograms and gauges of one snapshot, taken at each scrape.

    Every (queue, task) seen gets all five outcomes, zeros included: a series that appears
    only at its first increment loses that increment to ``rate()``.

    Args:
        snapshot: returns the current snapshot (``WorkerMetrics.snapshot``, ``ChildSnapshots.snapshot``);
            called on the HTTP server's thread, through :func:`read_snapshot`.

    Example:
        >>> from prometheus_client import CollectorRegistry, generate_latest
        >>> from fastjobs.metrics import WorkerMetrics
        >>> metrics = WorkerMetrics(slots=4)
        >>> metrics.add_outcome("emails", "send", "cancelled")
        >>> registry = CollectorRegistry()
        >>> registry.register(WorkerCollector(metrics.snapshot))
        >>> b'fastjobs_jobs_finished_total{outcome="cancelled",queue="emails",task="send"} 1.0' in generate_latest(registry)
        True
    """

    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self._snapshot = snapshot

    def describe(self) -> Iterable[Metric]:
        # The registry checks names against this instead of calling collect() at register time.
        return self._families()

    def _families(self) -> list[Any]:
        return [
            CounterMetricFamily("fastjobs_jobs_started", "Jobs handed to their handler (or read as a chain step's "
                                "input), since the worker started.", labels=["queue", "task"]),
            CounterMetricFamily("fastjobs_jobs_finished", "Attempts finished, by outcome: succeeded; failed (to be "
                                "retried); timed_out (to be retried); dead (dead-lettered); cancelled (stopped, "
                                "outcome discarded: cancelled, lease lost, or given back at shutdown).",
                                labels=["queue", "task", "outcome"]),
            HistogramMetricFamily("fastjobs_job_duration_seconds", "Run time of finished attempts (succeeded, "
                                  "failed, timed out or dead).", labels=["queue", "task"]),
            HistogramMetricFamily("fastjobs_job_wait_seconds", "Time from enqueue (or from when the job fell due) "
                                  "to its start.", labels=["queue", "task"]),
            GaugeMetricFamily("fastjobs_jobs_running", "Jobs running now."),
            GaugeMetricFamily("fastjobs_worker_slots", "Jobs that may run at once (the workers' concurrency)."),
            HistogramMetricFamily("fastjobs_backend_round_trip_seconds", "Time of one backend call, by operation "
                                  "(claim, ack, renew, enqueue).", labels=["operation"]),
            CounterMetricFamily("fastjobs_acks_discarded", "Outcomes discarded because the job's lease was lost "
                                "(cancelled, or taken back after a stall)."),
        ]

    def collect(self) -> Iterator[Metric]:
        snap = read_snapshot(self._snapshot)
        started, finished, duration, wait, running, slots, round_trips, discarded = self._families()
        outcomes: dict[tuple[str, str], dict[str, int]] = {}
        for queue, task, n in snap.get("started", ()):
            started.add_metric([queue, task], n)
            outcomes.setdefault((queue, task), {})
        for queue, task, outcome, n in snap.get("finished", ()):
            by_outcome = outcomes.setdefault((queue, task), {})
            by_outcome[outcome] = by_outcome.get(outcome, 0) + n
        for (queue, task), by_outcome in outcomes.items():
            for outcome in (*OUTCOMES, *sorted(set(by_outcome) - set(OUTCOMES))):
                finished.add_metric([queue, task, outcome], by_outcome.get(outcome, 0))
        for queue, task, total, counts in snap.get("duration", ()):
            _histogram(duration, [queue, task], total, counts, DURATION_BOUNDS)
        for queue, task, total, counts in snap.get("wait", ()):
            _histogram(wait, [queue, task], total, counts, WAIT_BOUNDS)
        for operation, total, counts in snap.get("round_trips", ()):
            _histogram(round_trips, [operation], total, counts, ROUND_TRIP_BOUNDS)
        running.add_metric([], snap.get("running", 0))
        slots.add_metric([], snap.get("slots", 0))
        discarded.add_metric([], snap.get("discarded", 0))
        yield from (started, finished, duration, wait, running, slots, round_trips, discarded)


class QueueDepthCollector(Collector):
    """``fastjobs_queue_jobs{queue,state}`` from ``Backend.stats_estimated()``, read at most once
    per ``cache_seconds``.

    The backend belongs to an event loop (its connections are tied to it; the memory
    store is not thread-safe), while scrapes arrive on the HTTP server's threads: the read
    runs *on that loop* through ``asyncio.run_coroutine_threadsafe`` and the scrape waits
    for it at most ``timeout`` seconds. So a worker's scrape reuses the worker's own
    connection (no extra connection per process); a supervisor gives it a loop of its own
    (:class:`LoopThread`). A failed or late read serves the last counts and logs a warning:
    it never fails the scrape, and a down backend is asked once per window, not per scrape.

    Args:
        loop: the event loop that owns the backend.
        backend: returns the connected backend when awaited on ``loop`` (``app.backend``).
        cache_seconds: a read serves every scrape within this many seconds of it.
        timeout: longest a scrape waits for a read.

    Example:
        >>> depth = QueueDepthCollector(asyncio.get_running_loop(), app.backend)  # doctest: +SKIP
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, backend: Callable[[], Awaitable[Backend]],
                 cache_seconds: float = CACHE_SECONDS, timeout: float = READ_TIMEOUT) -> None:
        self._loop = loop
        self._backend = backend
        self.cache_seconds = cache_seconds
        self.timeout = timeout
        self._lock = threading.Lock()
        self._asked: float | None = None
        self._counts: dict[str, dict[str, int]] = {}
        self.reads = 0
        """Reads sent to the backend so far (the tests check the cache with it)."""

    def describe(self) -> Iterable[Metric]:
        return [self._family()]

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily("fastjobs_queue_jobs", "Jobs stored per queue and state (the backend's counts; "
                                 "large PostgreSQL counts are estimates).", labels=["queue", "state"])

    async def _read(self) -> dict[str, dict[str, int]]:
        stats, _estimated = await (await self._backend()).stats_estimated()
        # A damaged queue reports {"broken": reason} instead of counts: it has none to show.
        return {queue: {state: n for state, n in counts.items() if isinstance(n, int)}
                for queue, counts in stats.items()}

    def counts(self) -> dict[str, dict[str, int]]:
        """The counts per queue and state: the cached ones, or fresh ones once the window has passed."""
        with self._lock:  # concurrent scrapes share one read
            now = time.monotonic()
            if self._asked is not None and now - self._asked < self.cache_seconds:
                return self._counts
            self._asked = now
            self.reads += 1
            future = None
            try:
                future = asyncio.run_coroutine_threadsafe(self._read(), self._loop)
                self._counts = future.result(self.timeout)
            except Exception as exc:
                if future is not None:
                    future.cancel()
                # Python 3.10's concurrent.futures.TimeoutError is not yet the builtin one.
                late = isinstance(exc, (TimeoutError, concurrent.futures.TimeoutError))
                reason = f"no answer within {self.timeout:g} s" if late else f"{type(exc).__name__}: {exc}"
                log.warning("reading the queue counts for Prometheus failed (%s); serving the last ones", reason)
            return self._counts

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        for queue, states in sorted(self.counts().items()):
            for state, n in sorted(states.items()):
                family.add_metric([queue, state], n)
        yield family


# -- the HTTP server -------------------------------------------------------------------


def _authorized(header: str | None, token: bytes) -> bool:
    """Whether an ``Authorization`` header carries ``token``: as a bearer token, or as the
    password of HTTP basic auth (any user name), compared in constant time."""
    if not header:
        return False
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    # http.server decodes headers as latin-1: encoding back gives the bytes as sent.
    if scheme.lower() == "bearer":
        given = value.encode("latin-1")
    elif scheme.lower() == "basic":
        try:
            given = base64.b64decode(value.encode("latin-1"), validate=True).partition(b":")[2]
        except (binascii.Error, ValueError):
            return False
    else:
        return False
    return hmac.compare_digest(given, token)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    registry: CollectorRegistry
    token: bytes | None


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "fastjobs-metrics"

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        token = self.server.token
        if token is not None and not _authorized(self.headers.get("Authorization"), token):
            self._reply(401, b"a metrics token is required: Authorization: Bearer <token>\n", "text/plain",
                        [("WWW-Authenticate", 'Bearer realm="fastjobs"'), ("WWW-Authenticate", 'Basic realm="fastjobs"')])
            return
        if self.path.split("?", 1)[0] != "/metrics":
            self._reply(404, b"the metrics are at /metrics\n", "text/plain")
            return
        encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
        try:
            body = encoder(self.server.registry)
        except Exception:
            log.exception("collecting the metrics failed")
            self._reply(500, b"collecting the metrics failed: see the worker's log\n", "text/plain")
            return
        self._reply(200, body, content_type)

    def _reply(self, status: int, body: bytes, content_type: str, headers: Iterable[tuple[str, str]] = ()) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        log.debug("%s %s", self.address_string(), format % args)


class MetricsServer:
    """A running ``/metrics`` endpoint (a thread serving a :class:`CollectorRegistry`); :meth:`close` stops it.

    Built by :func:`start_metrics_server`.
    """

    def __init__(self, registry: CollectorRegistry, host: str, port: int, token: str | None) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        server_class = type("_Server", (_Server,), {"address_family": family})
        try:
            self._server: _Server = server_class((host, port), _Handler)
        except OSError as exc:
            what = "is in use (another worker's --metrics-port?)" if exc.errno == errno.EADDRINUSE else (
                f"cannot be bound ({exc.strerror or exc})")
            raise ConfigurationError(
                f"the metrics port {host}:{port} {what}: pick another --metrics-port (or metrics_port=)"
            ) from None
        self._server.registry = registry
        self._server.token = None if token is None else token.encode()
        self.registry = registry
        self.host = host
        self.port: int = self._server.server_address[1]
        """The bound port (the one the OS chose when asked for port 0)."""
        self._thread = threading.Thread(target=self._server.serve_forever, name="fastjobs-metrics", daemon=True)
        self._thread.start()
        log.info("serving Prometheus metrics at %s%s", self.url, "" if token else " (no auth)")
        if token is None and host not in ("127.0.0.1", "::1", "localhost"):
            log.warning("the metrics on %s need no token: anyone who can reach the port reads them", self.url)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and free the port (idempotent)."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()


def start_metrics_server(snapshot: Callable[[], Snapshot], *, host: str = "127.0.0.1", port: int = 9100,
                         token: str | None, queue_depth: QueueDepthCollector | None = None) -> MetricsServer:
    """Serve ``snapshot``'s metrics (and ``queue_depth``'s) at ``http://host:port/metrics`` from a thread.

    Args:
        snapshot: returns the counters to expose (``worker.metrics.snapshot``).
        host: the address to bind; 127.0.0.1 keeps it on this machine.
        port: the port to bind (0: any free one, see :attr:`MetricsServer.port`).
        token: the token every scrape must send; None serves anyone. Resolve it with
            :func:`metrics_token`, which refuses None unless no-auth was asked for.
        queue_depth: the collector of ``fastjobs_queue_jobs`` (None: not exposed).

    Raises:
        ConfigurationError: the port is in use or cannot be bound.

    Example:
        >>> server = start_metrics_server(worker.metrics.snapshot, port=9100, token=metrics_token(),  # doctest: +SKIP
        ...                               queue_depth=QueueDepthCollector(loop, app.backend))
    """
    registry = CollectorRegistry()
    registry.register(WorkerCollector(snapshot))
    if queue_depth is not None:
        registry.register(queue_depth)
    return MetricsServer(registry, host, port, token)


class LoopThread:
    """An event loop running in a daemon thread: where a process without one of its own (the
    supervisor) keeps a backend connection for :class:`QueueDepthCollector`.

    Example:
        >>> loop = LoopThread()
        >>> asyncio.run_coroutine_threadsafe(asyncio.sleep(0, "ok"), loop.loop).result(5)
        'ok'
        >>> loop.close()
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="fastjobs-metrics-loop", daemon=True)
        self._thread.start()

    def close(self, cleanup: Callable[[], Awaitable[Any]] | None = None, timeout: float = 5.0) -> None:
        """Run ``cleanup()`` (``app.close``) on the loop, then stop and close it."""
        if cleanup is not None:
            async def run_cleanup() -> None:
                await cleanup()

            try:
                asyncio.run_coroutine_threadsafe(run_cleanup(), self.loop).result(timeout)
            except Exception as exc:
                log.warning("closing the metrics' backend connection failed (%s: %s)", type(exc).__name__, exc)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self.loop.close()


# -- a supervisor and its worker processes ---------------------------------------------


class SnapshotReporter:
    """In a supervised worker process: write a snapshot as one JSON line to ``fd`` (a pipe to
    the supervisor) every ``interval`` seconds, from a thread, and a last one at :meth:`close`.

    A thread, not a task on the worker's loop: a blocking write to a full pipe (a
    supervisor slow to read) must never stall the jobs, and a non-blocking one could
    write half a line. If the supervisor is gone, the reports stop.

    Example:
        >>> reporter = SnapshotReporter(fd, worker.metrics.snapshot)  # doctest: +SKIP
        >>> await worker.run()  # doctest: +SKIP
        >>> reporter.close()  # doctest: +SKIP
    """

    def __init__(self, fd: int, snapshot: Callable[[], Snapshot], interval: float = REPORT_INTERVAL) -> None:
        self._fd = fd
        self._snapshot = snapshot
        self._interval = interval
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._broken = False
        self._thread = threading.Thread(target=self._run, name="fastjobs-metrics-report", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.send()

    def send(self) -> None:
        """Write the current snapshot now."""
        with self._lock:
            if self._broken:
                return
            line = memoryview(json.dumps(read_snapshot(self._snapshot), separators=(",", ":")).encode() + b"\n")
            try:
                while line:
                    line = line[os.write(self._fd, line):]
            except OSError as exc:  # EPIPE: the supervisor is gone (this process follows it soon)
                self._broken = True
                log.debug("metrics reports stopped (%s)", exc)

    def close(self) -> None:
        """Send the final snapshot (every ack drained by now) and close the pipe."""
        self._stop.set()
        self._thread.join()
        self.send()
        with self._lock:
            self._broken = True
            os.close(self._fd)


class ChildSnapshots:
    """In a supervisor: the latest snapshot of each worker process, merged into one at each scrape.

    A process that exits (or is killed) keeps counting: its last snapshot is folded into
    a running total of the finished processes (gauges zeroed: it runs nothing and has no
    slots now), so a restart never makes a counter go backwards. What a SIGKILLed process
    counted after its last report (at most ``REPORT_INTERVAL``) is lost, as is a
    killed process's state in any Prometheus client.

    Example:
        >>> children = ChildSnapshots()
        >>> read_end, write_end = os.pipe()
        >>> children.watch(read_end)
        >>> os.write(write_end, b'{"started": [["q", "t", 3]], "slots": 10}\\n') and None
        >>> os.close(write_end); children.join()
        >>> children.snapshot()["started"], children.snapshot()["slots"]
        ([['q', 't', 3]], 0)
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: dict[int, Snapshot] = {}
        self._finished: Snapshot = merge([])
        self._next = 0
        self._readers: list[threading.Thread] = []

    def watch(self, fd: int) -> None:
        """Read one process's reports from ``fd`` (the read end of its pipe) until it closes."""
        key = self._next
        self._next += 1
        reader = threading.Thread(target=self._read, args=(key, fd), name=f"fastjobs-metrics-child-{key}", daemon=True)
        self._readers = [r for r in self._readers if r.is_alive()]
        self._readers.append(reader)
        reader.start()

    def _read(self, key: int, fd: int) -> None:
        with open(fd, "rb") as pipe:
            for line in pipe:
                try:
                    snap = json.loads(line)
                except ValueError:  # a line cut short by SIGKILL mid-write
                    continue
                if isinstance(snap, dict):
                    with self._lock:
                        self._live[key] = snap
        with self._lock:
            last = self._live.pop(key, None)
            if last is not None:
                self._finished = merge([self._finished, {**last, "running": 0, "slots": 0}])

    def join(self, timeout: float | None = None) -> None:
        """Wait for the readers whose pipes have closed (the tests use it)."""
        for reader in list(self._readers):
            reader.join(timeout)

    def snapshot(self) -> Snapshot:
        """Every process's counters summed (finished processes included); the gauges of the live ones."""
        with self._lock:
            return merge([self._finished, *self._live.values()])


__all__ = [
    "CACHE_SECONDS", "REPORT_INTERVAL", "TOKEN_ENV", "ChildSnapshots", "LoopThread", "MetricsServer",
    "QueueDepthCollector", "SnapshotReporter", "WorkerCollector", "metrics_token", "read_snapshot",
    "start_metrics_server",
]
