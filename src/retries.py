"""After a failed attempt: retry (and after how long) or dead-letter.

The delay comes from the job's own backoff (carried in its body, so a retry
follows the policy it was enqueued with), seeded by the job id so that every
worker computes the same schedule. :class:`~fastjobs.Fail` dead-letters at
once; :class:`~fastjobs.Retry` retries while attempts remain, after its own
delay or the backoff's.

Example:
    >>> from fastjobs.retries import jitter_seed
    >>> jitter_seed("job-1") == jitter_seed("job-1")
    True
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from ._core import RETRY_PENDING, Backoff, decide_retry
from .errors import Fail, InvalidOptionError, Retry

if TYPE_CHECKING:
    from ._core import JobRecord


def jitter_seed(job_id: str) -> int:
    """A per-job jitter seed that every worker derives alike (``hash()`` is salted per process)."""
    return int.from_bytes(hashlib.blake2b(job_id.encode(), digest_size=8).digest(), "big")


class RetryPolicy:
    """Decides each failed attempt's fate; caches the Backoff of each spec it meets."""

    def __init__(self) -> None:
        self._backoffs: dict[tuple[Any, ...], Backoff] = {}

    def decide(self, job_id: str, record: JobRecord, attempt: int, exc: BaseException) -> tuple[bool, float]:
        """``(retry, delay)`` for attempt ``attempt`` of a job that raised ``exc``."""
        if isinstance(exc, Fail):
            return False, 0.0
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
