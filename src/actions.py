"""Acting on jobs: retry (with edits), cancel and delete, by id or by filter, purge and clear.

Each action knows which states allow it; acting on one id checks the state first
and raises :class:`~fastjobs.JobNotFoundError` / :class:`~fastjobs.JobStateError`
(nothing changed), while acting on many ids counts what applied. Many ids and
filters go to the backend :data:`~fastjobs.backends.MAX_IDS` at a time, one call
per batch: a million dead jobs never make one long Redis script or PostgreSQL
transaction.

The functions take a connected :class:`~fastjobs.backends.Backend`, so a tool
holding its own uses them as the App does.

Example:
    >>> from fastjobs.actions import RETRY
    >>> RETRY.name, RETRY.allowed_names
    ('retry', ('dead', 'cancelled'))
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ._core import (
    ACTIVE,
    CANCELLED,
    DEAD,
    QUEUED,
    RETRY_PENDING,
    SCHEDULED,
    STATE_NAMES,
    SUCCEEDED,
    WAITING,
    decode_job,
    encode_job,
)
from .backends.base import MAX_IDS, Backend, JobEdit, JobFilter, StoredJob
from .errors import InvalidOptionError, JobNotFoundError, JobStateError
from .options import TASK_NAME, UNSET, TaskOptions, validate_queue
from .search import matching_pages

ActOnIds = Callable[[Sequence[str]], Awaitable[list[bool]]]
"""A backend's batch operation: ``retry_jobs``, ``cancel_jobs`` or ``delete_jobs``."""


@dataclass(frozen=True, slots=True)
class Action:
    """What an action is called and which states allow it."""

    name: str
    allowed: tuple[int, ...]
    hint: str = ""

    @property
    def allowed_names(self) -> tuple[str, ...]:
        return tuple(STATE_NAMES[s] for s in self.allowed)

    def refuse(self, job_id: str, state: int) -> JobStateError:
        """The error for acting on ``job_id`` in ``state``."""
        return JobStateError(job_id, self.name, STATE_NAMES[state], self.allowed_names, self.hint)


RETRY = Action("retry", (DEAD, CANCELLED))
CANCEL = Action("cancel", (SCHEDULED, QUEUED, ACTIVE, RETRY_PENDING, WAITING))
DELETE = Action(
    "delete", (SCHEDULED, QUEUED, RETRY_PENDING, WAITING, SUCCEEDED, DEAD, CANCELLED),
    "delete takes any job that is not active: cancel it first",
)
PURGE = Action("purge", (SUCCEEDED, DEAD, CANCELLED))
CLEAR = (QUEUED, SCHEDULED, RETRY_PENDING)
"""The states :func:`clear` deletes: jobs not started yet (waiting ones stay with their parents)."""


def check_job_id(job_id: object) -> str:
    """``job_id`` if it can be a job id, else :class:`~fastjobs.InvalidOptionError`."""
    if not isinstance(job_id, str) or not TASK_NAME.match(job_id):
        raise InvalidOptionError(f"a job id is a str of 1-200 characters without spaces, not {job_id!r}")
    return job_id


def check_job_ids(job_ids: Iterable[str]) -> list[str]:
    """``job_ids`` as a list of distinct ids in their order, each checked."""
    if isinstance(job_ids, (str, bytes)):
        raise InvalidOptionError(f"pass a list of job ids, not one str ({job_ids!r}): use [{job_ids!r}]")
    return list(dict.fromkeys(check_job_id(job_id) for job_id in job_ids))


def action_filter(action: Action, where: JobFilter) -> JobFilter:
    """``where`` limited to the states ``action`` allows; InvalidOptionError if it names another state."""
    if not where.states:
        return JobFilter(action.allowed, where.queue, where.task, where.tag, where.since, where.until)
    refused = [STATE_NAMES[s] for s in where.states if s not in action.allowed]
    if refused:
        raise InvalidOptionError(
            f"{action.name} does not apply to {', '.join(refused)} jobs: it takes {', '.join(action.allowed_names)}"
        )
    return where


