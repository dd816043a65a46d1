"""The memory backend's job record, pure Python: the twin of ``_store_c``.

Same fields and constructor as the compiled record; the compiled one is built
in C and is not tracked by the cyclic GC (see ``_store_c`` for why).
"""

from __future__ import annotations

from typing import Any

from ._states_py import QUEUED, SCHEDULED


class JobSlot:
    """One stored job of the memory backend; mutable, guarded by the backend's lock.

    Built from a ``NewJob`` tuple ``(id, queue, priority, delay, max_attempts,
    body, unique_key)`` and the backend's clock.

    Example:
        >>> slot = JobSlot(("j1", "default", 0, 0.0, 3, b"body", None), 100.0)
        >>> slot.state, slot.run_at, slot.attempt
        (1, 100.0, 0)
    """

    __slots__ = (
        "id", "queue", "state", "priority", "attempt", "max_attempts", "token", "body",
        "result", "errors", "enqueued_at", "run_at", "started_at", "finished_at",
        "lease_until", "unique_key",
    )

    def __init__(self, new: tuple[Any, ...], now: float) -> None:
        delay = float(new[3])
        self.id: str = new[0]
        self.queue: str = new[1]
        self.priority: int = new[2]
        self.max_attempts: int = new[4]
        self.body: bytes = new[5]
        self.unique_key: str | None = new[6]
        self.attempt = 0
        self.token = 0
        self.result: bytes | None = None
        # Most jobs never fail: no list until the first error.
        self.errors: list[bytes] | None = None
        self.enqueued_at = float(now)
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.lease_until: float | None = None
        if delay > 0:
            self.state = SCHEDULED
            self.run_at = now + delay
        else:
            self.state = QUEUED
            self.run_at = float(now)
