"""The OpenAPI 3.1 document of the dashboard, served at ``api/openapi.json``.

:data:`ENDPOINTS` is the one table of the dashboard's HTTP interface: the server builds
its routes from it (each row names its handler), and :func:`document` builds the OpenAPI
document from it and :data:`SCHEMAS`, so nothing can be served undocumented. Paths are
relative to where the dashboard is mounted (``servers`` says ``.`` by default).

Example:
    >>> doc = document()
    >>> doc["openapi"], "/api/jobs" in doc["paths"]
    ('3.1.0', True)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .._version import __version__


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(kind: str) -> dict[str, Any]:
    return {"type": [kind, "null"]}


def array(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items}


def obj(properties: dict[str, Any], *, extra: bool = False) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(properties),
            "additionalProperties": extra}


NUMBER, INTEGER, STRING, BOOLEAN = {"type": "number"}, {"type": "integer"}, {"type": "string"}, {"type": "boolean"}
ANY: dict[str, Any] = {}
STATES = ["scheduled", "queued", "active", "succeeded", "retry_pending", "dead", "cancelled", "waiting"]

_SUMMARY = {
    "id": STRING, "task": STRING, "queue": STRING, "state": {"type": "string", "enum": STATES},
    "attempt": INTEGER, "max_attempts": INTEGER, "priority": INTEGER, "tags": array(STRING),
    "enqueued_at": NUMBER, "started_at": nullable("number"), "finished_at": nullable("number"),
    "error": {"oneOf": [{"type": "null"}, obj({"type": STRING, "message": STRING})]},
}

SCHEMAS: dict[str, dict[str, Any]] = {
    "Error": {"type": "object", "properties": {"error": STRING, "detail": STRING, "count": INTEGER,
                                               "state": STRING},
              "required": ["error", "detail"]},
    "Ok": obj({"ok": {"const": True}}),
    "Done": obj({"done": INTEGER}),
    "Cleared": obj({"cleared": INTEGER}),
    "Session": obj({"role": {"enum": ["admin", "read"]}, "csrf": nullable("string")}),
    "Stats": obj({
        "queues": {"type": "object", "additionalProperties": {
            "type": "object", "additionalProperties": {"type": ["integer", "string"]}}},
        "paused": array(STRING),
        "totals": {"type": "object", "additionalProperties": INTEGER},
        "estimated": {"type": "object", "additionalProperties": array(STRING)},
        "workers": obj({"alive": INTEGER, "gone": INTEGER}),
        "throughput": obj({"jobs_per_s": NUMBER, "failure_rate": nullable("number")}),
    }),
    "JobSummary": obj(_SUMMARY),
    "JobPage": obj({"jobs": array(ref("JobSummary")), "cursor": nullable("string")}),
    "AttemptError": obj({"attempt": INTEGER, "type": STRING, "message": STRING, "traceback": STRING,
                         "at": NUMBER, "worker": nullable("string"), "started_at": nullable("number")}),
    "JobDetail": obj({
        **_SUMMARY, "args": {"type": "array"}, "kwargs": {"type": "object"}, "meta": {"type": "object"},
        "result": ANY, "errors": array(ref("AttemptError")),
        "progress": {"oneOf": [{"type": "null"}, obj({"fraction": {"type": ["number", "string"]},
                                                        "message": STRING, "at": NUMBER})]},
        "run_at": NUMBER, "unique_key": nullable("string"), "depends_on": array(STRING),
        "pending_parents": INTEGER, "failed_parents": INTEGER, "batch_id": nullable("string"),
        "limit_key": nullable("string"),
    }),
    "RetryEdit": {"type": "object", "additionalProperties": False, "properties": {
        "args": {"type": "array"}, "kwargs": {"type": "object"}, "queue": STRING, "priority": INTEGER,
        "max_attempts": INTEGER}},
    "Filter": {"type": "object", "additionalProperties": False, "properties": {
        "state": {"oneOf": [STRING, array(STRING)]}, "queue": STRING, "task": STRING, "tag": STRING,
        "since": {"type": ["number", "string"]}, "until": {"type": ["number", "string"]}}},
    "BulkAction": {"type": "object", "additionalProperties": False, "required": ["action"], "properties": {
        "action": {"enum": ["retry", "cancel", "delete"]}, "ids": array(STRING), "filter": ref("Filter"),
        "confirm": BOOLEAN}},
    "Queue": obj({"name": STRING, "counts": {"type": "object", "additionalProperties": INTEGER},
                  "estimated": array(STRING),
                  "paused": BOOLEAN, "oldest_age": nullable("number"), "jobs_per_s": NUMBER,
                  "p50": nullable("number"), "p95": nullable("number"), "broken": nullable("string")}),
    "Worker": obj({"id": STRING, "hostname": STRING, "pid": INTEGER, "queues": array(STRING),
                   "concurrency": INTEGER, "version": STRING, "started_at": NUMBER, "last_seen": NUMBER,
                   "running": array(STRING), "alive": BOOLEAN}),
    "HistoryBucket": obj({"at": NUMBER, "queue": STRING, "task": STRING, "succeeded": INTEGER,
                          "retried": INTEGER, "dead": INTEGER, "runs": INTEGER, "mean": nullable("number"),
                          "p50": nullable("number"), "p95": nullable("number")}),
    "SeriesPoint": obj({"at": NUMBER, "succeeded": INTEGER, "failed": INTEGER, "runs": INTEGER}),
    "DeadGroup": obj({"type": STRING, "message": STRING, "count": INTEGER, "queues": array(STRING),
                      "sample_ids": array(STRING), "latest_at": nullable("number")}),
    "DeadGroups": obj({"groups": array(ref("DeadGroup")), "scanned": INTEGER, "complete": BOOLEAN}),
    "DeadGroupAction": {"type": "object", "additionalProperties": False, "required": ["type", "message"],
                        "properties": {"type": STRING, "message": STRING, "queue": STRING, "confirm": BOOLEAN}},
    "Periodic": obj({"task": STRING, "queue": nullable("string"), "schedule": STRING, "tz": STRING,
                     "next_run": NUMBER, "last_run": nullable("number"), "last_state": nullable("string"),
                     "last_job_id": nullable("string")}),
    "Events": obj({"events": array(obj({"kind": STRING, "job_id": STRING, "task": STRING, "queue": STRING,
                                        "at": NUMBER})), "dropped": INTEGER, "gap": BOOLEAN}),
}


@dataclass(frozen=True)
class Param:
    name: str
    schema: dict[str, Any]
    where: str = "query"
    description: str = ""
    explode: bool = False


@dataclass(frozen=True)
class Endpoint:
    """One row of the interface: method, path, the handler's name, and what goes in and out."""

    method: str
    path: str
    handler: str
    summary: str
    response: dict[str, Any] | None
    params: tuple[Param, ...] = ()
    body: str | None = None
    body_required: bool = True
    write: bool = False
    errors: tuple[int, ...] = (400,)
    tag: str = "api"
    extra: dict[str, Any] = field(default_factory=dict)


