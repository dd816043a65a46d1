"""The PostgreSQL backend's search: one statement per page, a keyset seek per state.

A job's search time ``at`` is ``finished_at`` in ``finished_jobs`` and
``enqueued_at`` in ``jobs``. A page is the UNION ALL of one *part* per stored
state it may need, each an ordered walk of an index from the position down,
newest first by ``(at, id)``, merged by ``ORDER BY at DESC, id DESC LIMIT n``:

* finished states: ``finished_jobs_search`` (state, finished_at, id), or
  ``finished_jobs_search_queue`` (queue, state, finished_at, id) with a queue;
* scheduled, queued, retry-pending and waiting jobs: ``jobs_search`` /
  ``jobs_search_queue``, the same on ``enqueued_at`` (partial indexes that
  leave active jobs out, so that a claim updates neither);
* active jobs: sorted, not sought (through ``jobs_lease``): as many as the
  workers run at once, whatever the number of stored jobs.

So every filter on states, a queue, ``since`` and ``until`` seeks; none
depends on the number of stored jobs. ``task`` and ``tag`` are **not indexed**
(an index on ``jobs`` costs every enqueue, and a GIN index on tags more): with
either, each part reads at most its share of :data:`SEARCH_SCAN` candidates
and checks them. So does a part whose reported state differs from its stored
one: a scheduled or retry-pending job whose time has come reports ``queued``
before promotion moves it, so searching ``queued`` alone checks ``run_at`` on
those two parts. A part that read as many rows as it could (its cap) is cut
there: the page keeps only rows at or above the highest such cut, which is
the position returned when the page is short (every candidate above it was
examined). A job that changes state between two pages may be seen twice or
missed; one that stays put is never skipped or repeated.

Example:
    >>> shape = shape_of(JobFilter(states=(DEAD,), queue="emails"), None)
    >>> shape.parts, shape.queue
    (((5, False),), True)
"""

from __future__ import annotations

import datetime
from typing import Any, NamedTuple

from ..._core import ACTIVE, CANCELLED, DEAD, QUEUED, RETRY_PENDING, SCHEDULED, SUCCEEDED, WAITING
from ..values import SEARCH_SCAN, JobFilter, Position
from .sql import SNIPPETS

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
_FINISHED = (SUCCEEDED, DEAD, CANCELLED)
_LIVE = (SCHEDULED, QUEUED, ACTIVE, RETRY_PENDING, WAITING)
_ALL = _LIVE + _FINISHED
_DUE = (SCHEDULED, RETRY_PENDING)
"""Stored states whose jobs report ``queued`` once their run_at has come."""


def at_param(us: int) -> datetime.datetime:
    """An exact timestamptz parameter for a time in integer microseconds since the epoch."""
    return _EPOCH + datetime.timedelta(microseconds=us)


def seconds_param(seconds: float) -> datetime.datetime:
    return at_param(round(seconds * 1e6))


class Shape(NamedTuple):
    """What decides a search statement's text (its values are parameters)."""

    parts: tuple[tuple[int, bool], ...]
    """(stored state, checked: whether its rows need the reported-state check)."""
    queue: bool
    after: bool
    since: bool
    until: bool
    task: bool
    tag: bool
    queued: bool
    """Whether ``queued`` is wanted (what a checked part checks ``run_at`` for)."""


def shape_of(where: JobFilter, after: Position | None) -> Shape:
    """The parts and clauses a search for ``where`` needs."""
    wanted = set(where.states or _ALL)
    parts = []
    for state in _ALL:
        reported = {state, QUEUED} if state in _DUE else {state}
        if reported & wanted:
            parts.append((state, not reported <= wanted))
    return Shape(
        tuple(parts), where.queue is not None, after is not None, where.since is not None,
        where.until is not None, where.task is not None, where.tag is not None, QUEUED in wanted,
    )


