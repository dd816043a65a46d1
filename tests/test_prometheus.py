"""fastjobs.prometheus in one process: the collectors' exact output, the server's auth and port
errors, the queue counts' cache, and the supervisor's merge of its children's reports."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import re
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import fastjobs
from fastjobs._core import JobRecord
from fastjobs.errors import ConfigurationError
from fastjobs.metrics import DURATION_BOUNDS, ROUND_TRIP_BOUNDS, WAIT_BOUNDS, WorkerMetrics, merge
from fastjobs.prometheus import (
    TOKEN_ENV,
    ChildSnapshots,
    LoopThread,
    MetricsServer,
    QueueDepthCollector,
    SnapshotReporter,
    WorkerCollector,
    metrics_token,
    start_metrics_server,
)
from tests.backends import unique_prefix, wipe_namespace

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "docs" / "grafana" / "fastjobs.json"
NAMES = {
    "fastjobs_jobs_started_total", "fastjobs_jobs_finished_total", "fastjobs_job_duration_seconds",
    "fastjobs_job_wait_seconds", "fastjobs_jobs_running", "fastjobs_worker_slots",
    "fastjobs_backend_round_trip_seconds", "fastjobs_acks_discarded_total", "fastjobs_queue_jobs",
}
"""Every metric the collectors expose (histograms by their base name)."""
HISTOGRAMS = ("fastjobs_job_duration_seconds", "fastjobs_job_wait_seconds", "fastjobs_backend_round_trip_seconds")
SAMPLE_NAMES = (NAMES - set(HISTOGRAMS)) | {h + suffix for h in HISTOGRAMS for suffix in ("_bucket", "_sum", "_count")}
"""Every sample name in a scrape."""
TOKEN = "s3cret-token"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """A scrape as {(sample name, sorted labels): value}."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text) for s in family.samples
    }


def render(*collectors: Any) -> str:
    registry = CollectorRegistry()
    for collector in collectors:
        registry.register(collector)
    return generate_latest(registry).decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


SNAPSHOT: dict[str, Any] = {
    "started": [["emails", "send", 7], ["default", "report", 1]],
    "finished": [["emails", "send", "succeeded", 4], ["emails", "send", "failed", 2],
                 ["emails", "send", "dead", 1]],
    # One run under the first bound, two in the third bucket, one above every bound.
    "duration": [["emails", "send", 12.5, [1, 0, 2] + [0] * (len(DURATION_BOUNDS) - 3) + [1]]],
    "wait": [["emails", "send", 0.75, [3] + [0] * (len(WAIT_BOUNDS) - 1) + [4]]],
    "round_trips": [["claim", 0.004, [2, 1] + [0] * (len(ROUND_TRIP_BOUNDS) - 1)]],
    "running": 3, "slots": 10, "discarded": 2,
}


def test_a_snapshot_becomes_exactly_these_series() -> None:
    got = samples(render(WorkerCollector(lambda: SNAPSHOT)))
    send = (("queue", "emails"), ("task", "send"))
    assert got[("fastjobs_jobs_started_total", send)] == 7
    assert got[("fastjobs_jobs_started_total", (("queue", "default"), ("task", "report")))] == 1
    finished = {labels[0][1]: v for (name, labels), v in got.items()
                if name == "fastjobs_jobs_finished_total" and labels[1:] == send}
    # Every outcome of a (queue, task) seen, zeros included, so rate() sees the first increment.
    assert finished == {"succeeded": 4, "failed": 2, "timed_out": 0, "dead": 1, "cancelled": 0}
    report = {labels[0][1]: v for (name, labels), v in got.items()
              if name == "fastjobs_jobs_finished_total" and labels[1:] == (("queue", "default"), ("task", "report"))}
    assert report == dict.fromkeys(fastjobs.metrics.OUTCOMES, 0)

    def buckets(name: str, labels: tuple[tuple[str, str], ...]) -> list[tuple[str, float]]:
        return [(dict(k)["le"], v) for (n, k), v in got.items()
                if n == name + "_bucket" and tuple(p for p in k if p[0] != "le") == labels]

    duration = buckets("fastjobs_job_duration_seconds", send)
    assert [le for le, _ in duration] == [repr(float(b)) for b in DURATION_BOUNDS] + ["+Inf"]
    assert [v for _, v in duration] == [1, 1, 3] + [3] * (len(DURATION_BOUNDS) - 3) + [4]  # cumulative
    assert got[("fastjobs_job_duration_seconds_count", send)] == 4
    assert got[("fastjobs_job_duration_seconds_sum", send)] == 12.5
    wait = buckets("fastjobs_job_wait_seconds", send)
    assert [v for _, v in wait] == [3] * len(WAIT_BOUNDS) + [7]
    assert got[("fastjobs_job_wait_seconds_sum", send)] == 0.75
    claim = buckets("fastjobs_backend_round_trip_seconds", (("operation", "claim"),))
    assert [v for _, v in claim] == [2] + [3] * len(ROUND_TRIP_BOUNDS)
    assert got[("fastjobs_backend_round_trip_seconds_count", (("operation", "claim"),))] == 3
    assert got[("fastjobs_jobs_running", ())] == 3
    assert got[("fastjobs_worker_slots", ())] == 10
    assert got[("fastjobs_acks_discarded_total", ())] == 2
    assert {name for name, _ in got} == SAMPLE_NAMES - {"fastjobs_queue_jobs"}


