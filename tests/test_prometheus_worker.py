"""A Worker in this process on memory:// with its metrics served over HTTP: scraped while jobs
run and after a burst, the counts equal what ran (queue counts read on the worker's loop)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

import fastjobs
import fastjobs.metrics
from fastjobs.prometheus import MetricsServer, QueueDepthCollector, start_metrics_server
from tests.process.metrics_app import build

TOKEN = "in-process"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(autouse=True)
def fresh_process_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    """The counters are per process: each test starts from none."""
    monkeypatch.setattr(fastjobs.metrics, "PROCESS", None)


async def scrape(server: MetricsServer | str) -> Samples:
    # An async client: the queue counts are read on this very loop, which must stay free.
    async with httpx.AsyncClient() as client:
        url = server if isinstance(server, str) else server.url
        response = await client.get(url, headers={"Authorization": f"Bearer {TOKEN}"})
    response.raise_for_status()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def nonzero(got: Samples, name: str) -> dict[tuple[str, ...], float]:
    return {tuple(v for _, v in labels): value for (n, labels), value in got.items() if n == name and value}


@pytest.fixture
async def app() -> AsyncIterator[fastjobs.App]:
    app = build("memory://")
    yield app
    await app.close()


async def test_after_a_burst_the_scrape_counts_exactly_what_ran(app: fastjobs.App) -> None:
    await app.enqueue_many([app.tasks["ok"].call(i) for i in range(25)] + [app.tasks["flaky"].call()] * 4
                           + [app.tasks["slow"].call()] * 2)
    worker = app.worker(burst=True, handle_signals=False, concurrency=8, metrics=True)
    assert worker.metrics is not None
    server = start_metrics_server(worker.metrics.snapshot, port=0, token=TOKEN,
                                  queue_depth=QueueDepthCollector(asyncio.get_running_loop(), app.backend))
    try:
        await worker.run()
        got = await scrape(server)
    finally:
        server.close()
    # Labels in sorted order: (outcome,) queue, task.
    assert nonzero(got, "fastjobs_jobs_finished_total") == {
        ("succeeded", "fast", "ok"): 25, ("failed", "fast", "flaky"): 4, ("dead", "fast", "flaky"): 4,
        ("timed_out", "slow", "slow"): 2, ("dead", "slow", "slow"): 2,
    }
    assert nonzero(got, "fastjobs_jobs_started_total") == {("fast", "ok"): 25, ("fast", "flaky"): 8, ("slow", "slow"): 4}
    assert nonzero(got, "fastjobs_job_duration_seconds_count") == {("fast", "ok"): 25, ("fast", "flaky"): 8,
                                                                   ("slow", "slow"): 4}
    # Both timed-out attempts ran their 0.05 s timeout: in the 0.05 < t <= 0.1 bucket or near it.
    assert got[("fastjobs_job_duration_seconds_sum", (("queue", "slow"), ("task", "slow")))] >= 4 * 0.05
    # The worker has stopped: its slots no longer count (its counters do).
    assert (got[("fastjobs_worker_slots", ())], got[("fastjobs_jobs_running", ())]) == (0, 0)
    assert got[("fastjobs_acks_discarded_total", ())] == 0
    assert nonzero(got, "fastjobs_queue_jobs") == {("fast", "succeeded"): 25, ("fast", "dead"): 4, ("slow", "dead"): 2}
    assert worker.succeeded == 25


async def test_a_scrape_while_jobs_run_shows_them_running(app: fastjobs.App) -> None:
    release = asyncio.Event()

    @app.task(name="held", queue="fast")
    async def held() -> None:
        await release.wait()

    await app.enqueue_many([held.call()] * 3)
    # The public way: the Worker serves its own metrics while it runs (port 0: any free one).
    worker = app.worker(["fast"], handle_signals=False, concurrency=5, metrics_port=0, metrics_token=TOKEN)
    running = asyncio.ensure_future(worker.run())
    for _ in range(100):
        if worker.metrics_url is not None:
            break
        await asyncio.sleep(0.01)
    server = worker.metrics_url
    assert server is not None and server.startswith("http://127.0.0.1:")
    try:
        for _ in range(200):
            got = await scrape(server)
            if got.get(("fastjobs_jobs_running", ())) == 3:
                break
            await asyncio.sleep(0.02)
        assert got[("fastjobs_jobs_running", ())] == 3
        assert got[("fastjobs_worker_slots", ())] == 5
        assert nonzero(got, "fastjobs_jobs_started_total") == {("fast", "held"): 3}
        assert nonzero(got, "fastjobs_jobs_finished_total") == {}
        release.set()
        for _ in range(200):
            got = await scrape(server)
            if nonzero(got, "fastjobs_jobs_finished_total") == {("succeeded", "fast", "held"): 3}:
                break
            await asyncio.sleep(0.02)
        assert nonzero(got, "fastjobs_jobs_finished_total") == {("succeeded", "fast", "held"): 3}
        assert got[("fastjobs_jobs_running", ())] == 0
    finally:
        worker.request_stop()
        await running
    assert worker.metrics_url is None  # closed with the worker
    with pytest.raises(httpx.ConnectError):
        await scrape(server)
