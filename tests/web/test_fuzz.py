"""Fuzzing the dashboard's API with schemathesis from its own OpenAPI document, on every backend:
authenticated, no request makes a 500, and every response matches the schema (and a documented status).

The dashboard is served by uvicorn over real HTTP, in a thread with its own event loop: the App
is made, seeded, served, closed and its namespace wiped on that loop, so its Redis / PostgreSQL
connections never meet the test's loop (calling the ASGI app from the test's thread made them
outlive their loop at teardown). schemathesis calls ``http://127.0.0.1:<port>`` with ``requests``.

A bounded number of examples per operation keeps each backend's run well under a minute.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

import fastjobs
from fastjobs.backends import AckKind
from fastjobs.web import create_app
from tests.app.helpers import failing_task, finish_claimed, make_dead
from tests.backends import IMPLEMENTED, unique_prefix, wipe_namespace
from tests.contract.conftest import backend_url
from tests.web.conftest import TOKEN

schemathesis = pytest.importorskip("schemathesis", reason='fuzzing needs schemathesis: pip install -e ".[test]"')
uvicorn = pytest.importorskip("uvicorn")
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

EXAMPLES = 25
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance]


async def seed(app: fastjobs.App) -> dict[str, list[str]]:
    """Jobs in several states (queued with tags and hostile text, dead with an error, succeeded)
    and a periodic task; the jobs' ids by state."""

    @app.task(name="fuzz.ok", queue="fuzz")
    async def ok(*args: Any, **kwargs: Any) -> None: ...

    @app.periodic(30.0, name="fuzz.tick")
    async def tick() -> None: ...

    queued = await app.enqueue_many([ok.options(tags=["t"]).call(i, "<script>alert(1)</script>") for i in range(5)])
    dead = await make_dead(app, failing_task(app), 3)
    await app.enqueue_many([ok.options(queue="fuzz.done").call(i) for i in range(2)])
    succeeded = await finish_claimed(app, "fuzz.done", 2, AckKind.SUCCEED)
    return {"queued": list(queued.ids), "dead": dead, "succeeded": succeeded}


class ServedDashboard:
    """A seeded App's dashboard served by uvicorn in a thread of its own (its own event loop)."""

    def __init__(self, url: str) -> None:
        self.url, self.prefix = url, unique_prefix()
        self.server: Any = None
        self.port = 0
        self.jobs: dict[str, list[str]] = {}
        self.error: BaseException | None = None
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, name="fuzz-dashboard", daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # handed to the test's thread
            self.error = exc
        finally:
            self.ready.set()

    async def _serve(self) -> None:
        app = fastjobs.App(self.url, prefix=self.prefix)
        try:
            self.jobs = await seed(app)
            config = uvicorn.Config(create_app(app, token=TOKEN), host="127.0.0.1", port=0, log_level="warning",
                                    lifespan="on")
            self.server = uvicorn.Server(config)
            task = asyncio.ensure_future(self.server.serve())
            while not self.server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("uvicorn stopped before it started")
                await asyncio.sleep(0.01)
            self.port = self.server.servers[0].sockets[0].getsockname()[1]
            self.ready.set()
            await task  # until stop(); the lifespan's end closes the dashboard's events hub
        finally:
            try:
                await app.close()
            finally:
                await wipe_namespace(self.url, self.prefix)

    def start(self) -> None:
        self.thread.start()
        if not self.ready.wait(60):
            raise AssertionError("the dashboard did not start in 60 s")
        if self.error is not None:
            raise self.error

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
        self.thread.join(30)
        assert not self.thread.is_alive(), "the dashboard's server did not stop in 30 s"
        if self.error is not None:
            raise self.error


@pytest.fixture(scope="module", params=IMPLEMENTED)
def served(request: pytest.FixtureRequest) -> Iterator[ServedDashboard]:
    """The seeded dashboard of each backend, on a fresh namespace wiped at the end."""
    dashboard = ServedDashboard(backend_url(str(request.param), request))
    dashboard.start()
    try:
        yield dashboard
    finally:
        dashboard.stop()


@pytest.fixture(scope="module")
def api_schema(served: ServedDashboard) -> Any:
    return schemathesis.openapi.from_url(f"{served.base}/api/openapi.json", wait_for_schema=10)


# The login form is tested on its own (its failures would lock the fuzzer out for a minute: every
# later request answers 429); the events WebSocket cannot be called as plain HTTP (its 426 is tested
# in test_api.py). The filters go on the lazy schema: on the fixture's schema they are not applied.
schema = schemathesis.pytest.from_fixture("api_schema").include(path_regex="^/api/").exclude(path="/api/events")


def test_the_seeded_jobs_answer_by_the_schema(api_schema: Any, served: ServedDashboard) -> None:
    """Random ids are unknown ones (404): the seeded jobs' own pages and actions, checked the same way.
    Runs before the fuzzing (which deletes and clears jobs at random) on each backend: pytest keeps
    the module's order within each backend's group."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    calls = [("GET", job_id) for ids in served.jobs.values() for job_id in ids]
    calls += [("POST", f"{served.jobs['dead'][0]}/retry"), ("POST", f"{served.jobs['queued'][0]}/cancel"),
              ("DELETE", served.jobs["succeeded"][0])]
    statuses = []
    for method, path in calls:
        job_id, _, action = path.partition("/")
        template = "/api/jobs/{id}" + (f"/{action}" if action else "")
        case = api_schema[template][method].Case(path_parameters={"id": job_id})
        response = case.call(base_url=served.base, headers=headers, timeout=30)
        case.validate_response(response, checks=CHECKS)
        statuses.append(response.status_code)
    assert statuses == [200] * len(statuses), statuses


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_answers_by_its_schema_and_never_500(case: Any, served: ServedDashboard) -> None:
    response = case.call(base_url=served.base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    case.validate_response(response, checks=CHECKS)


def test_the_document_lists_every_route() -> None:
    from fastjobs.web.openapi import ENDPOINTS, document
    from starlette.routing import Route

    web = create_app(fastjobs.App("memory://"), token=TOKEN)
    doc = document()
    routes = {(m, r.path) for r in web.routes if isinstance(r, Route) and "{rest:path}" not in r.path
              for m in (r.methods or ()) if m != "HEAD"}
    documented = {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}
    assert routes == documented
    assert len(ENDPOINTS) == len(documented)
    assert doc["components"]["securitySchemes"].keys() == {"bearerAuth", "cookieAuth"}
