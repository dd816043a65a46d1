"""Finding jobs: filters as callers give them, opaque cursors, and :class:`JobPage`.

:meth:`App.jobs <fastjobs.App.jobs>` and the bulk actions build a backend
:class:`~fastjobs.backends.JobFilter` here from what the caller passed (state
names, a queue, a task, a tag, a time window), validated with typed errors, and
page through :meth:`Backend.search <fastjobs.backends.Backend.search>` by keyset.
A cursor is the position where a page ended, with a fingerprint of the filters
it belongs to, as an opaque URL-safe string.

The functions take a connected :class:`~fastjobs.backends.Backend`, so a tool
holding its own (a read-only one, say) uses them as the App does.

Example:
    >>> from fastjobs.search import job_filter
    >>> job_filter(state=["dead", "retry"], queue="emails").states
    (5, 4)
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import hashlib
import math
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypedDict

from ._core import RETRY_PENDING, STATE_NAMES
from .backends.base import MAX_IDS, Backend, JobFilter, Position, StoredJob
from .errors import InvalidCursorError, InvalidOptionError
from .job import JobInfo
from .options import TASK_NAME, check_tag, validate_queue

if TYPE_CHECKING:
    from typing_extensions import Unpack

MAX_LIMIT = 1000
"""Most jobs one :meth:`App.jobs <fastjobs.App.jobs>` page holds."""

FILL_CALLS = 10
"""Most backend calls one page makes to fill itself when calls come back short (filters a
backend cannot seek on examine a bounded number of candidates per call)."""

STATE_ALIASES = {"retry": RETRY_PENDING}
"""Other names a state goes by in filters."""

StateNames = str | Sequence[str] | None
"""A state name, several, or None for every state."""

Instant = _dt.datetime | float | int | None
"""A timezone-aware datetime or epoch seconds."""


class JobFilters(TypedDict, total=False):
    """The filters of :meth:`App.jobs <fastjobs.App.jobs>`, ``count_matching`` and the ``*_matching``
    actions, all keyword arguments: a job matches when it passes every filter given.

    Example:
        >>> filters: JobFilters = {"state": ["dead", "retry"], "queue": "emails"}
        >>> job_filter(**filters).states
        (5, 4)
    """

    state: StateNames
    """A state name or a list of them (queued, scheduled, waiting, active, retry_pending or
    retry, succeeded, dead, cancelled); None: every state."""
    queue: str | None
    """Only jobs of this queue."""
    task: str | None
    """Only jobs of this task (its name)."""
    tag: str | None
    """Only jobs carrying this tag."""
    since: Instant
    """Only jobs whose time is at or after this (an aware datetime or epoch seconds); a job's time
    is when it finished (succeeded, dead, cancelled), else when it was enqueued."""
    until: Instant
    """Only jobs whose time is before this (as ``since``)."""

_CURSOR_VERSION = "1"


def parse_states(state: StateNames) -> tuple[int, ...]:
    """State names (``"dead"``, ``["queued", "retry"]``) as state numbers; None or empty: every state.

    Example:
        >>> parse_states("retry")
        (4,)
    """
    if state is None:
        return ()
    names = (state,) if isinstance(state, str) else state
    if not isinstance(names, (Sequence, set, frozenset)):
        raise InvalidOptionError(f"state takes a state name or a list of them, not {state!r}")
    states: list[int] = []
    for name in names:
        number = STATE_ALIASES.get(name) if isinstance(name, str) else None
        if number is None and isinstance(name, str) and name in STATE_NAMES:
            number = STATE_NAMES.index(name)
        if number is None:
            raise InvalidOptionError(
                f"unknown state {name!r}: use {', '.join(STATE_NAMES)} (or 'retry' for retry_pending)"
            )
        states.append(number)
    return tuple(dict.fromkeys(states))


def parse_instant(name: str, value: Instant) -> float | None:
    """``value`` (an aware datetime or epoch seconds) as epoch seconds, or InvalidOptionError naming ``name``.

    Example:
        >>> parse_instant("since", _dt.datetime(2026, 1, 1, tzinfo=_dt.timezone.utc))
        1767225600.0
    """
    if value is None:
        return None
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            raise InvalidOptionError(
                f"{name} must be a timezone-aware datetime (e.g. datetime.now(timezone.utc)), not {value!r}"
            )
        return value.timestamp()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise InvalidOptionError(f"{name} must be an aware datetime or epoch seconds (>= 0), not {value!r}")
    return float(value)


def job_filter(**filters: Unpack[JobFilters]) -> JobFilter:
    """A backend :class:`~fastjobs.backends.JobFilter` from the :class:`JobFilters` a caller passed, each checked.

    Raises :class:`~fastjobs.InvalidOptionError` for an unknown state, a bad queue, task
    name or tag, a naive datetime, or ``since`` not before ``until``; TypeError for a
    keyword that is not a filter.

    Example:
        >>> job_filter(state="dead", tag="tenant:42").tag
        'tenant:42'
    """
    unknown = filters.keys() - JobFilters.__optional_keys__
    if unknown:
        # What Python said when each method spelled the filters out, now that they come as **filters.
        raise TypeError(f"unexpected keyword argument {min(unknown)!r}: the filters are {', '.join(JobFilters.__annotations__)}")
    state, queue, task, tag = filters.get("state"), filters.get("queue"), filters.get("task"), filters.get("tag")
    since, until = filters.get("since"), filters.get("until")
    if queue is not None:
        validate_queue(queue)
    if task is not None and (not isinstance(task, str) or not TASK_NAME.match(task)):
        raise InvalidOptionError(f"task must be a task name (1-200 characters, no spaces), not {task!r}")
    if tag is not None:
        check_tag(tag)
    start, end = parse_instant("since", since), parse_instant("until", until)
    if start is not None and end is not None and start >= end:
        raise InvalidOptionError(f"since ({since!r}) must be before until ({until!r})")
    return JobFilter(parse_states(state), queue, task, tag, start, end)


def check_limit_arg(limit: object) -> int:
    """``limit`` if it is a page size (an int from 1 to :data:`MAX_LIMIT`), else InvalidOptionError."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidOptionError(f"limit must be an int from 1 to {MAX_LIMIT}, not {limit!r}")
    return limit


