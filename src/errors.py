"""Every error fastjobs raises on purpose; all derive from :class:`FastjobsError`.

Example:
    >>> import fastjobs
    >>> try:
    ...     fastjobs.App("mysql://localhost")
    ... except fastjobs.ConfigurationError as exc:
    ...     print(type(exc).__name__)
    ConfigurationError
"""

from __future__ import annotations

from ._core._errors import (
    CorruptJobError,
    FastjobsError,
    InvalidOptionError,
    InvalidTransition,
    PayloadTooLargeError,
    UnencodableError,
)


class ConfigurationError(FastjobsError, ValueError):
    """The App, backend URL or worker settings are unusable; the message says how to fix them."""


class DuplicateJobError(FastjobsError, ValueError):
    """A job with this id already exists (ids are unique until cleanup removes the finished job).

    Example:
        >>> await task.options(job_id="order-42").enqueue()  # doctest: +SKIP
        >>> await task.options(job_id="order-42").enqueue()  # doctest: +SKIP
        Traceback (most recent call last):
        fastjobs.errors.DuplicateJobError: job id 'order-42' already exists: ...
    """

    def __init__(self, job_id: str, *, in_batch: bool = False) -> None:
        what = "appears more than once in this batch" if in_batch else "already exists"
        super().__init__(
            f"job id {job_id!r} {what}: give each job its own job_id, "
            "or leave job_id out to get a fresh one (use unique_key= to deduplicate)"
        )
        self.job_id = job_id


class DependencyError(FastjobsError, ValueError):
    """A ``depends_on`` parent is unusable: unknown (never enqueued, or cleaned up), or, on
    Redis, in another queue than its dependant. Nothing of the enqueue was stored.

    Example:
        >>> await report.options(depends_on=["no-such-job"]).enqueue()  # doctest: +SKIP
        Traceback (most recent call last):
        fastjobs.errors.DependencyError: job ... depends on 'no-such-job', which does not exist: ...
    """

    def __init__(self, job_id: str, parent: str, reason: str = "unknown") -> None:
        if reason == "queue":
            text = (
                f"job {job_id!r} depends on {parent!r}, which is in another queue: on Redis a job and its "
                "parents must share a queue (one Cluster slot); enqueue them into the same queue"
            )
        else:
            text = (
                f"job {job_id!r} depends on {parent!r}, which does not exist: enqueue the parent first "
                "(or in the same enqueue_many call); a finished parent is forgotten after result_ttl / dead_ttl"
            )
        super().__init__(text)
        self.job_id = job_id
        self.parent = parent
        self.reason = reason


class TaskArgumentsError(InvalidOptionError, TypeError):
    """Enqueue arguments that cannot bind to the task's handler (missing, extra or unknown ones).

    Raised at enqueue, before anything is stored, instead of failing every attempt on the
    worker. It is both an :class:`InvalidOptionError` and a ``TypeError`` (what calling the
    handler directly with them raises), so either ``except`` catches it.

    Example:
        >>> await charge.enqueue(42)  # doctest: +SKIP
        Traceback (most recent call last):
        fastjobs.errors.TaskArgumentsError: task 'billing.charge' takes (account: int, cents: int): ...
    """


class InvalidCursorError(InvalidOptionError):
    """A ``cursor=`` that no page of this search returned (mangled, truncated, or from a search
    with other filters). Start again without a cursor, or repeat the filters the cursor came with.

    Example:
        >>> await app.jobs(state="dead", cursor="not-a-cursor")  # doctest: +SKIP
        Traceback (most recent call last):
        fastjobs.errors.InvalidCursorError: cursor 'not-a-cursor' is not one a page returned: ...
    """


class JobNotFoundError(FastjobsError, LookupError):
    """No job has this id: it was never enqueued, or it was deleted or cleaned up after
    ``result_ttl`` / ``dead_ttl``.

    Example:
        >>> await app.retry("no-such-job")  # doctest: +SKIP
        Traceback (most recent call last):
        fastjobs.errors.JobNotFoundError: no job 'no-such-job': ...
    """

    def __init__(self, job_id: str) -> None:
        super().__init__(
            f"no job {job_id!r}: it was never enqueued, or it was deleted or cleaned up "
            "(finished jobs are kept result_ttl / dead_ttl seconds)"
        )
        self.job_id = job_id


class JobStateError(FastjobsError):
    """A job is in a state that does not allow the action (retry a running job, delete an active
    one); nothing was changed. ``state`` is the job's state, ``allowed`` the states that would do.

    Example:
        >>> await app.retry(running_job.id)  # doctest: +SKIP
        Traceback (most recent call last):
        fastjobs.errors.JobStateError: cannot retry job '...': it is active; retry takes dead or cancelled jobs
    """

    def __init__(self, job_id: str, action: str, state: str, allowed: tuple[str, ...], hint: str = "") -> None:
        text = f"cannot {action} job {job_id!r}: it is {state}; {action} takes {' or '.join(allowed)} jobs"
        super().__init__(text + (f" ({hint})" if hint else ""))
        self.job_id = job_id
        self.action = action
        self.state = state
        self.allowed = allowed


