"""Job lifecycle events for :meth:`App.events <fastjobs.App.events>`: the backend's live stream, checked and closed.

The backends publish one :class:`~fastjobs.Event` per job moved, batched per
operation (see "Events" in :mod:`fastjobs.backends.base`); this module checks the
caller's queues and makes sure the backend's subscription ends when the caller
stops iterating. Delivery is best effort: a listener that falls behind, or whose
connection drops, misses events. Use them for live views, never for correctness.

Example:
    >>> async def watch(app):  # doctest: +SKIP
    ...     async for event in app.events(queues=["emails"]):
    ...         print(event.kind, event.job_id, event.task)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING

from .backends.base import Event
from .errors import InvalidOptionError
from .options import validate_queue

if TYPE_CHECKING:
    from .app import App


def parse_queues(queues: str | Sequence[str] | None) -> list[str] | None:
    """``queues`` as a list of valid names (a string may list several, comma-separated); None: every queue.

    Example:
        >>> parse_queues("emails,reports")
        ['emails', 'reports']
    """
    if queues is None:
        return None
    names = [q for q in queues.split(",") if q] if isinstance(queues, str) else list(queues)
    if not names:
        raise InvalidOptionError("events(queues=) needs at least one queue name, or None for every queue")
    return [validate_queue(q) for q in names]


async def listen(app: App, queues: list[str] | None) -> AsyncIterator[Event]:
    """The events of ``queues`` (checked by :func:`parse_queues`) from now on, through ``app``'s
    backend for the running loop."""
    backend = await app.backend()
    stream = backend.events(queues)
    try:
        async for event in stream:
            yield event
    finally:
        # Leaving the caller's loop (break, an exception, aclose) closes the backend's generator
        # at once, so its subscription (a pub/sub connection, a LISTEN) ends with it.
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()
