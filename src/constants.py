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

# Reserved JobRecord.meta keys (fastjobs' own; user meta must not use the "fastjobs." prefix).
PIPE = "fastjobs.pipe"
"""``JobRecord.meta`` key of a chain step: the id of the previous step, whose result the worker passes first."""
BATCH = "fastjobs.batch"
"""``JobRecord.meta`` key of a batch callback: the batch id (``Context.batch_id``)."""

BATCH_TASK = "fastjobs.batch"
"""The built-in task of a batch's tracking job: it runs (a no-op) once every member finished."""
