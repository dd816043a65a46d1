"""What enqueueing gives back: :class:`JobHandle`, :class:`JobHandles`, :class:`Batch`.

Example:
    >>> import fastjobs
    >>> app = fastjobs.App("memory://")
    >>> @app.task()
    ... async def ping() -> str:
    ...     return "pong"
    >>> handle = ping.enqueue_sync()
    >>> type(handle).__name__
    'JobHandle'
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar, overload

from .errors import JobFailedError, ResultTimeoutError

if TYPE_CHECKING:
    from .app import App
    from .job import JobInfo

R = TypeVar("R")


class JobHandle(Generic[R]):
    """A reference to an enqueued job.

    Example:
        >>> job = await send_email.enqueue("a@b.c")  # doctest: +SKIP
        >>> (await job.info()).state  # doctest: +SKIP
        'queued'
    """

    __slots__ = ("id", "app")

    def __init__(self, app: App, job_id: str) -> None:
        self.app = app
        self.id = job_id

    def __repr__(self) -> str:
        return f"JobHandle({self.id!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JobHandle) and other.id == self.id and other.app is self.app

    def __hash__(self) -> int:
        return hash(self.id)

    async def info(self) -> JobInfo | None:
        """The job's current :class:`JobInfo` (None once it was cleaned up)."""
        return await self.app.get_job(self.id)

    async def result(self, timeout: float | None = None, poll: float = 0.05) -> R:
        """Wait for the job to finish and return its result.

        Raises :class:`JobFailedError` if it went dead or was cancelled, and
        :class:`~fastjobs.ResultTimeoutError` (a :class:`TimeoutError`) after
        ``timeout`` seconds, with the job's state and last error.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.005
        while True:
            info = await self.app.get_job(self.id)
            if info is None:
                raise JobFailedError(f"job {self.id} does not exist (or its result expired)")
            if info.state == "succeeded":
                result: R = info.result
                return result
            if info.state in ("dead", "cancelled"):
                raise JobFailedError(f"job {self.id} is {info.state}: {info.error or 'cancelled'}")
            if deadline is not None and time.monotonic() >= deadline:
                last = f"; last error: {info.error}" if info.error is not None else ""
                raise ResultTimeoutError(f"job {self.id} did not finish within {timeout} s (state: {info.state}{last})")
            await asyncio.sleep(delay)
            delay = min(delay * 2, poll)

    async def cancel(self) -> bool:
        """Cancel the job if it has not finished; see :meth:`App.cancel`."""
        return await self.app.cancel(self.id)


class JobHandles(Sequence[JobHandle[Any]]):
    """The handles of a bulk enqueue, made on access: a bulk enqueue whose
    handles are never looked at costs no object per job.

    Example:
        >>> handles = await app.enqueue_many([send_email.call("a@b.c")])  # doctest: +SKIP
        >>> handles[0].id, handles.ids  # doctest: +SKIP
    """

    __slots__ = ("app", "ids")

    def __init__(self, app: App, ids: list[str]) -> None:
        self.app = app
        self.ids = ids

    def __len__(self) -> int:
        return len(self.ids)

    @overload
    def __getitem__(self, index: int) -> JobHandle[Any]: ...

    @overload
    def __getitem__(self, index: slice) -> list[JobHandle[Any]]: ...

    def __getitem__(self, index: int | slice) -> JobHandle[Any] | list[JobHandle[Any]]:
        if isinstance(index, slice):
            return [JobHandle(self.app, job_id) for job_id in self.ids[index]]
        return JobHandle(self.app, self.ids[index])

    def __repr__(self) -> str:
        return f"JobHandles({len(self.ids)} jobs)"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, JobHandles):
            return other.app is self.app and other.ids == self.ids
        if isinstance(other, list):
            return list(self) == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]


class BatchProgress(NamedTuple):
    """How far a batch got: counts of its members."""

    total: int
    succeeded: int
    failed: int
    """Dead or cancelled."""
    pending: int
    """Not finished yet (queued, scheduled, running, waiting to retry)."""
    done: bool
    """Every member finished (the callbacks were released)."""


class Batch:
    """A batch of jobs enqueued with :meth:`App.batch`.

    Example:
        >>> batch = await app.batch([resize.call(p) for p in paths], then=notify.call())  # doctest: +SKIP
        >>> (await batch.wait(timeout=60)).failed  # doctest: +SKIP
        0
    """

    __slots__ = ("app", "id", "job_ids", "callback_ids")

    def __init__(self, app: App, batch_id: str, job_ids: list[str], callback_ids: list[str]) -> None:
        self.app = app
        self.id = batch_id
        """The batch's own tracking job: it finishes when every member did."""
        self.job_ids = job_ids
        self.callback_ids = callback_ids

    def __repr__(self) -> str:
        return f"Batch({self.id!r}, {len(self.job_ids)} jobs)"

    @property
    def jobs(self) -> JobHandles:
        return JobHandles(self.app, self.job_ids)

    async def progress(self) -> BatchProgress:
        """Live counts, from one backend read (raises JobFailedError once the batch was cleaned up)."""
        stored = await (await self.app.backend()).get(self.id)
        if stored is None:
            raise JobFailedError(f"batch {self.id} does not exist (or it finished more than result_ttl ago)")
        total = len(stored.parents)
        pending, failed = stored.pending_parents, stored.failed_parents
        return BatchProgress(total, total - pending - failed, failed, pending, pending == 0)

    async def wait(self, timeout: float | None = None) -> BatchProgress:
        """Wait until every member finished (a worker ran the batch's tracking job); return the counts."""
        await JobHandle(self.app, self.id).result(timeout)
        return await self.progress()
