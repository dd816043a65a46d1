"""The dashboard's REST API on every backend: each endpoint's answer and its errors."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

import fastjobs
from tests.app.helpers import failing_task, make_dead

XSS = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>']


def ok_task(app: fastjobs.App, name: str = "web.ok", queue: str = "web") -> fastjobs.Task[..., Any]:
    async def work(*args: Any, **kwargs: Any) -> None:
        return None

    return app.task(name=name, queue=queue)(work)


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code and isinstance(body["detail"], str), body
    return body


# -- reading ----------------------------------------------------------------------------


async def test_session_of_a_bearer_client(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/session")
    assert r.status_code == 200 and r.json() == {"role": "admin", "csrf": None}


async def test_stats_counts_queues_states_workers_and_throughput(app: fastjobs.App, client: httpx.AsyncClient) -> None:
    task = ok_task(app)
    await app.enqueue_many([task.call(i) for i in range(3)])
    await app.pause("web")
    r = await client.get("/api/stats")
    assert r.status_code == 200
    body = r.json()
    assert body["queues"]["web"]["queued"] == 3 and body["totals"]["queued"] == 3
    assert body["paused"] == ["web"]
    assert body["workers"] == {"alive": 0, "gone": 0}
    assert body["throughput"]["jobs_per_s"] == 0 and body["throughput"]["failure_rate"] is None


async def test_jobs_lists_filters_and_pages(app: fastjobs.App, client: httpx.AsyncClient) -> None:
    task = ok_task(app)
    handles = await app.enqueue_many([task.options(tags=["t1"]).call(i) for i in range(5)])
    r = await client.get("/api/jobs", params={"state": "queued", "queue": "web", "limit": 2})
    page = r.json()
    assert r.status_code == 200 and len(page["jobs"]) == 2 and page["cursor"]
    row = page["jobs"][0]
    assert set(row) == {"id", "task", "queue", "state", "attempt", "max_attempts", "priority", "tags",
                        "enqueued_at", "started_at", "finished_at", "error"}
    assert row["tags"] == ["t1"] and row["task"] == "web.ok" and row["error"] is None
    seen = [j["id"] for j in page["jobs"]]
    while page["cursor"]:
        page = (await client.get("/api/jobs", params={"state": "queued", "queue": "web", "limit": 2,
                                                      "cursor": page["cursor"]})).json()
        seen += [j["id"] for j in page["jobs"]]
    assert sorted(seen) == sorted(handles.ids)
    r = await client.get("/api/jobs", params=[("state", "dead,cancelled"), ("state", "queued"), ("tag", "t1")])
    assert len(r.json()["jobs"]) == 5
    r = await client.get("/api/jobs", params={"since": "2020-01-01T00:00:00Z", "until": time.time() + 60})
    assert len(r.json()["jobs"]) == 5
    assert (await client.get("/api/jobs", params={"task": "other"})).json() == {"jobs": [], "cursor": None}


async def test_jobs_refuses_bad_filters(client: httpx.AsyncClient) -> None:
    for params in ({"state": "nope"}, {"limit": 0}, {"limit": "x"}, {"limit": 1001}, {"cursor": "garbage"},
                   {"since": "yesterday"}, {"since": 10, "until": 5}, {"since": "-1"}, {"queue": "a b"}):
        assert_error(await client.get("/api/jobs", params=params), 400, "bad_request")


async def test_job_detail_has_every_field_and_errors(app: fastjobs.App, client: httpx.AsyncClient) -> None:
    task = failing_task(app)
    (job_id,) = await make_dead(app, task, 1, meta={"who": "me"})
    r = await client.get(f"/api/jobs/{job_id}")
    assert r.status_code == 200
    job = r.json()
    assert job["state"] == "dead" and job["args"] == [0] and job["kwargs"] == {} and job["meta"] == {"who": "me"}
    assert job["error"]["type"] == "ValueError" and job["errors"][0]["traceback"] == "Traceback ..."
    for name in ("result", "progress", "run_at", "unique_key", "depends_on", "pending_parents", "failed_parents",
                 "batch_id", "limit_key"):
        assert name in job
    assert_error(await client.get("/api/jobs/0123456789abcdef0123456789abcdef"), 404, "not_found")


async def test_xss_payloads_come_back_as_plain_json_strings(app: fastjobs.App, client: httpx.AsyncClient) -> None:
    task = ok_task(app, name="web.<b>task</b>")
    job = await task.options(tags=[XSS[1][:40]], meta={XSS[0]: XSS[1]}).enqueue(XSS[0], XSS[1], note=XSS[0])
    r = await client.get(f"/api/jobs/{job.id}")
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["args"] == XSS and body["kwargs"] == {"note": XSS[0]} and body["meta"] == {XSS[0]: XSS[1]}
    assert body["task"] == "web.<b>task</b>"
    listed = (await client.get("/api/jobs")).json()["jobs"]
    assert listed[0]["task"] == "web.<b>task</b>" and listed[0]["tags"] == [XSS[1][:40]]


async def test_values_that_are_not_json_come_back_as_repr_text(app: fastjobs.App, client: httpx.AsyncClient) -> None:
    task = ok_task(app)
    job = await task.enqueue(b"\x00bytes", 1.5, [1, [2, {"k": None}]])
    body = (await client.get(f"/api/jobs/{job.id}")).json()
    assert body["args"] == ["b'\\x00bytes'", 1.5, [1, [2, {"k": None}]]]


# -- acting on jobs -----------------------------------------------------------------------


async def test_retry_cancel_delete_one_job(app: fastjobs.App, client: httpx.AsyncClient) -> None:
    task = failing_task(app)
    (dead,) = await make_dead(app, task, 1)
    r = await client.post(f"/api/jobs/{dead}/retry")
    assert r.status_code == 200 and r.json() == {"ok": True}
    assert (await app.get_job(dead)).state == "queued"  # type: ignore[union-attr]
    assert_error(await client.post(f"/api/jobs/{dead}/retry"), 409, "wrong_state")
    assert (await client.post(f"/api/jobs/{dead}/cancel")).json() == {"ok": True}
    assert_error(await client.post(f"/api/jobs/{dead}/cancel"), 409, "wrong_state")
    assert (await client.delete(f"/api/jobs/{dead}")).json() == {"ok": True}
    assert await app.get_job(dead) is None
    missing = "0123456789abcdef0123456789abcdef"
    for response in (await client.post(f"/api/jobs/{missing}/retry"), await client.post(f"/api/jobs/{missing}/cancel"),
                     await client.delete(f"/api/jobs/{missing}")):
        assert_error(response, 404, "not_found")


async def test_delete_of_an_active_job_is_409(app: fastjobs.App, client: httpx.AsyncClient) -> None:
    task = ok_task(app)
    job = await task.enqueue()
    assert await (await app.backend()).claim(["web"], 1, 60.0)
    body = assert_error(await client.delete(f"/api/jobs/{job.id}"), 409, "wrong_state")
    assert body["state"] == "active"


async def test_edit_and_retry(app: fastjobs.App, client: httpx.AsyncClient) -> None:
    task = failing_task(app)
    (dead,) = await make_dead(app, task, 1)
    r = await client.post(f"/api/jobs/{dead}/retry", json={"args": [7], "kwargs": {}, "queue": "ops2",
                                                           "priority": 5, "max_attempts": 4})
    assert r.status_code == 200, r.text
    info = await app.get_job(dead)
    assert info is not None and info.args == (7,) and info.queue == "ops2" and info.priority == 5
    assert info.max_attempts == 4
    (other,) = await make_dead(app, task, 1)
    for body in ({"args": "x"}, {"kwargs": [1]}, {"priority": "high"}, {"queue": 3}, {"nope": 1}, [1]):
        assert_error(await client.post(f"/api/jobs/{other}/retry", json=body), 400, "bad_request")
    r = await client.post(f"/api/jobs/{other}/retry", content=b"{not json", headers={"content-type": "application/json"})
    assert_error(r, 400, "bad_request")


async def test_bulk_actions_by_ids_and_by_filter(app: fastjobs.App, client: httpx.AsyncClient) -> None:
    task = failing_task(app)
    ids = await make_dead(app, task, 4)
    r = await client.post("/api/jobs/actions", json={"action": "retry", "ids": ids[:2]})
    assert r.json() == {"done": 2}
    r = await client.post("/api/jobs/actions", json={"action": "delete", "filter": {"state": "dead", "queue": "ops"}})
    assert r.json() == {"done": 2}
    r = await client.post("/api/jobs/actions", json={"action": "cancel", "filter": {"queue": "ops"}})
    assert r.json() == {"done": 2}
    for body in ({"action": "explode", "ids": []}, {"action": "retry"}, {"action": "retry", "ids": [], "filter": {}},
                 {"action": "retry", "ids": [1]}, {"action": "retry", "filter": {"color": "red"}},
                 {"action": "retry", "filter": {"state": "queued"}}, {"action": "retry", "filter": []}):
        assert_error(await client.post("/api/jobs/actions", json=body), 400, "bad_request")


async def test_bulk_action_over_1000_jobs_needs_confirm(app: fastjobs.App, client: httpx.AsyncClient) -> None:
    task = failing_task(app)
    await make_dead(app, task, 1001)
    body = assert_error(await client.post("/api/jobs/actions", json={"action": "delete", "filter": {"state": "dead"}}),
                        409, "confirm")
    assert body["count"] == 1001
    assert await app.count_matching(state="dead") == 1001
    ids = [f"id{i}" for i in range(1001)]
    assert_error(await client.post("/api/jobs/actions", json={"action": "delete", "ids": ids}), 409, "confirm")
    r = await client.post("/api/jobs/actions", json={"action": "delete", "filter": {"state": "dead"}, "confirm": True})
    assert r.json() == {"done": 1001}


# -- queues, workers, history, dead letters, periodic -----------------------------------


async def test_queues_pause_resume_clear(app: fastjobs.App, client: httpx.AsyncClient) -> None:
    task = ok_task(app)
    await app.enqueue_many([task.call(i) for i in range(3)])
    assert (await client.post("/api/queues/web/pause")).json() == {"ok": True}
    rows = (await client.get("/api/queues")).json()
    (row,) = [q for q in rows if q["name"] == "web"]
    assert row["paused"] is True and row["counts"]["queued"] == 3 and row["broken"] is None
    assert row["oldest_age"] is not None and row["oldest_age"] >= 0 and row["jobs_per_s"] == 0
    assert row["p50"] is None and row["p95"] is None
    assert (await client.post("/api/queues/web/resume")).json() == {"ok": True}
    assert await app.paused() == []
    assert (await client.post("/api/queues/web/clear")).json() == {"cleared": 3}
    assert_error(await client.post("/api/queues/a%20b/pause"), 400, "bad_request")


async def test_workers_history_and_series(app: fastjobs.App, client: httpx.AsyncClient) -> None:
    task = ok_task(app)
    await app.enqueue_many([task.call(i) for i in range(4)])
    await app.run_worker(["web"], burst=True, concurrency=4)
    workers = (await client.get("/api/workers")).json()
    assert isinstance(workers, list)
    history = (await client.get("/api/history", params={"queue": "web"})).json()
    assert sum(b["succeeded"] for b in history) == 4 and history[0]["task"] == "web.ok"
    assert (await client.get("/api/history", params={"step": "1h"})).json()[0]["runs"] == 4
    series = (await client.get("/api/history/series", params={"range": "1h"})).json()
    assert len(series) == 60 and sum(p["succeeded"] for p in series) == 4
    assert len((await client.get("/api/history/series", params={"range": "24h"})).json()) == 24
    month = (await client.get("/api/history/series", params={"range": "30d", "queue": "web"})).json()
    assert len(month) == 30 and month[-1]["runs"] == 4
    r = (await client.get("/api/stats")).json()
    assert r["throughput"]["failure_rate"] in (None, 0.0)
    queue = [q for q in (await client.get("/api/queues")).json() if q["name"] == "web"][0]
    assert queue["jobs_per_s"] > 0 and queue["p50"] is not None
    assert_error(await client.get("/api/history", params={"step": "1d"}), 400, "bad_request")
    assert_error(await client.get("/api/history/series", params={"range": "1y"}), 400, "bad_request")


async def test_dead_letter_groups_and_their_actions(app: fastjobs.App, client: httpx.AsyncClient) -> None:
    task = failing_task(app)
    ids = await make_dead(app, task, 3)
    body = (await client.get("/api/dead/groups")).json()
    assert body["scanned"] == 3 and body["complete"] is True
    assert len(body["groups"]) == 3  # each message names its job id: three groups of one
    group = body["groups"][0]
    assert group["type"] == "ValueError" and group["count"] == 1 and group["queues"] == ["ops"]
    assert group["sample_ids"][0] in ids
    r = await client.post("/api/dead/groups/retry", json={"type": "ValueError", "message": group["message"]})
    assert r.json() == {"done": 1}
    other = body["groups"][1]
    r = await client.post("/api/dead/groups/delete", json={"type": other["type"], "message": other["message"],
                                                          "queue": "ops"})
    assert r.json() == {"done": 1}
    assert (await client.post("/api/dead/groups/delete", json={"type": "X", "message": "y"})).json() == {"done": 0}
    assert_error(await client.post("/api/dead/groups/retry", json={"type": "X"}), 400, "bad_request")


async def test_dead_letter_groups_read_a_bounded_sample(app: fastjobs.App, client: httpx.AsyncClient,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """GET groups the newest dead jobs it can read in its time budget (at most DEAD_SAMPLE) and
    says there are more; a group's action reads further (DEAD_SCAN)."""
    from fastjobs.web import api

    task = failing_task(app)
    await make_dead(app, task, 7)
    monkeypatch.setattr(api, "DEAD_PAGE", 2)
    monkeypatch.setattr(api, "DEAD_SAMPLE", 5)
    body = (await client.get("/api/dead/groups")).json()
    assert body["scanned"] == 5 and body["complete"] is False and sum(g["count"] for g in body["groups"]) == 5
    monkeypatch.setattr(api, "DEAD_BUDGET", 0.0)  # no time left after the first page: that page only
    body = (await client.get("/api/dead/groups")).json()
    assert body["scanned"] == 2 and body["complete"] is False
    monkeypatch.setattr(api, "DEAD_SCAN", 6)
    oldest = (await app.jobs(state="dead", limit=7)).jobs[-1]
    assert oldest.error is not None
    r = await client.post("/api/dead/groups/retry", json={"type": oldest.error.type, "message": oldest.error.message})
    assert r.json() == {"done": 0}  # the 7th newest is past the 6 an action reads


