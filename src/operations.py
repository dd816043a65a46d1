"""The operations API of :class:`~fastjobs.App`: find, inspect and act on jobs, and health checks.

:class:`JobOperations` is a base of :class:`~fastjobs.App`: every method here is an App
method (``await app.jobs(...)``, ``await app.retry(id)``). Each is thin: filters and
cursors live in :mod:`fastjobs.search`, actions in :mod:`fastjobs.actions`, health in
:mod:`fastjobs.health`.

Example:
    >>> import fastjobs
    >>> app = fastjobs.App("memory://")
    >>> page = app.run_sync(app.jobs(state="dead"))
    >>> page.jobs, page.cursor
    ([], None)
    >>> app.run_sync(app.check()).ok
    True
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from . import actions
from ._core import DEAD
from .errors import FastjobsError
from .health import Health, check_health
from .job import JobInfo
from .options import UNSET, validate_queue
from .search import JobFilters, JobPage, count_matching, find_jobs, job_filter

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .backends import Backend


class JobOperations:
    """Finding, inspecting and acting on jobs (a base of :class:`~fastjobs.App`; see its methods)."""

    __slots__ = ()

    if TYPE_CHECKING:
        max_payload: int

        async def backend(self) -> Backend: ...

    async def jobs(
        self, *, limit: int = 50, cursor: str | None = None, **filters: Unpack[JobFilters]
    ) -> JobPage:
        """A page of jobs matching every filter given, newest first, and the cursor of the next page.

        Args:
            state, queue, task, tag, since, until: the :class:`~fastjobs.search.JobFilters`,
                keyword arguments: a state name or a list of them (queued, scheduled, waiting,
                active, retry_pending or retry, succeeded, dead, cancelled; None: every state);
                only jobs of this queue, this task (its name), carrying this tag; only jobs
                whose time is in ``[since, until)`` (aware datetimes or epoch seconds). A job's
                time is when it finished (succeeded, dead, cancelled), else when it was
                enqueued. Newest first by that time.
            limit: 1-1000 jobs per page.
            cursor: the ``cursor`` of the previous page (with the same filters).

        Keyset paging: a page costs the same at the 10th job and the 10 millionth. A
        job that changes state between two pages may be seen twice or missed; one
        that stays put is never skipped or repeated. A page may hold fewer than
        ``limit`` jobs and still have a cursor (filters a backend cannot seek on
        are examined a bounded amount per call). Raises
        :class:`~fastjobs.InvalidOptionError` for a bad filter or limit, and its
        subclass :class:`~fastjobs.InvalidCursorError` for a bad cursor.

        Example:
            >>> page = await app.jobs(state="dead", queue="emails", since=time.time() - 86400)  # doctest: +SKIP
            >>> for info in page:  # doctest: +SKIP
            ...     print(info.id, info.task, info.error)
            >>> more = await app.jobs(state="dead", queue="emails", since=..., cursor=page.cursor)  # doctest: +SKIP
        """
        where = job_filter(**filters)
        return await find_jobs(await self.backend(), where, limit, cursor, self.max_payload)

    async def count_matching(self, **filters: Unpack[JobFilters]) -> int:
        """How many jobs match the filters of :meth:`jobs` (pages through them: the cost grows with the count).

        Example:
            >>> await app.count_matching(state="dead", queue="emails")  # doctest: +SKIP
            1204
        """
        return await count_matching(await self.backend(), job_filter(**filters))

    async def retry(
        self,
        job_id: str,
        *,
        args: Sequence[Any] = UNSET,
        kwargs: Mapping[str, Any] = UNSET,
        queue: str | None = None,
        priority: int | None = None,
        max_attempts: int | None = None,
    ) -> bool:
        """Put a dead or cancelled job back in its queue with fresh attempts, maybe edited first.

        ``args``, ``kwargs``, ``queue``, ``priority``, ``max_attempts``: replace the
        job's own, checked as at enqueue (:class:`~fastjobs.InvalidOptionError`,
        :class:`~fastjobs.UnencodableError`, :class:`~fastjobs.PayloadTooLargeError`).
        The job keeps its id and its error list. Returns False, changing nothing,
        if a live job of its queue holds its ``unique_key`` (or it changed state
        meanwhile). Raises :class:`~fastjobs.JobNotFoundError` for an unknown id and
        :class:`~fastjobs.JobStateError` for a job in another state (nothing changed).

        Example:
            >>> await app.retry(job_id)  # doctest: +SKIP
            True
            >>> await app.retry(job_id, kwargs={"to": "fixed@example.com"}, queue="emails-slow")  # doctest: +SKIP
            True
        """
        return await actions.retry_one(
            await self.backend(), job_id, self.max_payload, args=args, kwargs=kwargs, queue=queue,
            priority=priority, max_attempts=max_attempts,
        )

    async def retry_many(self, job_ids: Iterable[str]) -> int:
        """Retry any number of dead or cancelled jobs (1,000 per backend call); returns how many were retried.

        Unknown ids and jobs in other states are skipped.

        Example:
            >>> await app.retry_many([info.id for info in page])  # doctest: +SKIP
            50
        """
        backend = await self.backend()
        return await actions.act_on_ids(backend.retry_jobs, job_ids)

    async def cancel(self, job_id: str) -> bool:
        """Cancel a job that has not finished. Returns False if it already finished or is unknown.

        A running job's worker finds its lease voided; its outcome is discarded.

        Example:
            >>> await app.cancel(job.id)  # doctest: +SKIP
            True
        """
        return await (await self.backend()).cancel(actions.check_job_id(job_id))

    async def cancel_many(self, job_ids: Iterable[str]) -> int:
        """Cancel any number of unfinished jobs (1,000 per backend call); returns how many were cancelled.

        Example:
            >>> await app.cancel_many(ids)  # doctest: +SKIP
            3
        """
        backend = await self.backend()
        return await actions.act_on_ids(backend.cancel_jobs, job_ids)

    async def delete(self, job_id: str) -> bool:
        """Delete a job that is not active, with everything kept about it; its unique key is freed and
        its waiting dependants are treated as if it had been cancelled.

        Raises :class:`~fastjobs.JobNotFoundError` for an unknown id and
        :class:`~fastjobs.JobStateError` for an active job (cancel it first). Returns
        False if it became active meanwhile.

        Example:
            >>> await app.delete(job.id)  # doctest: +SKIP
            True
        """
        return await actions.delete_one(await self.backend(), job_id)

    async def delete_many(self, job_ids: Iterable[str]) -> int:
        """Delete any number of jobs that are not active (1,000 per backend call); returns how many.

        Example:
            >>> await app.delete_many(ids)  # doctest: +SKIP
            12
        """
        backend = await self.backend()
        return await actions.act_on_ids(backend.delete_jobs, job_ids)

    async def retry_matching(self, **filters: Unpack[JobFilters]) -> int:
        """Retry every dead (or cancelled, with ``state=``) job matching the filters of :meth:`jobs`;
        returns how many. Works through them 1,000 per backend call.

        Example:
            >>> await app.retry_matching(queue="emails", task="app.tasks.send_email")  # doctest: +SKIP
            1204
        """
        filters.setdefault("state", "dead")
        backend = await self.backend()
        where = actions.action_filter(actions.RETRY, job_filter(**filters))
        return await actions.act_matching(backend.retry_jobs, backend, where)

    async def cancel_matching(self, **filters: Unpack[JobFilters]) -> int:
        """Cancel every unfinished job matching the filters of :meth:`jobs` (``state`` None: every
        unfinished state, active included); returns how many. 1,000 per backend call.

        Example:
            >>> await app.cancel_matching(tag="tenant:42")  # doctest: +SKIP
            87
        """
        backend = await self.backend()
        where = actions.action_filter(actions.CANCEL, job_filter(**filters))
        return await actions.act_matching(backend.cancel_jobs, backend, where)

    async def delete_matching(self, **filters: Unpack[JobFilters]) -> int:
        """Delete every job matching the filters of :meth:`jobs` that is not active (``state`` None: any
        state but active); returns how many. 1,000 per backend call.

        Example:
            >>> await app.delete_matching(state="succeeded", queue="emails", until=time.time() - 3600)  # doctest: +SKIP
            5000
        """
        backend = await self.backend()
        where = actions.action_filter(actions.DELETE, job_filter(**filters))
        return await actions.act_matching(backend.delete_jobs, backend, where)

    async def purge(self, state: str, queue: str | None = None) -> int:
        """Delete every finished job in ``state`` (``"dead"``, ``"succeeded"`` or ``"cancelled"``),
        of one queue or all; returns how many. 1,000 per backend call.

        Example:
            >>> await app.purge("dead", queue="emails")  # doctest: +SKIP
            1204
        """
        number = actions.purge_state(state)
        if queue is not None:
            validate_queue(queue)
        return await (await self.backend()).purge(number, queue)

    async def clear(self, queue: str) -> int:
        """Delete the jobs of ``queue`` that have not started: queued, scheduled and retry-pending
        ones; returns how many. Active, waiting and finished jobs stay.

        Example:
            >>> await app.clear("emails")  # doctest: +SKIP
            320
        """
        return await actions.clear_queue(await self.backend(), queue)

    async def check(self, queue: str | None = None, max_age: float | None = None) -> Health:
        """Whether the backend answers and, with ``queue`` and ``max_age`` (seconds), whether the oldest
        ready job of ``queue`` has waited less than ``max_age``: for liveness and readiness probes.

        Backend failures give an unhealthy :class:`~fastjobs.Health` (``ok`` False, the reason
        says why), never an error.

        Example:
            >>> health = await app.check(queue="emails", max_age=60)  # doctest: +SKIP
            >>> health.ok, health.oldest_age  # doctest: +SKIP
            (True, 1.3)
        """
        try:
            backend = await self.backend()
        except FastjobsError as exc:  # could not connect (or set up the store)
            return Health(False, f"the backend fails: {type(exc).__name__}: {exc}")
        return await check_health(backend, queue, max_age)

    # Kept for code written before the operations API; each is a thin alias.

    async def retry_dead(self, job_id: str) -> bool:
        """Put a dead job back in its queue with fresh attempts; False if it is not dead or unknown.

        Older API, kept as an alias: prefer :meth:`retry` (which says why it refuses).
        """
        return await (await self.backend()).retry_dead(job_id)

    async def dead_letters(self, queue: str | None = None, limit: int = 100, offset: int = 0) -> list[JobInfo]:
        """Dead jobs, oldest first, with the error of each attempt.

        Older API, kept as an alias: prefer ``await app.jobs(state="dead")`` (newest first, keyset paged).
        """
        if queue is not None:
            validate_queue(queue)
        stored = await (await self.backend()).list_jobs(DEAD, queue, limit, offset)
        return [JobInfo.from_stored(s, self.max_payload) for s in stored]

    async def purge_dead(self, queue: str | None = None) -> int:
        """Delete dead jobs (of one queue, or all); returns how many.

        Older API, kept as an alias of ``await app.purge("dead", queue)``.
        """
        return await self.purge("dead", queue)