def build_search(shape: Shape) -> tuple[str, bool]:
    """The search statement for ``shape`` and whether it checks candidates (scan budget).

    Parameters: $1 queue, $2/$3 the position (at, id), $4 since, $5 until, $6 the
    cap of an exact part (the page size), $7 the cap of a checked part, $8 task,
    $9 tag, each present only when the shape uses it. Every row carries the
    page's cut (``cut_at_us``, ``cut_id``: NULL when no part was cut).
    """
    checks = shape.task or shape.tag
    texts = []
    for state, checked in shape.parts:
        cap = "$7::bigint" if checks or checked else "$6::bigint"
        texts.append(_part_sql(state, checked, shape, cap))
    scanned = checks or any(c for _, c in shape.parts)
    union = "\n    UNION ALL ".join(texts)
    # Every parameter is typed here, whether or not the parts use it.
    sql = f"""WITH args AS (
    SELECT $1::text, $2::timestamptz, $3::text, $4::timestamptz, $5::timestamptz, $6::bigint, $7::bigint,
           $8::text, $9::text
), c AS (
    {union}
), cut AS (
    SELECT c.at, c.id FROM c WHERE c.rn = c.cap ORDER BY c.at DESC, c.id DESC LIMIT 1
), page AS (
    SELECT c.at, c.id, c.src FROM c
    WHERE c.ok AND NOT EXISTS (SELECT 1 FROM cut WHERE (c.at, c.id) < (cut.at, cut.id))
    ORDER BY c.at DESC, c.id DESC
    LIMIT $6::bigint
)
SELECT (extract(epoch FROM k.at) * 1000000)::bigint AS cut_at_us, k.id AS cut_id,
       (extract(epoch FROM p.at) * 1000000)::bigint AS at_us, r.*
FROM (SELECT 1) AS one
LEFT JOIN cut k ON true
LEFT JOIN page p ON true
LEFT JOIN LATERAL (
    SELECT {SNIPPETS['LIVE_JOB_FIELDS']}
    FROM {{schema}}.jobs WHERE id = p.id AND p.src = 0
    UNION ALL
    SELECT {SNIPPETS['FINISHED_JOB_FIELDS']}
    FROM {{schema}}.finished_jobs WHERE id = p.id AND p.src = 1
) AS r ON true
ORDER BY p.at DESC, p.id DESC"""
    return sql, scanned


def _part_sql(state: int, checked: bool, shape: Shape, cap: str) -> str:
    finished = state in _FINISHED
    table, at = ("finished_jobs", "finished_at") if finished else ("jobs", "enqueued_at")
    where = [f"x.state = {int(state)}"]
    if shape.queue:
        where.append("x.queue = $1::text")
    if shape.after:
        where.append(f"(x.{at}, x.id) < ($2::timestamptz, $3::text)")
    if shape.since:
        where.append(f"x.{at} >= $4::timestamptz")
    if shape.until:
        where.append(f"x.{at} < $5::timestamptz")
    ok = []
    if shape.task:
        ok.append("x.task = $8::text")
    if shape.tag:
        ok.append("x.tags @> ARRAY[$9::text]")
    if checked:
        # Exactly one of the stored state and QUEUED is wanted.
        ok.append("x.run_at <= now()" if shape.queued else "x.run_at > now()")
    return (
        f"(SELECT x.{at} AS at, x.id, {1 if finished else 0} AS src, {' AND '.join(ok) or 'true'} AS ok,"
        f" {cap} AS cap, row_number() OVER (ORDER BY x.{at} DESC, x.id DESC) AS rn"
        f" FROM (SELECT * FROM {{schema}}.{table} x WHERE {' AND '.join(where)}"
        f" ORDER BY x.{at} DESC, x.id DESC LIMIT {cap}) AS x)"
    )


def search_args(shape: Shape, where: JobFilter, limit: int, after: Position | None) -> list[Any]:
    """The parameters of :func:`build_search`'s statement, in order ($1 ...)."""
    checked = sum(1 for _, c in shape.parts if c or shape.task or shape.tag)
    args: list[Any] = [
        where.queue,
        at_param(after[0]) if after is not None else None,
        after[1] if after is not None else None,
        seconds_param(where.since) if where.since is not None else None,
        seconds_param(where.until) if where.until is not None else None,
        limit,
        max(limit, SEARCH_SCAN // max(checked, 1)),
        where.task,
        where.tag,
    ]
    return args
