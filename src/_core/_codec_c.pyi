"""Type stub for the compiled job codec; it mirrors ``_codec_py``, the reference twin."""

from collections.abc import Iterable
from typing import Any, ClassVar

# The compiled module takes these from the shared plain module.
from ._codec_rules import DEFAULT_MAX_PAYLOAD as DEFAULT_MAX_PAYLOAD
from ._codec_rules import FIELDS as FIELDS
from ._codec_rules import SCHEMA_VERSION as SCHEMA_VERSION

class JobRecord:
    """One job as it travels: identity, routing, arguments and retry policy."""

    __hash__: ClassVar[None]  # type: ignore[assignment]
    _FASTJOBS_JOB_RECORD: ClassVar[bool]

    id: str
    task: str
    queue: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    priority: int
    attempt: int
    max_attempts: int
    run_at: float
    enqueued_at: float
    timeout: float | None
    backoff: tuple[str, float, float, float, str] | None
    unique_key: str | None
    parents: tuple[str, ...]
    meta: dict[str, Any]

    def __init__(
        self,
        id: str,
        task: str,
        queue: str = "default",
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        priority: int = 0,
        attempt: int = 0,
        max_attempts: int = 1,
        run_at: float = 0.0,
        enqueued_at: float = 0.0,
        timeout: float | None = None,
        backoff: tuple[str, float, float, float, str] | None = None,
        unique_key: str | None = None,
        parents: tuple[str, ...] = (),
        meta: dict[str, Any] | None = None,
    ) -> None: ...
    def _field_values(self) -> tuple[Any, ...]: ...
    def __eq__(self, other: object) -> bool: ...
    def __reduce__(self) -> tuple[type[JobRecord], tuple[Any, ...]]: ...
    def replace(self, **changes: Any) -> JobRecord:
        """Return a copy with some fields changed; unchanged fields are shared, not copied."""

class JobTemplate:
    """The fields of a new job that a task's options fix, checked and encoded once."""

    task: str
    queue: str
    priority: int
    max_attempts: int
    timeout: float | None
    backoff: tuple[str, float, float, float, str] | None

    def __init__(self, task: str, queue: str, priority: int, max_attempts: int, timeout: float | None,
                 backoff: tuple[str, float, float, float, str] | None) -> None: ...
    def encode(self, id: str, args: tuple[Any, ...] | list[Any], kwargs: dict[str, Any] | None, run_at: float,
               enqueued_at: float, unique_key: str | None, parents: tuple[str, ...] | list[str],
               meta: dict[str, Any] | None, max_size: int = ...) -> bytes:
        """The job's bytes, as ``encode_job`` writes them (``kwargs`` / ``meta`` None: empty)."""

def encode_job(job: JobRecord, max_size: int = ...) -> bytes:
    """Encode a job as msgpack bytes, checking every field on the way."""

def decode_job(data: bytes, max_size: int = ...) -> JobRecord:
    """Decode bytes written by :func:`encode_job` (by either twin) into a JobRecord."""

def encode_value(value: Any, max_size: int = ...) -> bytes:
    """Encode one user value (a result, an error's details...) as msgpack bytes."""

def decode_value(data: bytes, max_size: int = ...) -> Any:
    """Decode bytes written by :func:`encode_value` back into the value."""

__all__ = [
    "DEFAULT_MAX_PAYLOAD", "FIELDS", "JobRecord", "JobTemplate", "SCHEMA_VERSION",
    "decode_job", "decode_value", "encode_job", "encode_value",
]

def tally_starts(records: Iterable[JobRecord], now: float, bounds: tuple[float, ...]) -> list[tuple[Any, Any, int, list[Any]]]: ...
