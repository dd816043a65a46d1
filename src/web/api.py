"""The dashboard's REST API (under ``api/``): JSON in, JSON out, errors as ``{"error", "detail"}``.

Every endpoint, with its parameters and response schema, is listed in
:data:`fastjobs.web.openapi.ENDPOINTS` (served as ``api/openapi.json``). Error codes:

=====  =====================  ==================================================================
400    ``bad_request``        a bad parameter or body (unknown state, bad cursor, bad JSON, ...)
401    ``unauthorized``       no token, a wrong one, or an expired session
403    ``read_only``          a write with the read-only token
403    ``csrf``               a cookie session's write without its ``X-CSRF-Token`` header
403    ``forbidden``          an ``Origin`` header naming another host
404    ``not_found``          an unknown job (or path)
405    ``method_not_allowed``
409    ``wrong_state``        the job's state does not allow the action (nothing changed)
409    ``conflict``           a retry refused because a live job holds its unique key
409    ``confirm``            a bulk action on more than 1,000 jobs without ``"confirm": true``
                              (the body also carries ``"count"``)
413    ``too_large``          a body over :data:`MAX_BODY` bytes
429    ``rate_limited``       too many failed logins / tokens from this address (``Retry-After``)
503    ``unavailable``        the backend cannot be reached or failed
=====  =====================  ==================================================================

Choices within the team spec (issue 14):

- ``POST api/queues/{name}/pause|resume|clear`` accept any valid queue name, known or not
  (a queue can be paused before its first job, as ``fastjobs pause`` allows); a malformed
  name is a 400, never a 404.
- ``GET api/dead/groups`` answers ``{"groups": [...], "scanned": n, "complete": bool}``: the
  spec asks for the list *and* the number of dead jobs scanned in one payload, which a bare
  JSON array cannot carry. It groups the newest dead jobs it can read in :data:`DEAD_BUDGET`
  (at most :data:`DEAD_SAMPLE`): ``complete`` is False when there are more. Its retry and
  delete act on the group's jobs among the newest :data:`DEAD_SCAN`.
- Bulk actions by ``ids`` also need ``"confirm": true`` above 1,000 ids.
- ``POST api/dead/groups/retry|delete`` take ``"confirm"`` too (same rule).
- ``GET api/queues``: ``oldest_age`` is the age of the queue's oldest ready job (by enqueue
  time; a delayed job counts from its run time), read as ``app.check`` reads it: from an
  index on every backend (``list_jobs(QUEUED, queue, limit=1)``).
- ``GET api/history/series?range=30d`` has one point per day (the other ranges one per minute
  / hour); every range lists steps where nothing ran, as zeros.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import json
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from .. import actions
from .._core import QUEUED, PayloadTooLargeError, UnencodableError
from ..backends import BROKEN
from ..errors import (
    BackendError,
    ConfigurationError,
    DependencyError,
    InvalidOptionError,
    JobNotFoundError,
    JobStateError,
)
from ..history import SLOTS, percentile
from ..options import UNSET
from ..search import count_matching, job_filter
from . import serialize
from .auth import Denied

if TYPE_CHECKING:
    from ..app import App

CONFIRM_ABOVE = 1000
"""A bulk action on more jobs than this needs ``"confirm": true``."""

DEAD_SAMPLE = 1000
"""Dead jobs ``GET api/dead/groups`` groups at most (the newest)."""

DEAD_BUDGET = 0.05
"""Seconds ``GET api/dead/groups`` spends reading dead jobs: it groups as many of the newest as
it read by then (it says how many, and that there are more)."""

DEAD_PAGE = 100

DEAD_SCAN = 10_000
"""Dead jobs a group's retry or delete reads at most (the newest): one click acts on the
group's jobs among them (the page says how many it did; click again for more)."""

MAX_BODY = 8 * 1024 * 1024
SAMPLE_IDS = 20
FILTER_KEYS = ("state", "queue", "task", "tag", "since", "until")
EDIT_KEYS = ("args", "kwargs", "queue", "priority", "max_attempts")
SERIES = {"1h": (60, 60), "24h": (3600, 24), "30d": (86400, 30)}
"""``range`` of ``api/history/series``: (step in seconds, how many steps)."""


class ApiError(Exception):
    """An error answer: HTTP status, error code, detail, and extra fields for the body."""

    def __init__(self, status: int, code: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.extra = status, code, detail, extra


def bad(detail: str) -> ApiError:
    return ApiError(400, "bad_request", detail)


def error_response(status: int, code: str, detail: str, headers: dict[str, str] | None = None,
                   **extra: Any) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail, **extra}, status, headers=headers)