def start(metrics: WorkerMetrics, queue: str, task: str, waits: list[float], attempt: int = 1) -> None:
    """Count jobs of ``queue``/``task`` as started after waiting ``waits`` seconds since they were enqueued."""
    now = 1_000_000.0
    metrics.add_started([JobRecord(f"j{i}", task, queue, attempt=attempt, enqueued_at=now - wait)
                         for i, wait in enumerate(waits)], now)


def test_waits_count_from_enqueue_or_due_and_not_for_retries() -> None:
    metrics = WorkerMetrics()
    now = 1_000_000.0
    metrics.add_started([
        JobRecord("a", "t", "q", attempt=1, enqueued_at=now - 2.0),
        JobRecord("b", "t", "q", attempt=1, enqueued_at=now - 60.0, run_at=now - 0.5),  # due 0.5 s ago
        JobRecord("c", "t", "q", attempt=2, enqueued_at=now - 100.0),  # a retry: started, no wait
        JobRecord("d", "u", "q", attempt=1, enqueued_at=now + 1.0),  # a clock ahead: 0, not negative
    ], now)
    snap = metrics.snapshot()
    assert sorted(snap["started"]) == [["q", "t", 3], ["q", "u", 1]]
    waits = {(q, t): (total, sum(counts)) for q, t, total, counts in snap["wait"]}
    assert waits == {("q", "t"): (2.5, 2), ("q", "u"): (0.0, 1)}


def test_a_live_worker_metrics_is_read_as_counted() -> None:
    running = [2]
    metrics = WorkerMetrics()
    metrics.add_worker(8, lambda: running[0], lambda: 5)
    start(metrics, "q", "t", [0.001, 0.003, 20.0])
    metrics.add_outcome("q", "t", "cancelled", 2)
    metrics.add_round_trip("ack", 0.0004)
    metrics.add_round_trip("ack", 3.0)
    text = render(WorkerCollector(metrics.snapshot))
    got = samples(text)
    qt = (("queue", "q"), ("task", "t"))
    assert got[("fastjobs_jobs_started_total", qt)] == 3
    assert got[("fastjobs_jobs_finished_total", (("outcome", "cancelled"), *qt))] == 2
    assert got[("fastjobs_jobs_finished_total", (("outcome", "succeeded"), *qt))] == 0
    assert got[("fastjobs_job_wait_seconds_bucket", (("le", "0.005"), *qt))] == 2
    assert got[("fastjobs_job_wait_seconds_bucket", (("le", "10.0"), *qt))] == 2
    assert got[("fastjobs_job_wait_seconds_bucket", (("le", "30.0"), *qt))] == 3
    assert got[("fastjobs_job_wait_seconds_sum", qt)] == pytest.approx(20.004)
    assert got[("fastjobs_backend_round_trip_seconds_bucket", (("le", "0.0005"), ("operation", "ack")))] == 1
    assert got[("fastjobs_backend_round_trip_seconds_bucket", (("le", "2.5"), ("operation", "ack")))] == 1
    assert got[("fastjobs_backend_round_trip_seconds_bucket", (("le", "5.0"), ("operation", "ack")))] == 2
    assert got[("fastjobs_backend_round_trip_seconds_bucket", (("le", "+Inf"), ("operation", "ack")))] == 2
    assert (got[("fastjobs_jobs_running", ())], got[("fastjobs_worker_slots", ())]) == (2, 8)
    assert got[("fastjobs_acks_discarded_total", ())] == 5
    running[0] = 0
    assert samples(render(WorkerCollector(metrics.snapshot)))[("fastjobs_jobs_running", ())] == 0


def test_an_empty_worker_shows_its_gauges_and_no_labelled_series() -> None:
    got = samples(render(WorkerCollector(WorkerMetrics(slots=4).snapshot)))
    assert got == {("fastjobs_jobs_running", ()): 0, ("fastjobs_worker_slots", ()): 4,
                   ("fastjobs_acks_discarded_total", ()): 0}


