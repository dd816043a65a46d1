"""fastjobs' hot core: the priority/delay index, the job codec, backoff and states, the
memory backend's job record, a handler's first step (:mod:`fastjobs.eager`), a worker's job
Context and outcome (:mod:`fastjobs.hooks`), and enqueue's job ids and NewJobs.

Each piece is a Cython module (``_*_c``) with a pure-Python twin (``_*_py``) of
identical behaviour. This module picks one set, once, at import:

* ``FASTJOBS_NO_EXTENSIONS`` set to anything but ``""``/``"0"``, or an
  interpreter other than CPython: the pure twins;
* otherwise the compiled modules, falling back on the twins if any of them
  fails to import (a source checkout that was never built), with a
  RuntimeWarning: the twins are correct but slower, and a broken build should
  not go unnoticed. ``IMPORT_ERROR`` then holds the reason.

The choice is all-or-nothing so that ``IMPLEMENTATION`` tells the whole truth.

Example:
    >>> import fastjobs._core as core
    >>> core.IMPLEMENTATION in ("compiled", "pure")
    True
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import TYPE_CHECKING, Literal

from ._errors import (
    CorruptJobError,
    FastjobsError,
    InvalidTransition,
    PayloadTooLargeError,
    UnencodableError,
)

NO_EXTENSIONS: bool = (
    os.environ.get("FASTJOBS_NO_EXTENSIONS", "") not in ("", "0")
    or sys.implementation.name != "cpython"
)

IMPLEMENTATION: Literal["compiled", "pure"]
IMPORT_ERROR: ImportError | None = None
"""Why the compiled modules could not be imported, if they could not."""

if TYPE_CHECKING:  # type checkers always see the twins: they are the reference
    from . import _codec_py as _codec
    from . import _enqueue_py as _enqueue
    from . import _heap_py as _heap
    from . import _hooks_py as _hooks
    from . import _states_py as _states
    from . import _step_py as _step
    from . import _store_py as _store
elif NO_EXTENSIONS:
    from . import (
        _codec_py as _codec, _enqueue_py as _enqueue, _heap_py as _heap, _hooks_py as _hooks, _states_py as _states,
        _step_py as _step, _store_py as _store,
    )

    IMPLEMENTATION = "pure"
else:
    try:
        from . import (
            _codec_c as _codec, _enqueue_c as _enqueue, _heap_c as _heap, _hooks_c as _hooks, _states_c as _states,
            _step_c as _step, _store_c as _store,
        )

        IMPLEMENTATION = "compiled"
    except ImportError as exc:  # pragma: no cover - depends on the build
        IMPORT_ERROR = exc
        from . import (
            _codec_py as _codec, _enqueue_py as _enqueue, _heap_py as _heap, _hooks_py as _hooks, _states_py as _states,
            _step_py as _step, _store_py as _store,
        )

        IMPLEMENTATION = "pure"
        warnings.warn(
            f"fastjobs' compiled core failed to import ({type(exc).__name__}: {exc}; see "
            "fastjobs._core.IMPORT_ERROR), so the slower pure-Python twins are in use. Rebuild "
            "the extensions (`python setup.py build_ext --inplace` in a checkout, or reinstall "
            "fastjobs), or set FASTJOBS_NO_EXTENSIONS=1 to choose the twins and silence this warning.",
            RuntimeWarning,
            stacklevel=2,
        )

PriorityIndex = _heap.PriorityIndex
JobSlot = _store.JobSlot
insert_slots = _store.insert
lease_slots = _store.lease
succeed_slots = _store.succeed
first_step = _step.first_step
new_job_ids = _enqueue.new_job_ids
new_jobs = _enqueue.new_jobs

JobRecord = _codec.JobRecord
JobTemplate = _codec.JobTemplate
encode_job = _codec.encode_job
decode_job = _codec.decode_job
encode_value = _codec.encode_value
decode_value = _codec.decode_value
tally_starts = _codec.tally_starts
SCHEMA_VERSION = _codec.SCHEMA_VERSION
DEFAULT_MAX_PAYLOAD = _codec.DEFAULT_MAX_PAYLOAD

Backoff = _states.Backoff
Fixed = _states.Fixed
Linear = _states.Linear
Exponential = _states.Exponential
decide_retry = _states.decide_retry
check_transition = _states.check_transition
can_transition = _states.can_transition
SCHEDULED = _states.SCHEDULED
QUEUED = _states.QUEUED
ACTIVE = _states.ACTIVE
SUCCEEDED = _states.SUCCEEDED
RETRY_PENDING = _states.RETRY_PENDING
DEAD = _states.DEAD
CANCELLED = _states.CANCELLED
WAITING = _states.WAITING
STATE_NAMES = _states.STATE_NAMES
TRANSITIONS = _states.TRANSITIONS

ContextFields = _hooks.ContextFields
JobOutcome = _hooks.JobOutcome
job_context = _hooks.job_context
after_success = _hooks.after_success
SlotMaker = _hooks.SlotMaker

MODULES = {"heap": _heap.__name__, "codec": _codec.__name__, "states": _states.__name__, "step": _step.__name__,
           "store": _store.__name__, "enqueue": _enqueue.__name__, "hooks": _hooks.__name__}
"""The module behind each piece, e.g. ``{"heap": "fastjobs._core._heap_c", ...}``."""


def implementation() -> Literal["compiled", "pure"]:
    """Return which core is active: ``"compiled"`` (Cython) or ``"pure"`` (twins).

    Example:
        >>> from fastjobs._core import implementation
        >>> implementation() in ("compiled", "pure")
        True
    """
    return IMPLEMENTATION


__all__ = [
    "ACTIVE", "Backoff", "CANCELLED", "ContextFields", "CorruptJobError", "DEAD", "DEFAULT_MAX_PAYLOAD",
    "Exponential", "FastjobsError", "Fixed", "JobSlot", "Linear", "IMPLEMENTATION", "InvalidTransition", "JobOutcome",
    "JobRecord", "JobTemplate", "MODULES", "SlotMaker", "after_success", "job_context",
    "PayloadTooLargeError", "PriorityIndex", "QUEUED", "RETRY_PENDING", "SCHEDULED",
    "SCHEMA_VERSION", "STATE_NAMES", "SUCCEEDED", "TRANSITIONS", "UnencodableError", "WAITING",
    "can_transition", "check_transition", "decide_retry", "decode_job", "decode_value",
    "encode_job", "encode_value", "first_step", "implementation", "insert_slots", "lease_slots", "new_job_ids",
    "new_jobs", "succeed_slots", "tally_starts",
]