def to_response(exc: Exception) -> JSONResponse | None:
    """The answer for an error an endpoint raised; None for unexpected ones (a 500)."""
    if isinstance(exc, ApiError):
        return error_response(exc.status, exc.code, exc.detail, **exc.extra)
    if isinstance(exc, Denied):
        headers = None if exc.retry_after is None else {"Retry-After": str(exc.retry_after)}
        return error_response(exc.status, exc.code, exc.detail, headers)
    if isinstance(exc, JobNotFoundError):
        return error_response(404, "not_found", str(exc))
    if isinstance(exc, JobStateError):
        return error_response(409, "wrong_state", str(exc), state=exc.state)
    if isinstance(exc, (InvalidOptionError, UnencodableError, PayloadTooLargeError, DependencyError)):
        return error_response(400, "bad_request", str(exc))
    if isinstance(exc, (BackendError, ConfigurationError, ConnectionError, OSError)):
        return error_response(503, "unavailable", f"the backend fails: {type(exc).__name__}: {exc}")
    return None


# -- parsing ---------------------------------------------------------------------------


def parse_instant(name: str, value: object) -> float | None:
    """``since`` / ``until``: epoch seconds (a number or its text) or ISO 8601 (naive: UTC)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise bad(f"{name} must be epoch seconds or an ISO 8601 time, not {value!r}")
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            try:
                moment = _dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
            except ValueError:
                raise bad(f"{name} must be epoch seconds or an ISO 8601 time, not {value!r}") from None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=_dt.timezone.utc)
            try:
                number = moment.timestamp()
            except (OverflowError, ValueError, OSError):
                raise bad(f"{name} is out of range: {value!r}") from None
    else:
        raise bad(f"{name} must be epoch seconds or an ISO 8601 time, not {value!r}")
    if not math.isfinite(number) or number < 0 or number > 1e11:
        raise bad(f"{name} must be a time after 1970 (epoch seconds >= 0), not {value!r}")
    return number


def parse_states(values: list[str] | str | None) -> tuple[str, ...] | None:
    """``state`` given once or more, each maybe comma-separated; None: every state."""
    if values is None:
        return None
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise bad(f"state must be a state name or a list of them, not {values!r}")
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    return tuple(names) or None


def text_or_none(value: object, name: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise bad(f"{name} must be a string, not {value!r}")
    return value


def filter_args(source: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of ``App.jobs``/``*_matching`` from query parameters or a JSON filter."""
    return {
        "state": parse_states(source.get("state")),
        "queue": text_or_none(source.get("queue"), "queue"),
        "task": text_or_none(source.get("task"), "task"),
        "tag": text_or_none(source.get("tag"), "tag"),
        "since": parse_instant("since", source.get("since")),
        "until": parse_instant("until", source.get("until")),
    }


def query_filter(request: Request) -> dict[str, Any]:
    query = request.query_params
    source: dict[str, Any] = {key: query.get(key) for key in FILTER_KEYS if key != "state"}
    source["state"] = query.getlist("state") or None
    return filter_args(source)


def int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise bad(f"{name} must be an integer from {low} to {high}, not {text!r}") from None
    if not low <= value <= high:
        raise bad(f"{name} must be an integer from {low} to {high}, not {text!r}")
    return value