# -- the server --------------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[MetricsServer]:
    served = start_metrics_server(lambda: SNAPSHOT, port=0, token=TOKEN)
    yield served
    served.close()


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Bearer wrong"},
    {"Authorization": f"Bearer {TOKEN}x"},
    {"Authorization": TOKEN},
    {"Authorization": "Basic " + base64.b64encode(b"prometheus:wrong").decode()},
    {"Authorization": "Basic " + base64.b64encode(TOKEN.encode()).decode()},  # no colon: no password
    {"Authorization": "Basic !!!"},
])
def test_a_scrape_without_the_token_gets_401(server: MetricsServer, headers: dict[str, str]) -> None:
    response = httpx.get(server.url, headers=headers)
    assert response.status_code == 401
    assert response.headers.get_list("www-authenticate") == ['Bearer realm="fastjobs"', 'Basic realm="fastjobs"']
    assert b"fastjobs_" not in response.content


def test_the_token_is_accepted_as_bearer_or_as_the_basic_auth_password(server: MetricsServer) -> None:
    bearer = httpx.get(server.url, headers={"Authorization": f"Bearer {TOKEN}"})
    assert bearer.status_code == 200
    assert bearer.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert samples(bearer.text)[("fastjobs_worker_slots", ())] == 10
    basic = httpx.get(server.url, auth=("anyone", TOKEN))
    assert basic.status_code == 200 and basic.text == bearer.text
    assert httpx.get(server.url.replace("/metrics", "/"), auth=("", TOKEN)).status_code == 404
    # What Prometheus asks for when it prefers OpenMetrics.
    om = httpx.get(server.url, auth=("", TOKEN), headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert om.headers["content-type"].startswith("application/openmetrics-text") and om.text.endswith("# EOF\n")


def test_no_auth_serves_anyone_and_binds_127_0_0_1_by_default() -> None:
    served = start_metrics_server(lambda: SNAPSHOT, port=0, token=None)
    try:
        assert served.url == f"http://127.0.0.1:{served.port}/metrics"
        assert httpx.get(served.url).status_code == 200
    finally:
        served.close()
    served.close()  # idempotent


def test_a_port_in_use_is_a_configuration_error_naming_it() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigurationError, match=rf"metrics port 127.0.0.1:{port} is in use.*--metrics-port"):
            start_metrics_server(lambda: SNAPSHOT, port=port, token=TOKEN)


def test_the_token_comes_from_the_argument_else_the_environment_else_it_refuses(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    with pytest.raises(ConfigurationError, match=f"set {TOKEN_ENV}.*--metrics-no-auth"):
        metrics_token()
    assert metrics_token(no_auth=True) is None
    assert metrics_token("given") == "given"
    monkeypatch.setenv(TOKEN_ENV, "from-env")
    assert metrics_token() == "from-env"
    assert metrics_token("given") == "given"
    with pytest.raises(ConfigurationError, match="not both"):
        metrics_token("given", no_auth=True)
    with pytest.raises(ConfigurationError, match="without spaces"):
        metrics_token("two words")


# -- queue counts ------------------------------------------------------------------------


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


async def test_queue_counts_are_read_once_per_window_and_served_from_the_cache(loop_thread: LoopThread) -> None:
    app = fastjobs.App("memory://")

    @app.task(name="t", queue="emails")
    async def t() -> None: ...

    for _ in range(3):
        await t.enqueue()
    depth = QueueDepthCollector(loop_thread.loop, app.backend, cache_seconds=3600)
    queued = ("fastjobs_queue_jobs", (("queue", "emails"), ("state", "queued")))

    def scrape() -> dict[Any, float]:
        return samples(render(depth))

    first = await asyncio.to_thread(scrape)
    assert first[queued] == 3 and first[("fastjobs_queue_jobs", (("queue", "emails"), ("state", "dead")))] == 0
    await t.enqueue()
    assert (await asyncio.to_thread(scrape))[queued] == 3  # inside the window: the cached counts
    assert depth.reads == 1
    depth.cache_seconds = 0
    assert (await asyncio.to_thread(scrape))[queued] == 4
    assert depth.reads == 2
    await app.close()


async def test_a_failing_or_late_backend_serves_the_last_counts_and_warns(
        loop_thread: LoopThread, redis_url: str, caplog: pytest.LogCaptureFixture) -> None:
    prefix = unique_prefix()
    good = fastjobs.App(redis_url, prefix=prefix)
    dead = fastjobs.App(f"redis://127.0.0.1:{free_port()}/0", connect_timeout=0.2)

    @good.task(name="t", queue="q")
    async def t() -> None: ...

    await t.enqueue()
    use = [good]

    async def backend() -> fastjobs.backends.Backend:
        if use[0] is None:
            await asyncio.sleep(5)  # a backend too slow to answer within the timeout
        return await use[0].backend()  # type: ignore[union-attr]

    depth = QueueDepthCollector(loop_thread.loop, backend, cache_seconds=0, timeout=1.0)
    queued = ("fastjobs_queue_jobs", (("queue", "q"), ("state", "queued")))
    assert (await asyncio.to_thread(lambda: samples(render(depth))))[queued] == 1
    for broken in (dead, None):
        use[0] = broken
        with caplog.at_level(logging.WARNING, logger="fastjobs.prometheus"):
            caplog.clear()
            assert (await asyncio.to_thread(lambda: samples(render(depth))))[queued] == 1
        assert "serving the last ones" in caplog.text
    assert "no answer within 1 s" in caplog.text
    assert depth.reads == 3
    await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(good.close(), loop_thread.loop))
    await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(dead.close(), loop_thread.loop))
    await good.close()  # the enqueue's connection, on this loop
    await wipe_namespace(redis_url, prefix)