TIME = {"type": "string", "description": "epoch seconds or ISO 8601 (naive: UTC)"}
FILTERS = (
    Param("state", array(STRING), description="state name(s); repeat or comma-separate; 'retry' = retry_pending",
          explode=True),
    Param("queue", STRING), Param("task", STRING), Param("tag", STRING), Param("since", TIME), Param("until", TIME),
)
JOB_ID = Param("id", STRING, "path", "a job id")
QUEUE_NAME = Param("name", STRING, "path", "a queue name")

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("GET", "/api/session", "session", "The caller's role and the CSRF value its writes carry",
             ref("Session"), errors=()),
    Endpoint("GET", "/api/stats", "stats", "Counts per queue and state, totals, workers, jobs/s and failure rate",
             ref("Stats"), errors=()),
    Endpoint("GET", "/api/jobs", "jobs", "Search jobs, newest first, keyset paged", ref("JobPage"),
             (*FILTERS, Param("cursor", STRING, description="the cursor of the previous page"),
              Param("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50}))),
    Endpoint("GET", "/api/jobs/{id}", "job", "Everything about one job", ref("JobDetail"), (JOB_ID,),
             errors=(400, 404)),
    Endpoint("POST", "/api/jobs/{id}/retry", "retry", "Retry a dead or cancelled job, maybe edited first",
             ref("Ok"), (JOB_ID,), body="RetryEdit", body_required=False, write=True, errors=(400, 404, 409)),
    Endpoint("POST", "/api/jobs/{id}/cancel", "cancel", "Cancel an unfinished job", ref("Ok"), (JOB_ID,),
             write=True, errors=(400, 404, 409)),
    Endpoint("DELETE", "/api/jobs/{id}", "delete", "Delete a job that is not active", ref("Ok"), (JOB_ID,),
             write=True, errors=(400, 404, 409)),
    Endpoint("POST", "/api/jobs/actions", "bulk", "Retry, cancel or delete many jobs, by ids or by filter "
             "(more than 1,000 need \"confirm\": true)", ref("Done"), body="BulkAction", write=True,
             errors=(400, 409)),
    Endpoint("GET", "/api/queues", "queues", "Every queue: counts, paused, oldest ready job's age, jobs/s, "
             "p50/p95 run time (last 5 minutes)", array(ref("Queue")), errors=()),
    Endpoint("POST", "/api/queues/{name}/pause", "pause", "Stop workers from claiming the queue's jobs", ref("Ok"),
             (QUEUE_NAME,), write=True),
    Endpoint("POST", "/api/queues/{name}/resume", "resume", "Let workers claim the queue's jobs again", ref("Ok"),
             (QUEUE_NAME,), write=True),
    Endpoint("POST", "/api/queues/{name}/clear", "clear", "Delete the queue's jobs that have not started",
             ref("Cleared"), (QUEUE_NAME,), write=True),
    Endpoint("GET", "/api/workers", "workers", "Worker processes, alive and recently gone", array(ref("Worker")),
             errors=()),
    Endpoint("GET", "/api/history", "history", "Throughput and run times per minute or hour, queue and task",
             array(ref("HistoryBucket")),
             (Param("queue", STRING), Param("task", STRING), Param("since", TIME), Param("until", TIME),
              Param("step", {"enum": ["1m", "1h"], "default": "1m"}))),
    Endpoint("GET", "/api/history/series", "series", "Runs summed over tasks per step: 1h by minute, 24h by "
             "hour, 30d by day (zeros included)", array(ref("SeriesPoint")),
             (Param("range", {"enum": ["1h", "24h", "30d"], "default": "1h"}), Param("queue", STRING))),
    Endpoint("GET", "/api/dead/groups", "dead_groups", "Dead jobs grouped by error type and message (the "
             "newest it can read in 50 ms, at most 1,000)", ref("DeadGroups"), (Param("queue", STRING),)),
    Endpoint("POST", "/api/dead/groups/retry", "dead_group_action", "Retry the dead jobs of one error group",
             ref("Done"), body="DeadGroupAction", write=True, errors=(400, 409)),
    Endpoint("POST", "/api/dead/groups/delete", "dead_group_action", "Delete the dead jobs of one error group",
             ref("Done"), body="DeadGroupAction", write=True, errors=(400, 409)),
    Endpoint("GET", "/api/periodic", "periodic", "Periodic tasks: schedule, next run, last run and its outcome",
             array(ref("Periodic")), errors=()),
    Endpoint("GET", "/api/events", "events_http", "WebSocket of job events (connect with an Upgrade; a plain "
             "GET answers 426). Messages: Events, at most 10 a second", None, errors=(426,),
             extra={"x-websocket": True}),
    Endpoint("GET", "/api/openapi.json", "openapi", "This document (no authentication needed)",
             {"type": "object"}, errors=(), extra={"security": []}),
    Endpoint("GET", "/", "index", "The dashboard page (303 to login without a session)", None, errors=(),
             tag="pages"),
    Endpoint("GET", "/login", "login_page", "The login form (no authentication needed)", None, errors=(),
             tag="pages", extra={"security": []}),
    Endpoint("POST", "/login", "login", "Log in with a token (form field token): sets the session cookie and "
             "redirects (303) to the dashboard (at the route in form field next, if one)", None, errors=(401, 429), tag="pages",
             extra={"security": []}),
    Endpoint("POST", "/logout", "logout", "End the session (clears the cookie; 303 to the login form)", None,
             errors=(), tag="pages", extra={"security": []}),
)

STATUS_TEXT = {400: "Bad input", 401: "Not authenticated", 403: "Forbidden (read-only token, CSRF or Origin)",
               404: "Unknown job or path", 409: "Wrong state, or confirmation needed", 413: "Body too large",
               426: "Upgrade to WebSocket required", 429: "Too many failed attempts (see Retry-After)",
               503: "The backend is unavailable"}


def _operation(e: Endpoint) -> dict[str, Any]:
    error = {"content": {"application/json": {"schema": ref("Error")}}}
    responses: dict[str, Any] = {}
    if e.tag == "pages":
        if e.method == "GET" and e.path != "/":
            responses["200"] = {"description": "HTML", "content": {"text/html": {"schema": STRING}}}
        else:
            if e.path == "/":
                responses["200"] = {"description": "HTML", "content": {"text/html": {"schema": STRING}}}
            responses["303"] = {"description": "Redirect"}
    elif e.response is None:
        responses["101"] = {"description": "Switching protocols (WebSocket); then Events messages",
                            "content": {"application/json": {"schema": ref("Events")}}}
    else:
        responses["200"] = {"description": "OK", "content": {"application/json": {"schema": e.response}}}
    statuses = set(e.errors)
    if e.tag == "api" and e.path != "/api/openapi.json":
        statuses |= {401, 429, 503}
        if e.write:
            statuses |= {403, 413}
    for status in sorted(statuses):
        responses[str(status)] = {"description": STATUS_TEXT[status], **error}
    op: dict[str, Any] = {"summary": e.summary, "operationId": f"{e.handler}_{e.method.lower()}_"
                          + e.path.strip("/").replace("/", "_").replace("{", "").replace("}", "").replace(".", "_"),
                          "tags": [e.tag], "responses": responses}
    if e.params:
        op["parameters"] = [
            {"name": p.name, "in": p.where, "required": p.where == "path", "schema": p.schema,
             **({"description": p.description} if p.description else {}),
             **({"style": "form", "explode": True} if p.explode else {})}
            for p in e.params
        ]
    if e.body is not None:
        op["requestBody"] = {"required": e.body_required,
                             "content": {"application/json": {"schema": ref(e.body)}}}
    elif e.path == "/login" and e.method == "POST":
        op["requestBody"] = {"required": True, "content": {"application/x-www-form-urlencoded": {
            "schema": {"type": "object", "required": ["token"], "properties": {"token": STRING, "next": {
                "type": "string", "description": "the page route to return to (#/jobs/<id>...); anything "
                "else is ignored"}}}}}}
    op.update(e.extra)
    return op


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of every row of :data:`ENDPOINTS`."""
    paths: dict[str, dict[str, Any]] = {}
    for e in ENDPOINTS:
        paths.setdefault(e.path, {})[e.method.lower()] = _operation(e)
    return {
        "openapi": "3.1.0",
        "info": {"title": "fastjobs dashboard API", "version": __version__,
                 "description": "Jobs, queues, workers, history and live events of a fastjobs App. Send "
                 "Authorization: Bearer <token> (or the session cookie plus X-CSRF-Token on writes). Errors "
                 "are {\"error\": code, \"detail\": text}."},
        "servers": [{"url": "."}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer"},
                "cookieAuth": {"type": "apiKey", "in": "cookie", "name": "fastjobs_session"},
            },
        },
        "security": [{"bearerAuth": []}, {"cookieAuth": []}],
    }