async def json_body(request: Request, *, optional: bool = False) -> dict[str, Any] | None:
    """The request's JSON object (None when ``optional`` and the body is empty)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise ApiError(413, "too_large", f"the body is over {MAX_BODY} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        if optional:
            return None
        raise bad("this endpoint needs a JSON object body")
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad(f"the body is not valid JSON: {exc}") from None
    if value is None and optional:
        return None
    if not isinstance(value, dict):
        raise bad("the body must be a JSON object")
    return value


def check_keys(body: dict[str, Any], allowed: tuple[str, ...], what: str) -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise bad(f"unknown field(s) in {what}: {', '.join(unknown)} (allowed: {', '.join(allowed)})")


def confirm_needed(count: int, body: dict[str, Any]) -> None:
    confirm = body.get("confirm", False)
    if not isinstance(confirm, bool):
        raise bad("confirm must be true or false")
    if count > CONFIRM_ABOVE and not confirm:
        raise ApiError(409, "confirm", f"this would act on {count:,} jobs (more than {CONFIRM_ABOVE:,}): "
                       'send it again with "confirm": true', count=count)


# -- the endpoints -------------------------------------------------------------------------

Handler = Callable[[Request], Awaitable[Any]]


class Api:
    """The REST endpoints of one dashboard over one App. Each returns JSON-ready data or raises."""

    def __init__(self, app: App) -> None:
        self.app = app

    async def now(self) -> float:
        return await (await self.app.backend()).now()

    # -- overview --------------------------------------------------------------------

    async def counts(self) -> tuple[Mapping[str, Mapping[str, Any]], Mapping[str, frozenset[str]]]:
        """Jobs per queue and state, and per queue the states whose counts are estimates (large
        counts on PostgreSQL: see ``Backend.stats_estimated``)."""
        backend = await self.app.backend()
        return await backend.stats_estimated()

    async def stats(self, request: Request) -> Any:
        app = self.app
        now = await self.now()
        minute = math.floor(now / 60) * 60
        (queues, estimated), paused, workers, hist = await asyncio.gather(
            self.counts(), app.paused(), app.workers(), app.history(since=minute - 3600, until=minute + 60, step="1m"),
        )
        totals: dict[str, int] = {}
        for counts in queues.values():
            if BROKEN not in counts:
                for state, n in counts.items():
                    totals[state] = totals.get(state, 0) + int(n)
        # jobs/s: the last full minute; failure rate: the last hour, this minute included (a
        # failure a moment ago counts, and one failed run in the previous minute is not 100 %).
        last = sum(b.runs for b in hist if b.at == minute - 60)
        runs = sum(b.runs for b in hist)
        failed = sum(b.dead + b.retried for b in hist)
        alive = sum(1 for w in workers if w.alive)
        return {
            "queues": {q: dict(c) for q, c in sorted(queues.items())}, "paused": list(paused), "totals": totals,
            "estimated": {q: sorted(states) for q, states in sorted(estimated.items()) if states},
            "workers": {"alive": alive, "gone": len(workers) - alive},
            "throughput": {"jobs_per_s": last / 60.0, "failure_rate": failed / runs if runs else None},
        }

    async def queues(self, request: Request) -> Any:
        app = self.app
        backend = await app.backend()
        now = await backend.now()
        since = now - 300
        (stats, estimated), paused, hist = await asyncio.gather(self.counts(), app.paused(),
                                                                 app.history(since=since, step="1m"))
        elapsed = max(now - math.floor(since / 60) * 60, 1.0)
        runs: dict[str, int] = {}
        merged: dict[str, list[int]] = {}
        for b in hist:
            runs[b.queue] = runs.get(b.queue, 0) + b.runs
            histogram = merged.setdefault(b.queue, [0] * SLOTS)
            for i, n in enumerate(b.buckets[:SLOTS]):
                histogram[i] += n
        names = sorted({*stats, *paused, *runs})

        async def oldest(queue: str) -> float | None:
            counts = stats.get(queue, {})
            if BROKEN in counts or not counts.get("queued"):
                return None
            jobs = await backend.list_jobs(QUEUED, queue, limit=1)
            return max(0.0, now - (jobs[0].run_at or jobs[0].enqueued_at)) if jobs else None

        ages = await asyncio.gather(*(oldest(q) for q in names))
        rows = []
        for name, age in zip(names, ages):
            counts = stats.get(name, {})
            broken = counts.get(BROKEN)
            merged_runs = merged.get(name)
            rows.append({
                "name": name, "counts": {} if broken is not None else {s: int(n) for s, n in counts.items()},
                "estimated": sorted(estimated.get(name, ())),
                "paused": name in paused, "oldest_age": age, "jobs_per_s": runs.get(name, 0) / elapsed,
                "p50": percentile(merged_runs, 0.5) if merged_runs else None,
                "p95": percentile(merged_runs, 0.95) if merged_runs else None,
                "broken": None if broken is None else str(broken),
            })
        return rows

    async def pause(self, request: Request) -> Any:
        await self.app.pause(request.path_params["name"])
        return {"ok": True}

    async def resume(self, request: Request) -> Any:
        await self.app.resume(request.path_params["name"])
        return {"ok": True}

    async def clear(self, request: Request) -> Any:
        return {"cleared": await self.app.clear(request.path_params["name"])}

    async def workers(self, request: Request) -> Any:
        return [serialize.worker(w) for w in await self.app.workers()]

    # -- jobs -------------------------------------------------------------------------

    async def jobs(self, request: Request) -> Any:
        limit = int_param(request, "limit", 50, 1, 1000)
        cursor = request.query_params.get("cursor") or None
        page = await self.app.jobs(**query_filter(request), limit=limit, cursor=cursor)
        return {"jobs": [serialize.job_summary(info) for info in page], "cursor": page.cursor}

    async def job(self, request: Request) -> Any:
        job_id = actions.check_job_id(request.path_params["id"])
        info = await self.app.get_job(job_id)
        if info is None:
            raise JobNotFoundError(job_id)
        return serialize.job_detail(info)

    async def retry(self, request: Request) -> Any:
        job_id = actions.check_job_id(request.path_params["id"])
        body = await json_body(request, optional=True) or {}
        check_keys(body, EDIT_KEYS, "a retry")
        args, kwargs = body.get("args", UNSET), body.get("kwargs", UNSET)
        if args is not UNSET and not isinstance(args, list):
            raise bad("args must be a JSON array")
        if kwargs is not UNSET and not isinstance(kwargs, dict):
            raise bad("kwargs must be a JSON object")
        for name in ("priority", "max_attempts"):
            value = body.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise bad(f"{name} must be an integer")
        queue = body.get("queue")
        if queue is not None and not isinstance(queue, str):
            raise bad("queue must be a string")
        done = await self.app.retry(job_id, args=args, kwargs=kwargs, queue=queue,
                                    priority=body.get("priority"), max_attempts=body.get("max_attempts"))
        if not done:
            raise ApiError(409, "conflict", f"job {job_id!r} was not retried: a live job of its queue holds its "
                           "unique_key, or it changed state meanwhile")
        return {"ok": True}

    async def cancel(self, request: Request) -> Any:
        job_id = actions.check_job_id(request.path_params["id"])
        info = await self.app.get_job(job_id)
        if info is None:
            raise JobNotFoundError(job_id)
        if not await self.app.cancel(job_id):
            current = await self.app.get_job(job_id)
            state = current.state if current is not None else "deleted"
            raise ApiError(409, "wrong_state", f"cannot cancel job {job_id!r}: it is {state}; cancel takes "
                           "unfinished jobs", state=state)
        return {"ok": True}

    async def delete(self, request: Request) -> Any:
        job_id = actions.check_job_id(request.path_params["id"])
        if not await self.app.delete(job_id):
            raise ApiError(409, "wrong_state", f"job {job_id!r} became active meanwhile: cancel it first",
                           state="active")
        return {"ok": True}

    async def bulk(self, request: Request) -> Any:
        body = await json_body(request)
        assert body is not None
        check_keys(body, ("action", "ids", "filter", "confirm"), "a bulk action")
        action = body.get("action")
        if action not in ("retry", "cancel", "delete"):
            raise bad('action must be "retry", "cancel" or "delete"')
        if ("ids" in body) == ("filter" in body):
            raise bad('give either "ids" (a list of job ids) or "filter" (an object), not both or neither')
        app = self.app
        if "ids" in body:
            ids = body["ids"]
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                raise bad("ids must be a list of job ids (strings)")
            confirm_needed(len(ids), body)
            many = {"retry": app.retry_many, "cancel": app.cancel_many, "delete": app.delete_many}[action]
            return {"done": await many(ids)}
        where = body["filter"]
        if not isinstance(where, dict):
            raise bad("filter must be a JSON object")
        check_keys(where, FILTER_KEYS, "a filter")
        args = filter_args(where)
        if not body.get("confirm"):
            kind = {"retry": actions.RETRY, "cancel": actions.CANCEL, "delete": actions.DELETE}[action]
            confirm_needed(await count_matching(await app.backend(), actions.action_filter(kind, job_filter(**args))),
                           body)
        matching = {"retry": app.retry_matching, "cancel": app.cancel_matching, "delete": app.delete_matching}
        return {"done": await matching[action](**args)}

    # -- history ----------------------------------------------------------------------

    async def history(self, request: Request) -> Any:
        query = request.query_params
        step = query.get("step") or "1m"
        buckets = await self.app.history(
            queue=text_or_none(query.get("queue"), "queue"), task=text_or_none(query.get("task"), "task"),
            since=parse_instant("since", query.get("since")), until=parse_instant("until", query.get("until")),
            step=step,
        )
        return serialize.history(buckets)

    async def series(self, request: Request) -> Any:
        span = request.query_params.get("range") or "1h"
        if span not in SERIES:
            raise bad(f"range must be one of {', '.join(SERIES)}, not {span!r}")
        step, count = SERIES[span]
        queue = text_or_none(request.query_params.get("queue"), "queue")
        now = await self.now()
        last = math.floor(now / step) * step
        first = last - (count - 1) * step
        buckets = await self.app.history(queue=queue, since=first, until=last + step,
                                         step="1m" if step == 60 else "1h")
        points = {first + i * step: [0, 0, 0] for i in range(count)}
        for b in buckets:
            point = points.get(math.floor(b.at / step) * step)
            if point is not None:
                point[0] += b.succeeded
                point[1] += b.retried + b.dead
                point[2] += b.runs
        return [{"at": at, "succeeded": s, "failed": f, "runs": r} for at, (s, f, r) in points.items()]

    # -- dead letters -----------------------------------------------------------------

    async def _dead(self, queue: str | None, most: int,
                    budget: float | None) -> tuple[dict[tuple[str, str], dict[str, Any]], int, bool]:
        """The newest dead jobs (at most ``most``; with ``budget``, only as many as that many
        seconds read) grouped by error; how many were read; whether that was all of them."""
        groups: dict[tuple[str, str], dict[str, Any]] = {}
        scanned, cursor = 0, None
        size = DEAD_PAGE
        started = time.perf_counter()
        while scanned < most:
            page = await self.app.jobs(state="dead", queue=queue, limit=min(size, most - scanned), cursor=cursor)
            for info in page:
                scanned += 1
                error = info.error
                key = (error.type, error.message) if error is not None else ("", "")
                group = groups.get(key)
                if group is None:
                    group = groups[key] = {"type": key[0], "message": key[1], "count": 0, "queues": [],
                                           "ids": [], "latest_at": None}
                group["count"] += 1
                group["ids"].append(info.id)
                if info.queue not in group["queues"]:
                    group["queues"].append(info.queue)
                at = info.finished_at or info.enqueued_at
                group["latest_at"] = at if group["latest_at"] is None else max(group["latest_at"], at)
            cursor = page.cursor
            if cursor is None:
                return groups, scanned, True
            if budget is None:
                size = 1000
                continue
            # The next page as large as the time left allows at the pace so far (reads cost
            # 0.02 ms a job on PostgreSQL, ten times that on Redis): stop when none fits.
            elapsed = time.perf_counter() - started
            size = int((budget - elapsed) / max(elapsed / scanned, 1e-6))
            if size < DEAD_PAGE // 2:
                break
        return groups, scanned, False

    async def dead_groups(self, request: Request) -> Any:
        groups, scanned, complete = await self._dead(text_or_none(request.query_params.get("queue"), "queue"),
                                                     DEAD_SAMPLE, DEAD_BUDGET)
        rows = []
        for group in sorted(groups.values(), key=lambda g: (-g["count"], g["type"], g["message"])):
            ids = group.pop("ids")
            rows.append({**group, "queues": sorted(group["queues"]), "sample_ids": ids[:SAMPLE_IDS]})
        return {"groups": rows, "scanned": scanned, "complete": complete}

    async def dead_group_action(self, request: Request) -> Any:
        body = await json_body(request)
        assert body is not None
        check_keys(body, ("type", "message", "queue", "confirm"), "a dead-letter group")
        kind, message = body.get("type"), body.get("message")
        if not isinstance(kind, str) or not isinstance(message, str):
            raise bad("type and message (strings, as api/dead/groups lists them) are required")
        groups, _, _ = await self._dead(text_or_none(body.get("queue"), "queue"), DEAD_SCAN, None)
        ids = groups.get((kind, message), {}).get("ids", [])
        confirm_needed(len(ids), body)
        act = self.app.retry_many if request.url.path.endswith("/retry") else self.app.delete_many
        return {"done": await act(ids) if ids else 0}

    # -- periodic tasks ---------------------------------------------------------------

    async def periodic(self, request: Request) -> Any:
        app = self.app
        now = await self.now()
        names = sorted(app.schedules)
        pages = await asyncio.gather(*(app.jobs(task=name, limit=1) for name in names))
        rows = []
        for name, page in zip(names, pages):
            plan = app.schedules[name]
            task = app.tasks.get(name)
            last = page.jobs[0] if page.jobs else None
            rows.append({
                "task": name, "queue": task.default_options.queue if task is not None else None,
                "schedule": f"every {plan.interval:g} s" if plan.interval is not None else str(plan.spec),
                "tz": str(plan.tz), "next_run": plan.next_after(now),
                "last_run": None if last is None else (last.started_at or last.run_at or last.enqueued_at),
                "last_state": None if last is None else last.state, "last_job_id": None if last is None else last.id,
            })
        return rows
