"""Names and numbers fastjobs fixes: defaults, bounds, reserved names.

Example:
    >>> from fastjobs.constants import DEFAULT_QUEUE
    >>> DEFAULT_QUEUE
    'default'
"""

from __future__ import annotations

DEFAULT_QUEUE = "default"
DEFAULT_URL_ENV = "FASTJOBS_URL"
"""The environment variable :class:`~fastjobs.App` reads its URL from when given none."""

PRIORITY_RANGE = (-1_000_000, 1_000_000)
MAX_ATTEMPTS_LIMIT = 10_000

RESERVED_META_PREFIXES = ("fastjobs.", "_fastjobs")
"""``JobRecord.meta`` keys starting with these are fastjobs' own: refused in ``options(meta=)``,
left out of :attr:`JobInfo.meta <fastjobs.JobInfo.meta>`."""

# Reserved JobRecord.meta keys (fastjobs' own; see RESERVED_META_PREFIXES).
PIPE = "fastjobs.pipe"
"""``JobRecord.meta`` key of a chain step: the id of the previous step, whose result the worker passes first."""
BATCH = "fastjobs.batch"
"""``JobRecord.meta`` key of a batch's members and callbacks: the batch id (``Context.batch_id``,
``JobInfo.batch_id``)."""

BATCH_TASK = "fastjobs.batch"
"""The built-in task of a batch's tracking job: it runs (a no-op) once every member finished."""
