"""The PostgreSQL backend's operations layer: search, acting on jobs by id, history, events.

Each call is one statement: a search page (:mod:`.search`), one set-based
function per batch of ids (``sql/functions/actions.sql``), one read of the
``history`` table. Events are published by the functions that move jobs (one
NOTIFY per statement, ``sql/functions/events.sql``) and read here on a LISTEN
connection of each ``events()`` iterator's own (:mod:`.events`).

Example:
    >>> from fastjobs.backends.postgres import PostgresBackend
    >>> issubclass(PostgresBackend, Operations)
    True
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Sequence

from ..base import check_search_limit
from ..values import MAX_IDS, Event, HistoryPoint, HistoryRow, JobEdit, JobFilter, Position, StoredJob
from .connection import PostgresConnection
from .events import listen_events
from .rows import stored_job
from .search import Shape, build_search, search_args, shape_of
from .sql import render


def _check_ids(job_ids: Sequence[str]) -> list[str]:
    ids = list(job_ids)
    if len(ids) > MAX_IDS:
        raise ValueError(f"at most {MAX_IDS} job ids per call, not {len(ids)}: page through them")
    return ids


def _per_id(ids: list[str], done: Sequence[str] | None) -> list[bool]:
    """Per id in order, whether it is in ``done``; a repeated id counts once (its first copy)."""
    left = set(done or ())
    result = []
    for job_id in ids:
        result.append(job_id in left)
        left.discard(job_id)
    return result


@functools.lru_cache(maxsize=1024)
def _statement(shape: Shape, schema: str) -> str:
    """A search statement's text for one schema (asyncpg prepares each once per connection)."""
    return render(build_search(shape)[0], schema)


class Operations(PostgresConnection):
    """Search, retry / cancel / delete by ids, history and events (PostgresBackend's base)."""

    async def search(
        self, where: JobFilter, limit: int, after: Position | None = None
    ) -> tuple[list[StoredJob], Position | None]:
        check_search_limit(limit)
        shape = shape_of(where, after)
        if not shape.parts:
            return [], None
        rows = await self._fetch(_statement(shape, self.schema), *search_args(shape, where, limit, after))
        jobs = [stored_job(r) for r in rows if r["id"] is not None]
        if len(jobs) == limit:
            last = rows[-1]
            return jobs, (int(last["at_us"]), last["id"])
        cut = rows[0] if rows else None
        if cut is not None and cut["cut_id"] is not None:
            return jobs, (int(cut["cut_at_us"]), cut["cut_id"])
        return jobs, None

    async def retry_jobs(self, job_ids: Sequence[str], edit: JobEdit | None = None) -> list[bool]:
        ids = _check_ids(job_ids)
        if edit is not None and len(ids) != 1:
            raise ValueError("retry_jobs(edit=) takes exactly one job id")
        if not ids:
            return []
        fields = (None, None, None, None) if edit is None else (
            edit.body, edit.queue, int(edit.priority), int(edit.max_attempts))
        done = await self._fetchval(self._q["retry_jobs"], ids, *fields, self.options.events)
        return _per_id(ids, done)

    async def cancel_jobs(self, job_ids: Sequence[str]) -> list[bool]:
        ids = _check_ids(job_ids)
        if not ids:
            return []
        return _per_id(ids, await self._fetchval(self._q["cancel_jobs"], ids, self.options.events))

    async def delete_jobs(self, job_ids: Sequence[str]) -> list[bool]:
        ids = _check_ids(job_ids)
        if not ids:
            return []
        return _per_id(ids, await self._fetchval(self._q["delete_jobs"], ids, self.options.events))

    async def history(
        self, since: float, until: float, step: int = 60, queue: str | None = None, task: str | None = None
    ) -> list[HistoryPoint]:
        if step not in (60, 3600):
            raise ValueError(f"step is 60 (minutes) or 3600 (hours), not {step!r}")
        rows = await self._fetch(self._q["history"], step, float(since), float(until), queue, task)
        points: list[HistoryPoint] = []
        for r in rows:  # in key order: a point's shards are consecutive
            row = HistoryRow(r["queue"], r["task"], r["outcome"], r["runs"], r["runtime_sum"], tuple(r["buckets"]))
            last = points[-1] if points else None
            if last is not None and last.at == r["at"] and last.row[:3] == row[:3]:
                merged = last.row._replace(
                    runs=last.row.runs + row.runs, runtime_sum=last.row.runtime_sum + row.runtime_sum,
                    buckets=tuple(a + b for a, b in zip(last.row.buckets, row.buckets)))
                points[-1] = HistoryPoint(last.at, merged)
            else:
                points.append(HistoryPoint(r["at"], row))
        return points

    def events(self, queues: Sequence[str] | None = None) -> AsyncIterator[Event]:
        # The async generator itself, so that its aclose() reaches the LISTEN connection at once.
        return listen_events(self, queues)
