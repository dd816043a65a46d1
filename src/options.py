"""Validation of everything a caller passes: queue names, seconds, limits, per-task options.

One place for the rules, so :class:`~fastjobs.App`, :class:`~fastjobs.Task` and
the worker refuse the same input with the same message.

Example:
    >>> from fastjobs.options import validate_queue
    >>> validate_queue("emails")
    'emails'
"""

from __future__ import annotations

import datetime as _dt
import inspect
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypedDict

from ._core import Backoff, UnencodableError, encode_value
from .backends.base import MAX_TAGS, TAG_MAX, Limit, NewJob
from .constants import MAX_ATTEMPTS_LIMIT, PRIORITY_RANGE, RESERVED_META_PREFIXES
from .errors import InvalidOptionError

QUEUE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,99}\Z")
"""Queue names: 1-100 characters, letters, digits and ``_ . : -``, not starting with punctuation."""
TASK_NAME = re.compile(r"^[^\x00-\x1f\s]{1,200}\Z")
"""Task names and job ids: 1-200 characters, no spaces or control characters."""
LIMIT_KEY = re.compile(r"^[^\x00-\x1f]{1,200}\Z")

BackoffFunction = Callable[[int, BaseException], "float | None"]
"""``@app.task(backoff=fn)``: ``fn(attempt, error)`` gives the seconds until the retry, or None to dead-letter."""

UNSET: Any = object()
"""Marks an option the caller did not pass (None is a meaningful value for several)."""


def validate_queue(queue: object) -> str:
    """Return ``queue`` if it is a valid queue name, else raise :class:`InvalidOptionError`."""
    if not isinstance(queue, str) or not QUEUE_NAME.match(queue):
        raise InvalidOptionError(
            f"invalid queue name {queue!r}: use 1-100 letters, digits, '_', '.', ':' or '-', "
            "starting with a letter or digit"
        )
    return queue