async def test_periodic_tasks(app: fastjobs.App, client: httpx.AsyncClient) -> None:
    @app.periodic(60.0, name="web.tick", queue="ticks")
    async def tick() -> None: ...

    assert (await client.get("/api/periodic")).json()[0]["last_run"] is None
    await tick.enqueue()
    (row,) = (await client.get("/api/periodic")).json()
    assert row["task"] == "web.tick" and row["queue"] == "ticks" and row["schedule"] == "every 60 s"
    assert row["next_run"] > time.time() - 1 and row["last_state"] == "queued" and row["last_job_id"]


async def test_unknown_paths_and_methods_answer_json_errors(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/api/nope"), 404, "not_found")
    assert_error(await client.put("/api/stats"), 405, "method_not_allowed")
    assert_error(await client.get("/api/events"), 426, "upgrade_required")


async def test_backend_failure_is_503(make_app: Any, backend_kind: str) -> None:
    from fastjobs.web import create_app
    from tests.web.conftest import TOKEN, client_for

    if backend_kind == "memory":
        return  # the memory backend cannot be unreachable
    url = {"redis": "redis://127.0.0.1:1/0", "postgres": "postgresql://postgres@127.0.0.1:1/test"}[backend_kind]
    down = fastjobs.App(url, connect_timeout=0.2)
    async with client_for(create_app(down, token=TOKEN)) as c:
        assert_error(await c.get("/api/stats"), 503, "unavailable")
    await down.close()
