"""The FastAPI example, through FastAPI's TestClient (which runs the lifespan) and a real worker."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import fastjobs.testing
import psutil
import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from .main import api
from .tasks import jobs


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


ADMIN = basic("admin", "change-me")


@pytest.fixture(autouse=True)
async def close_jobs() -> AsyncIterator[None]:
    yield
    await jobs.close()  # the connections the worker and the checks opened in this test's event loop


async def test_the_endpoint_enqueues_and_a_worker_runs_the_job() -> None:
    async with fastjobs.testing.run_jobs(jobs) as enqueued:
        with TestClient(api) as client:
            response = client.post("/signups", json={"email": "ada@example.com", "name": "Ada"})
    assert response.status_code == 202
    [job] = enqueued
    assert (job.task, job.args, job.kwargs, job.queue, job.max_attempts) == (
        "emails.welcome", ("ada@example.com", "Ada"), {}, "emails", 5)
    assert response.json() == {"job_id": job.id}
    info = await jobs.get_job(job.id)
    assert info is not None
    assert (info.state, info.result) == ("succeeded", "welcome email sent to Ada <ada@example.com>")


def connections_to_the_backend() -> int:
    """This process's open TCP connections to the jobs' server."""
    port = urlsplit(jobs.url).port
    return sum(c.status == psutil.CONN_ESTABLISHED and bool(c.raddr) and c.raddr.port == port
               for c in psutil.Process().net_connections("tcp"))


@pytest.mark.skipif(not jobs.url.startswith("redis://"), reason="counts TCP connections to a Redis server")
async def test_the_lifespan_opens_and_closes_the_app() -> None:
    before = connections_to_the_backend()
    with TestClient(api):
        assert connections_to_the_backend() > before  # connected at start-up, before any request
    assert connections_to_the_backend() == before


async def test_a_bad_request_enqueues_nothing() -> None:
    with fastjobs.testing.capture_enqueues(jobs) as enqueued, TestClient(api) as client:
        response = client.post("/signups", json={"email": "ada@example.com"})
    assert response.status_code == 422
    assert enqueued == []


async def test_the_dashboard_refuses_anyone_the_apps_auth_refuses() -> None:
    with TestClient(api) as client:
        for headers in ({}, basic("admin", "wrong"), basic("mallory", "change-me"), {"Authorization": "Bearer x"}):
            for path in ("/jobs/", "/jobs/api/stats", "/me"):
                response = client.get(path, headers=headers)
                assert response.status_code == 401, (path, headers)
                assert response.headers["www-authenticate"] == 'Basic realm="admin"'
            with pytest.raises(WebSocketDisconnect) as closed, client.websocket_connect("/jobs/api/events", headers=headers):
                pass
            assert closed.value.code == 1008


async def test_the_dashboard_serves_the_apps_admins() -> None:
    async with fastjobs.testing.run_jobs(jobs):
        with TestClient(api) as client:
            assert client.get("/me", headers=ADMIN).json() == {"user": "admin"}
            job_id = client.post("/signups", json={"email": "bo@example.com", "name": "Bo"}).json()["job_id"]
            page = client.get("/jobs/", headers=ADMIN)
            assert page.status_code == 200
            assert page.headers["content-type"].startswith("text/html")
            detail = client.get(f"/jobs/api/jobs/{job_id}", headers=ADMIN)
            assert detail.status_code == 200
            assert (detail.json()["task"], detail.json()["state"]) == ("emails.welcome", "queued")
            with client.websocket_connect("/jobs/api/events", headers=ADMIN) as live:
                live.close()
