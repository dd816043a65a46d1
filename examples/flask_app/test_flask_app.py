"""The Flask example, through Flask's test client and a real worker."""

from __future__ import annotations

from collections.abc import AsyncIterator

import fastjobs.testing
import pytest

from .tasks import jobs
from .web import app


@pytest.fixture(autouse=True)
async def close_jobs() -> AsyncIterator[None]:
    yield
    await jobs.close()  # this test's event loop's connections, and enqueue_sync's


async def test_the_view_enqueues_and_a_worker_runs_the_job() -> None:
    client = app.test_client()
    async with fastjobs.testing.run_jobs(jobs) as enqueued:
        response = client.post("/exports", json={"user_id": 7, "format": "xlsx"})
        assert response.status_code == 202
        assert client.get(f"/exports/{response.json['job_id']}").json == {"state": "queued", "result": None}
    [job] = enqueued
    assert (job.task, job.args, job.kwargs, job.queue, job.timeout) == (
        "reports.export", (7,), {"fmt": "xlsx"}, "reports", 300)
    assert response.json == {"job_id": job.id}
    assert client.get(f"/exports/{job.id}").json == {"state": "succeeded", "result": "exports/user-7.xlsx"}


async def test_a_bad_request_enqueues_nothing() -> None:
    client = app.test_client()
    with fastjobs.testing.capture_enqueues(jobs) as enqueued:
        for body in ({}, {"user_id": "7"}, {"user_id": 7, "format": "pdf"}):
            assert client.post("/exports", json=body).status_code == 400
    assert enqueued == []
    assert client.get("/exports/no-such-job").status_code == 404