async def act_on_ids(op: ActOnIds, job_ids: Iterable[str]) -> int:
    """Apply a backend batch operation to any number of ids, :data:`MAX_IDS` per call; how many applied."""
    ids = check_job_ids(job_ids)
    done = 0
    for start in range(0, len(ids), MAX_IDS):
        done += sum(await op(ids[start:start + MAX_IDS]))
    return done


async def act_matching(op: ActOnIds, backend: Backend, where: JobFilter) -> int:
    """Apply a backend batch operation to every job matching ``where``, a search page
    (:data:`MAX_IDS` jobs) at a time; how many applied."""
    done = 0
    async for jobs in matching_pages(backend, where):
        done += sum(await op([job.id for job in jobs]))
    return done


def _edit(record_body: bytes, max_payload: int, args: Any, kwargs: Any, queue: str | None,
          priority: int | None, max_attempts: int | None) -> JobEdit:
    record = decode_job(record_body, max_payload)
    if args is not UNSET:
        if not isinstance(args, (list, tuple)):
            raise InvalidOptionError(f"args takes a list or tuple of positional arguments, not {args!r}")
        record.args = tuple(args)
    if kwargs is not UNSET:
        if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
            raise InvalidOptionError(f"kwargs takes a dict with str keys, not {kwargs!r}")
        record.kwargs = dict(kwargs)
    # Checked by the same rules as a task's options at enqueue.
    checked = TaskOptions(
        record.queue if queue is None else queue,
        record.priority if priority is None else priority,
        record.max_attempts if max_attempts is None else max_attempts,
        None, None, None,
    )
    record.queue, record.priority, record.max_attempts = checked.queue, checked.priority, checked.max_attempts
    return JobEdit(encode_job(record, max_payload), checked.queue, checked.priority, checked.max_attempts)


async def retry_one(
    backend: Backend,
    job_id: str,
    max_payload: int,
    *,
    args: Any = UNSET,
    kwargs: Any = UNSET,
    queue: str | None = None,
    priority: int | None = None,
    max_attempts: int | None = None,
) -> bool:
    """Retry one dead or cancelled job, maybe edited first; see :meth:`App.retry <fastjobs.App.retry>`."""
    check_job_id(job_id)
    if queue is not None:
        validate_queue(queue)
    stored = await _stored_for(RETRY, backend, job_id)
    edit = None
    if args is not UNSET or kwargs is not UNSET or queue is not None or priority is not None or max_attempts is not None:
        edit = _edit(stored.body, max_payload, args, kwargs, queue, priority, max_attempts)
    return (await backend.retry_jobs([job_id], edit))[0]


async def delete_one(backend: Backend, job_id: str) -> bool:
    """Delete one job that is not active; see :meth:`App.delete <fastjobs.App.delete>`."""
    check_job_id(job_id)
    await _stored_for(DELETE, backend, job_id)
    return (await backend.delete_jobs([job_id]))[0]


async def _stored_for(action: Action, backend: Backend, job_id: str) -> StoredJob:
    """The job ``job_id`` if ``action`` may act on it now; else JobNotFoundError, or the action's JobStateError."""
    stored = await backend.get(job_id)
    if stored is None:
        raise JobNotFoundError(job_id)
    if stored.state not in action.allowed:
        raise action.refuse(job_id, stored.state)
    return stored


def purge_state(state: object) -> int:
    """The finished state a purge takes (``"dead"``, ``"succeeded"``, ``"cancelled"``), or InvalidOptionError."""
    if not isinstance(state, str) or state not in PURGE.allowed_names:
        raise InvalidOptionError(f"purge takes a finished state ({', '.join(PURGE.allowed_names)}), not {state!r}")
    return STATE_NAMES.index(state)


async def clear_queue(backend: Backend, queue: str) -> int:
    """Delete the queued, scheduled and retry-pending jobs of ``queue``; how many. See :meth:`App.clear
    <fastjobs.App.clear>`."""
    where = JobFilter(CLEAR, validate_queue(queue))
    return await act_matching(backend.delete_jobs, backend, where)
