"""Fuzzing the dashboard's API with schemathesis from its own OpenAPI document: authenticated,
no request makes a 500, and every response matches the schema (and a documented status).

A bounded number of examples per operation keeps it well under a minute. The memory backend
(the API's logic is the same on every backend; their answers are tested in test_api.py).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, settings

import fastjobs
from fastjobs.web import create_app
from tests.app.helpers import failing_task, make_dead
from tests.web.conftest import TOKEN

schemathesis = pytest.importorskip("schemathesis", reason='fuzzing needs schemathesis: pip install -e ".[test]"')
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

EXAMPLES = 25
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance]


def seeded_app() -> fastjobs.App:
    """A memory App with jobs in several states, tags, errors and a periodic task."""
    app = fastjobs.App("memory://")

    @app.task(name="fuzz.ok", queue="fuzz")
    async def ok(*args: Any, **kwargs: Any) -> None: ...

    @app.periodic(30.0, name="fuzz.tick")
    async def tick() -> None: ...

    async def seed() -> None:
        await app.enqueue_many([ok.options(tags=["t"]).call(i, "<script>alert(1)</script>") for i in range(5)])
        await make_dead(app, failing_task(app), 3)

    app.run_sync(seed())
    return app


@pytest.fixture(scope="module")
def api_schema() -> Any:
    web = create_app(seeded_app(), token=TOKEN)
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", web)
    # The login form is tested on its own (its failures would lock the fuzzer out for a minute);
    # the events WebSocket cannot be called as plain HTTP (its 426 is tested in test_api.py).
    return schema.include(path_regex="^/api/").exclude(path="/api/events")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_answers_by_its_schema_and_never_500(case: Any) -> None:
    response = case.call(headers={"Authorization": f"Bearer {TOKEN}"})
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
