"""After a failed attempt: retry (and after how long) or dead-letter.

The delay comes from the job's own backoff (carried in its body, so a retry
follows the policy it was enqueued with), seeded by the job id so that every
worker computes the same schedule. :class:`~fastjobs.Fail` dead-letters at
once; :class:`~fastjobs.Retry` retries while attempts remain, after its own
delay or the backoff's.

A task registered with a backoff *function* (``@app.task(backoff=fn)``) cannot
carry it in the body: the worker finds it on the task its registry holds under the
job's task name (the one that ran the attempt, whatever the executor) and passes it
to :meth:`RetryPolicy.decide`, which asks it while attempts remain. Should it raise or return anything
but seconds or None, the error is logged and the backoff in the body (the
default :class:`~fastjobs.Exponential`) decides instead: a bug in the function
then costs a delay, never the job (``max_attempts`` still bounds the retries).

Example:
    >>> from fastjobs.retries import jitter_seed
    >>> jitter_seed("job-1") == jitter_seed("job-1")
    True
"""

from __future__ import annotations

import hashlib
import logging
import math
from typing import TYPE_CHECKING, Any

from ._core import RETRY_PENDING, Backoff, decide_retry
from .errors import Fail, InvalidOptionError, Retry

if TYPE_CHECKING:
    from ._core import JobRecord
    from .options import BackoffFunction

log = logging.getLogger("fastjobs.worker")

MAX_BACKOFF_SECONDS = 366 * 86400.0
"""The longest delay a backoff function may ask for (a longer one is a bug, like a negative one)."""
_ASK_BODY: Any = object()


def jitter_seed(job_id: str) -> int:
    """A per-job jitter seed that every worker derives alike (``hash()`` is salted per process)."""
    return int.from_bytes(hashlib.blake2b(job_id.encode(), digest_size=8).digest(), "big")


class RetryPolicy:
    """Decides each failed attempt's fate; caches the Backoff of each spec it meets."""

    def __init__(self) -> None:
        self._backoffs: dict[tuple[Any, ...], Backoff] = {}

    def decide(self, job_id: str, record: JobRecord, attempt: int, exc: BaseException,
               function: BackoffFunction | None = None) -> tuple[bool, float]:
        """``(retry, delay)`` for attempt ``attempt`` of a job that raised ``exc``; ``function``:
        its task's backoff function (``Task.backoff_fn``), if it has one."""
        if isinstance(exc, Fail):
            return False, 0.0
        if function is not None and not (isinstance(exc, Retry) and exc.delay is not None):
            if attempt >= record.max_attempts:
                return False, 0.0
            delay = self._ask(function, record, attempt, exc)
            if delay is not _ASK_BODY:
                return (False, 0.0) if delay is None else (True, delay)
        if isinstance(exc, Retry):
            delay = exc.delay if exc.delay is not None else self._backoff_delay(record, attempt)
            return attempt < record.max_attempts, delay
        state, delay = decide_retry(attempt, record.max_attempts, 0.0, self._backoff(record), jitter_seed(job_id))
        return state == RETRY_PENDING, delay

    def _backoff(self, record: JobRecord) -> Backoff | None:
        spec = record.backoff
        if spec is None:
            return None
        backoff = self._backoffs.get(spec)
        if backoff is None:
            try:
                backoff = self._backoffs[spec] = Backoff.from_spec(spec)
            except InvalidOptionError:
                return None  # a damaged spec retries at once rather than never
        return backoff

    def _backoff_delay(self, record: JobRecord, attempt: int) -> float:
        backoff = self._backoff(record)
        return 0.0 if backoff is None else backoff.delay(attempt, jitter_seed(record.id))

    @staticmethod
    def _ask(function: Any, record: JobRecord, attempt: int, exc: BaseException) -> Any:
        """The function's delay in seconds, None (dead-letter), or _ASK_BODY after logging why not."""
        try:
            delay = function(attempt, exc)
        except Exception:
            log.exception("the backoff function of task %s raised on job %s attempt %d; "
                          "using the job's own backoff instead (fix the function)", record.task, record.id, attempt)
            return _ASK_BODY
        if delay is None:
            return None
        if (isinstance(delay, bool) or not isinstance(delay, (int, float)) or not math.isfinite(delay)
                or not 0 <= delay <= MAX_BACKOFF_SECONDS):
            log.error("the backoff function of task %s returned %r for job %s attempt %d; it must return seconds "
                      "from 0 to %d or None (dead-letter); using the job's own backoff instead",
                      record.task, delay, record.id, attempt, MAX_BACKOFF_SECONDS)
            return _ASK_BODY
        return float(delay)