def _fingerprint(where: JobFilter) -> str:
    key = repr((sorted(where.states), where.queue, where.task, where.tag, where.since, where.until))
    return hashlib.blake2b(key.encode(), digest_size=6).hexdigest()


def encode_cursor(position: Position, where: JobFilter) -> str:
    """The opaque cursor of ``position`` in the search ``where``.

    Example:
        >>> where = job_filter(state="dead")
        >>> decode_cursor(encode_cursor((1700000000000000, "abc"), where), where)
        (1700000000000000, 'abc')
    """
    at_us, job_id = position
    text = f"{_CURSOR_VERSION}|{at_us}|{_fingerprint(where)}|{job_id}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: object, where: JobFilter) -> Position:
    """The position a cursor from :func:`encode_cursor` holds, or :class:`~fastjobs.InvalidCursorError`
    if it is not one (mangled, or made by a search with other filters)."""
    if not isinstance(cursor, str) or not 0 < len(cursor) <= 400:
        raise InvalidCursorError(f"a cursor is the str a page returned, not {cursor!r}")
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        version, at_us, fingerprint, job_id = text.split("|", 3)
        position = (int(at_us), job_id)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidCursorError(
            f"cursor {cursor!r} is not one a page returned: pass the page's cursor unchanged, or none to start over"
        ) from None
    if version != _CURSOR_VERSION or not TASK_NAME.match(job_id):
        raise InvalidCursorError(f"cursor {cursor!r} is not one this fastjobs made: start over without a cursor")
    if fingerprint != _fingerprint(where):
        raise InvalidCursorError(
            f"cursor {cursor!r} belongs to a search with other filters: repeat that search's state, queue, task, "
            "tag, since and until, or start over without a cursor"
        )
    return position


@dataclass(frozen=True, slots=True)
class JobPage:
    """One page of :meth:`App.jobs <fastjobs.App.jobs>`: jobs newest first, and the cursor of the next page.

    Iterating a page iterates its jobs. ``cursor`` is None when no further job matches.

    Example:
        >>> page = await app.jobs(state="dead", queue="emails", limit=100)  # doctest: +SKIP
        >>> while True:  # doctest: +SKIP
        ...     for info in page:
        ...         print(info.id, info.error)
        ...     if page.cursor is None:
        ...         break
        ...     page = await app.jobs(state="dead", queue="emails", limit=100, cursor=page.cursor)
    """

    jobs: list[JobInfo] = field(default_factory=list)
    cursor: str | None = None
    """Pass as ``cursor=`` (with the same filters) for the next page; None: this was the last."""

    def __iter__(self) -> Iterator[JobInfo]:
        return iter(self.jobs)

    def __len__(self) -> int:
        return len(self.jobs)


async def find_jobs(backend: Backend, where: JobFilter, limit: int, cursor: str | None, max_payload: int) -> JobPage:
    """A :class:`JobPage` of ``where`` after ``cursor``, filled with up to :data:`FILL_CALLS` backend calls.

    Example:
        >>> page = await find_jobs(backend, job_filter(state="dead"), 50, None, app.max_payload)  # doctest: +SKIP
    """
    limit = check_limit_arg(limit)
    position = None if cursor is None else decode_cursor(cursor, where)
    stored: list[StoredJob] = []
    for _ in range(FILL_CALLS):
        jobs, position = await backend.search(where, limit - len(stored), position)
        stored.extend(jobs)
        if position is None or len(stored) >= limit:
            break
    return JobPage(
        [JobInfo.from_stored(s, max_payload) for s in stored],
        None if position is None else encode_cursor(position, where),
    )


async def matching_pages(backend: Backend, where: JobFilter, size: int = MAX_IDS) -> AsyncIterator[list[StoredJob]]:
    """Every job matching ``where``, newest first, in pages of at most ``size`` (a search call each).

    A job that moves to a newer search time while paging (retried, cancelled) is not met
    again; one that keeps its place is met once.
    """
    position: Position | None = None
    while True:
        jobs, position = await backend.search(where, size, position)
        if jobs:
            yield jobs
        if position is None:
            return


async def count_matching(backend: Backend, where: JobFilter) -> int:
    """How many jobs match ``where`` (pages through the search; cost grows with the count)."""
    count = 0
    async for jobs in matching_pages(backend, where):
        count += len(jobs)
    return count