class BackendError(FastjobsError):
    """The backend's server refused or failed an operation (out of memory, a damaged key, ...);
    the message carries the server's reason and ``__cause__`` the client library's error."""


class BackendUnavailableError(BackendError, ConnectionError):
    """The backend cannot be reached (down, unreachable, refusing the credentials), or its client
    library is not installed. ``__cause__`` is the client library's error.

    Raised once the backend has tried to connect for ``connect_timeout`` seconds (an App
    argument), so a short blip (a restart, a failover) is ridden out and a longer outage
    fails in bounded time. Retrying is safe: if the connection broke after the request
    was sent, the operation may have been applied, and claims, acks, cancels and the like
    are idempotent or fenced. An enqueue retried that way stores a second job unless the
    first carried a ``job_id`` (the retry then raises :class:`DuplicateJobError`) or a
    ``unique_key`` (the retry returns the first job).

    Example:
        >>> try:  # doctest: +SKIP
        ...     await send_email.enqueue("a@b.c")
        ... except fastjobs.BackendUnavailableError:
        ...     ...  # retry later, or report the outage
    """


class UnknownTaskError(FastjobsError, LookupError):
    """A job names a task this worker has not registered (the job is dead-lettered)."""


class JobTimeoutError(FastjobsError, TimeoutError):
    """A job ran longer than its ``timeout``; the attempt failed."""


class LeaseExpiredError(FastjobsError):
    """A job's lease ran out (its worker died or stalled) and it was taken back."""


class SoftTimeLimitExceeded(FastjobsError):
    """Raised inside a process-executor handler once it ran past its task's ``soft_timeout``: catch
    it to clean up before the hard ``timeout`` kills the process. Uncaught, the attempt fails
    with it (and is retried per the task's policy).

    Example:
        >>> @app.task(executor="process", soft_timeout=50, timeout=60)  # doctest: +SKIP
        ... def export(path: str) -> None:
        ...     try:
        ...         write_rows(path)
        ...     except fastjobs.SoftTimeLimitExceeded:
        ...         remove_partial_file(path)
        ...         raise
    """


class WorkerCrashedError(FastjobsError):
    """The process running a job (``executor="process"``) died: a segfault, ``os._exit``, the
    OOM killer. Only that attempt failed; it is retried per the task's policy. If it keeps
    happening, run the handler alone to find what kills it, or lower its memory use.

    Example:
        >>> str(WorkerCrashedError("the process running this job died with signal 11 (SIGSEGV)"))
        'the process running this job died with signal 11 (SIGSEGV)'
    """


class HookError(FastjobsError):
    """An ``on_worker_start`` hook raised: the worker stopped before claiming (``fastjobs worker``
    exits with status 3). The hook's exception is the ``__cause__``; fix the hook or what it opens."""


class WorkerShutdown(FastjobsError):
    """A running job was interrupted because its worker shut down."""


class JobFailedError(FastjobsError):
    """Raised by ``await job.result()`` when the job went dead or was cancelled."""


class ResultTimeoutError(FastjobsError, TimeoutError):
    """Raised by ``await job.result(timeout=...)`` when the job did not finish in time.

    The message names the job's state and its last recorded error, if any; the job
    itself is untouched (it may still finish: wait again, or cancel it).
    """


class Retry(FastjobsError):
    """Raise from a handler to retry the job, optionally after ``delay`` seconds.

    The attempt still counts toward ``max_attempts``.

    Example:
        >>> import fastjobs
        >>> app = fastjobs.App()
        >>> @app.task(max_attempts=5)
        ... async def poll(url: str) -> None:
        ...     raise fastjobs.Retry(delay=10, reason="not ready yet")
    """

    def __init__(self, delay: float | None = None, reason: str = "retry requested") -> None:
        super().__init__(reason)
        self.delay = delay


class Fail(FastjobsError):
    """Raise from a handler to send the job to the dead-letter queue without further attempts."""


class ArgumentValidationError(Fail, ValueError):
    """A job's typed argument (a dataclass, TypedDict, enum or pydantic model, see :mod:`fastjobs.typed`)
    does not fit its annotation: raised on the worker before the handler runs, so the job is
    dead-lettered at once with this message (a :class:`Fail`: the same payload would fail every
    attempt). Fix what enqueued it, then enqueue a corrected job.

    Example:
        >>> (await app.get_job(job.id)).error  # doctest: +SKIP
        "ArgumentValidationError: task 'shop.ship': argument 'order' is not a valid Order: .qty: expected int, ..."
    """


__all__ = [
    "ArgumentValidationError", "BackendError", "BackendUnavailableError", "ConfigurationError", "CorruptJobError", "Fail", "FastjobsError",
    "InvalidCursorError", "InvalidOptionError", "InvalidTransition", "JobFailedError", "JobNotFoundError",
    "JobStateError", "JobTimeoutError", "ResultTimeoutError",
    "LeaseExpiredError", "PayloadTooLargeError", "Retry", "UnencodableError", "UnknownTaskError",
    "SoftTimeLimitExceeded", "TaskArgumentsError", "WorkerCrashedError", "WorkerShutdown",
]