# -- a supervisor's merge --------------------------------------------------------------


def test_a_finished_childs_counters_stay_and_its_gauges_go() -> None:
    children = ChildSnapshots()
    pipes = [os.pipe() for _ in range(2)]
    for read_end, _ in pipes:
        children.watch(read_end)
    one = {**SNAPSHOT, "started": [["emails", "send", 7]]}
    two = {**SNAPSHOT, "started": [["emails", "send", 3]], "running": 1}
    for (_, write_end), snap in zip(pipes, (one, two)):
        os.write(write_end, json.dumps(snap).encode() + b"\n")

    def wait_for(started: int) -> dict[str, Any]:
        for _ in range(500):
            snap = children.snapshot()
            if snap["started"] and snap["started"][0][2] == started:
                return dict(snap)
            time.sleep(0.01)
        raise AssertionError(children.snapshot())

    both = wait_for(10)
    assert (both["running"], both["slots"], both["discarded"]) == (4, 20, 4)
    # The first child is killed mid-line: the cut line is skipped, its last whole snapshot stays.
    os.write(pipes[0][1], b'{"started": [["emails", "send", 99')
    os.close(pipes[0][1])
    children.join(timeout=0)
    for _ in range(500):
        if children.snapshot()["slots"] == 10:
            break
        time.sleep(0.01)
    after = dict(children.snapshot())
    assert after["started"] == [["emails", "send", 10]]
    assert (after["running"], after["slots"], after["discarded"]) == (1, 10, 4)
    assert after == merge([{**one, "running": 0, "slots": 0}, two])
    os.close(pipes[1][1])


def test_a_reporter_sends_snapshots_through_a_pipe_and_a_last_one_at_close() -> None:
    metrics = WorkerMetrics(slots=5)
    children = ChildSnapshots()
    read_end, write_end = os.pipe()
    children.watch(read_end)
    reporter = SnapshotReporter(write_end, metrics.snapshot, interval=0.05)
    start(metrics, "q", "t", [0.1])
    for _ in range(500):
        if children.snapshot()["started"]:
            break
        time.sleep(0.01)
    assert children.snapshot()["slots"] == 5
    start(metrics, "q", "t", [0.1, 0.2])
    reporter.close()
    children.join(timeout=5)
    final = children.snapshot()
    assert final["started"] == [["q", "t", 3]] and final["slots"] == 0


# -- the Grafana dashboard ---------------------------------------------------------------


async def test_the_grafana_dashboard_uses_only_metrics_the_collectors_expose(loop_thread: LoopThread) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", ())]
    assert len(exprs) >= 7
    used = {m for expr in exprs for m in re.findall(r"\bfastjobs_[a-z_]+", expr)}
    assert used <= SAMPLE_NAMES, used - SAMPLE_NAMES
    assert {"fastjobs_jobs_finished_total", "fastjobs_job_duration_seconds_bucket", "fastjobs_job_wait_seconds_bucket",
            "fastjobs_jobs_running", "fastjobs_worker_slots", "fastjobs_queue_jobs",
            "fastjobs_backend_round_trip_seconds_bucket", "fastjobs_acks_discarded_total"} <= used
    # Every name it uses is really in a scrape of the collectors.
    app = fastjobs.App("memory://")

    @app.task(name="t")
    async def t() -> None: ...

    await t.enqueue()
    depth = QueueDepthCollector(loop_thread.loop, app.backend)
    scraped = await asyncio.to_thread(lambda: {name for name, _ in samples(render(WorkerCollector(lambda: SNAPSHOT), depth))})
    assert used <= scraped == SAMPLE_NAMES, used - scraped
    await app.close()


def test_without_prometheus_client_the_worker_says_which_extra_to_install() -> None:
    code = textwrap.dedent("""
        import sys
        sys.modules["prometheus_client"] = None  # as if it were not installed
        import fastjobs
        app = fastjobs.App("memory://")

        @app.task
        async def noop() -> None: ...

        try:
            app.worker(metrics_port=9100, metrics_token="t")
        except fastjobs.ConfigurationError as exc:
            print(exc)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert 'pip install "fastjobs[prometheus]"' in done.stdout
