"""fastjobs: fast, trustworthy background jobs for Python.

Example:
    >>> import fastjobs
    >>> app = fastjobs.App("memory://")
    >>> @app.task()
    ... async def add(a: int, b: int) -> int:
    ...     return a + b
    >>> job = add.enqueue_sync(1, 2)
"""

from __future__ import annotations

from ._core import Backoff, Exponential, Fixed, Linear
from ._core import implementation as core_implementation
from ._version import __version__
from .app import App
from .backends.base import Event, Limit, WorkerInfo
from .errors import (
    ArgumentValidationError,
    BackendError,
    BackendUnavailableError,
    ConfigurationError,
    CorruptJobError,
    DependencyError,
    DuplicateJobError,
    Fail,
    FastjobsError,
    HookError,
    InvalidCursorError,
    InvalidOptionError,
    InvalidTransition,
    JobFailedError,
    JobNotFoundError,
    JobStateError,
    JobTimeoutError,
    LeaseExpiredError,
    PayloadTooLargeError,
    ResultTimeoutError,
    Retry,
    SoftTimeLimitExceeded,
    TaskArgumentsError,
    UnencodableError,
    UnknownTaskError,
    WorkerCrashedError,
    WorkerShutdown,
)
from .context import Context
from .handles import Batch, BatchProgress, JobHandle, JobHandles
from .health import Health
from .history import HistoryBucket
from .hooks import Enqueuing, JobOutcome, WorkerState, worker_state
from .job import AttemptError, JobInfo, Progress, new_job_id
from .search import JobPage
from .task import Call, Task
from .worker import Worker
from . import testing


__all__ = [
    "App", "ArgumentValidationError", "AttemptError", "BackendError", "BackendUnavailableError", "Backoff", "Batch", "BatchProgress", "Call", "ConfigurationError", "Context",
    "Enqueuing",
    "CorruptJobError", "DependencyError", "DuplicateJobError", "Event", "Exponential", "Fail", "FastjobsError", "Fixed", "Health", "HistoryBucket", "HookError",
    "InvalidCursorError", "InvalidOptionError", "InvalidTransition", "JobFailedError", "JobHandle", "JobHandles", "JobInfo",
    "JobNotFoundError", "JobOutcome", "JobPage", "JobStateError", "JobTimeoutError",
    "LeaseExpiredError", "Limit", "Linear", "PayloadTooLargeError", "Progress", "ResultTimeoutError", "Retry", "SoftTimeLimitExceeded", "Task", "TaskArgumentsError", "UnencodableError",
    "UnknownTaskError", "Worker", "WorkerCrashedError", "WorkerInfo", "WorkerShutdown", "WorkerState", "__version__", "core_implementation",
    "new_job_id", "testing", "worker_state",
]