def check_seconds(name: str, value: object, *, allow_zero: bool = True) -> float:
    """``value`` (a number or a timedelta) as float seconds, or raise InvalidOptionError naming ``name``."""
    if isinstance(value, _dt.timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidOptionError(f"{name} must be a finite number of seconds, not {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = "zero or more" if allow_zero else "more than zero"
        raise InvalidOptionError(f"{name} must be {bound} seconds, not {value!r}")
    return float(value)


def check_tag(tag: object, name: str = "tag") -> str:
    """``tag`` if it is a usable tag (1-:data:`TAG_MAX` printable characters, not only spaces), else
    :class:`InvalidOptionError` naming ``name``.

    Example:
        >>> check_tag("tenant:42")
        'tenant:42'
    """
    if not isinstance(tag, str) or not 0 < len(tag) <= TAG_MAX or not tag.isprintable() or not tag.strip():
        raise InvalidOptionError(
            f"{name} must be a str of 1-{TAG_MAX} printable characters, not only spaces, "
            f"without control characters, not {tag!r}"
        )
    return tag


def check_tags(tags: object) -> tuple[str, ...]:
    """``tags`` as a tuple of distinct tags in their order, or :class:`InvalidOptionError`.

    At most :data:`MAX_TAGS`, each checked by :func:`check_tag`.

    Example:
        >>> check_tags(["tenant:42", "import", "import"])
        ('tenant:42', 'import')
    """
    if isinstance(tags, (str, bytes)) or not isinstance(tags, (Sequence, set, frozenset)):
        raise InvalidOptionError(f"tags takes a list of strings (tags=['import']), not {tags!r}")
    checked = tuple(dict.fromkeys(check_tag(tag) for tag in tags))
    if len(checked) > MAX_TAGS:
        raise InvalidOptionError(f"a job carries at most {MAX_TAGS} tags, not {len(checked)}")
    return checked


def check_meta(meta: object) -> dict[str, Any]:
    """A copy of ``meta`` if it is usable as a job's metadata, else :class:`InvalidOptionError`.

    A mapping with str keys, msgpack-encodable (the types of task arguments), no key starting
    with ``fastjobs.`` or ``_fastjobs`` (fastjobs' own). Its size counts in the App's
    ``max_payload``, checked at enqueue.

    Example:
        >>> check_meta({"source": "api"})
        {'source': 'api'}
    """
    if not isinstance(meta, Mapping):
        raise InvalidOptionError(f"meta takes a dict with str keys (meta={{'source': 'api'}}), not {meta!r}")
    copy = dict(meta)
    for key in copy:
        if not isinstance(key, str):
            raise InvalidOptionError(f"meta keys must be str, not {key!r}")
        if key.startswith(RESERVED_META_PREFIXES):
            raise InvalidOptionError(
                f"meta key {key!r} is reserved: keys starting with "
                f"{' or '.join(repr(p) for p in RESERVED_META_PREFIXES)} are fastjobs' own; rename it"
            )
    try:
        encode_value(copy, 1 << 62)
    except UnencodableError as exc:
        raise InvalidOptionError(f"meta cannot be stored: {exc}") from exc
    return copy


def check_limit(limit: object, key: str) -> Limit:
    """Return ``limit`` with its key set (``key`` unless it names its own), or raise InvalidOptionError."""
    if not isinstance(limit, Limit):
        raise InvalidOptionError(f"limit must be a fastjobs.Limit(concurrency=..., rate=..., per=...), not {limit!r}")
    key = limit.key or key
    if not isinstance(key, str) or not LIMIT_KEY.match(key):
        raise InvalidOptionError(f"limit key must be 1-200 printable characters, not {key!r}")
    for name in ("concurrency", "rate"):
        value = getattr(limit, name)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1_000_000:
            raise InvalidOptionError(f"Limit.{name} must be an int from 0 (no limit) to 1000000, not {value!r}")
    if not limit.concurrency and not limit.rate:
        raise InvalidOptionError("a Limit needs concurrency= (at most N running at once) and/or rate= with per=")
    per = check_seconds("Limit.per", limit.per)
    if limit.rate and not 0 < per <= 86400 * 7:
        raise InvalidOptionError(f"Limit.per must be more than 0 and at most a week of seconds with rate=, not {limit.per!r}")
    if not limit.rate and per:
        raise InvalidOptionError("Limit.per is the window of rate=: give rate= too, or leave per out")
    return Limit(key, limit.concurrency, limit.rate, per)


class TaskOptions:
    """Per-task defaults, overridable per call with :meth:`Task.options`."""

    __slots__ = ("queue", "priority", "max_attempts", "backoff", "backoff_spec", "timeout", "lease", "limit")

    def __init__(
        self,
        queue: str,
        priority: int,
        max_attempts: int,
        backoff: Backoff | None,
        timeout: float | None,
        lease: float | None,
        limit: Limit | None = None,
    ) -> None:
        self.queue = validate_queue(queue)
        if isinstance(priority, bool) or not isinstance(priority, int) or not (
            PRIORITY_RANGE[0] <= priority <= PRIORITY_RANGE[1]
        ):
            raise InvalidOptionError(
                f"priority must be an int from {PRIORITY_RANGE[0]} to {PRIORITY_RANGE[1]}, not {priority!r}"
            )
        self.priority = priority
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or not (
            1 <= max_attempts <= MAX_ATTEMPTS_LIMIT
        ):
            raise InvalidOptionError(f"max_attempts must be an int from 1 to {MAX_ATTEMPTS_LIMIT}, not {max_attempts!r}")
        self.max_attempts = max_attempts
        if backoff is not None and not isinstance(backoff, Backoff):
            raise InvalidOptionError(
                f"backoff must be a fastjobs.Backoff (Fixed, Linear, Exponential) or None, not {backoff!r}; "
                "a function (attempt, error) -> seconds is given once, to @app.task(backoff=fn)"
            )
        self.backoff = backoff
        self.backoff_spec = None if backoff is None else backoff.to_spec()
        self.timeout = None if timeout is None else check_seconds("timeout", timeout, allow_zero=False)
        self.lease = None if lease is None else check_seconds("lease", lease, allow_zero=False)
        self.limit = limit
        """A checked Limit with its key set, or None."""


class TaskSettings(TypedDict, total=False):
    """The keyword arguments of :meth:`App.task <fastjobs.App.task>` that :meth:`App.periodic
    <fastjobs.App.periodic>` passes on to it (each defaults as in ``task``).

    Example:
        >>> settings: TaskSettings = {"queue": "reports", "max_attempts": 1}
        >>> sorted(settings)
        ['max_attempts', 'queue']
    """

    name: str | None
    """The task's name; default ``module.qualname``."""
    queue: str
    priority: int
    max_attempts: int
    backoff: Backoff | BackoffFunction | None
    timeout: float | None
    lease: float | None
    context: bool
    """Pass a :class:`~fastjobs.Context` first to the handler."""
    executor: str | None
    """Where a plain ``def`` handler runs: ``"thread"`` or ``"process"`` (default: the worker's)."""
    soft_timeout: float | None
    """With ``executor="process"``: raise :class:`~fastjobs.SoftTimeLimitExceeded` in the handler after this many seconds."""


def check_dependencies(jobs: Sequence[NewJob]) -> None:
    """Refuse what the backends may assume away: self-dependencies, cycles within
    the batch, and in-batch parents that a unique key could replace."""
    in_batch = {job.id: job for job in jobs}
    for job in jobs:
        for parent in job.depends_on:
            if parent == job.id:
                raise InvalidOptionError(f"job {job.id!r} depends on itself")
            found = in_batch.get(parent)
            if found is not None and found.unique_key is not None:
                raise InvalidOptionError(
                    f"job {job.id!r} depends on {parent!r}, enqueued in the same call with unique_key="
                    f"{found.unique_key!r}: a duplicate would not be stored; enqueue the parent first"
                )
    # Depth-first search over in-batch edges (jobs stored earlier cannot depend on these).
    done: set[str] = set()
    for start in in_batch:
        if start in done:
            continue
        path: set[str] = {start}
        stack = [(start, iter(in_batch[start].depends_on))]
        while stack:
            node, parents = stack[-1]
            step = next(parents, None)
            if step is None:
                stack.pop()
                path.discard(node)
                done.add(node)
            elif step in path:
                raise InvalidOptionError(f"the jobs of this enqueue depend on each other in a cycle (through {step!r})")
            elif step in in_batch and step not in done:
                path.add(step)
                stack.append((step, iter(in_batch[step].depends_on)))


def split_backoff(backoff: object, task: str) -> tuple[Backoff | None, BackoffFunction | None]:
    """``@app.task(backoff=)`` as the Backoff a job carries and the function the worker asks
    (:mod:`fastjobs.retries`): a function's jobs carry the default :class:`Exponential <fastjobs.Exponential>`,
    which decides should the function fail."""
    if backoff is None or isinstance(backoff, Backoff):
        return backoff, None
    if not callable(backoff):
        raise InvalidOptionError(
            f"backoff must be a fastjobs.Backoff (Fixed, Linear, Exponential), a function "
            f"(attempt, error) -> seconds or None, or None, not {backoff!r}"
        )
    if inspect.iscoroutinefunction(backoff):
        raise InvalidOptionError(
            f"task {task!r}: the backoff function must be a plain def returning seconds or None "
            "(the worker calls it between acks, without awaiting)"
        )
    return Backoff(), backoff

