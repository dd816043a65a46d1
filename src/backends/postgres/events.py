"""Reading job lifecycle events: ``Backend.events()`` on PostgreSQL.

The functions that move jobs publish their statement's events on the schema's
events channel (``<schema>_evts``; ``sql/functions/events.sql``), one NOTIFY
per statement, chunked under PostgreSQL's 8,000-byte payload limit, as the
JSON text ``[at, [kind, id, task, queue], ...]``, and only while some session
listens: each iterator's connection adds a row to ``event_listeners`` once it
LISTENs and deletes it when it stops (a NOTIFY serializes the commits of
every notifying transaction; see migration 003). Each ``events()`` iterator
LISTENs on a connection of its own (not the pool's: a pooled connection goes
back to others between statements, and the wake-up connection of
:mod:`.listen` serves waits), filters the queues it was asked for on this
side (one channel per schema: a publish per statement, not per queue) and
buffers at most :data:`BUFFER` events, dropping the oldest for a listener that
falls behind. A lost connection is re-established with backoff within
``connect_timeout`` (events sent meanwhile are missed: best effort), else
:class:`~fastjobs.BackendUnavailableError`.

Example:
    >>> decode('[1700000000.5,[3,"j1","send","emails"]]', None)
    [Event(kind='succeeded', job_id='j1', task='send', queue='emails', at=1700000000.5)]
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

import asyncpg  # type: ignore[import-untyped]

from ...errors import BackendUnavailableError, FastjobsError
from ..values import EVENT_KINDS, Event

if TYPE_CHECKING:
    from .connection import PostgresConnection

log = logging.getLogger("fastjobs.postgres")

BUFFER = 10_000
"""Most events one iterator holds for its consumer; older ones are dropped first."""


def decode(payload: str, queues: set[str] | frozenset[str] | None) -> list[Event]:
    """The events of one NOTIFY payload, of ``queues`` only (None: all); a malformed payload is none."""
    try:
        at, *items = json.loads(payload)
        return [
            Event(EVENT_KINDS[kind], job_id, task, queue, float(at))
            for kind, job_id, task, queue in items
            if queues is None or queue in queues
        ]
    except (ValueError, TypeError, IndexError):
        log.debug("ignored a malformed events payload: %.200r", payload)
        return []


async def listen_events(
    backend: PostgresConnection, channel: str, queues: Sequence[str] | None
) -> AsyncIterator[Event]:
    """Events on ``channel`` of ``queues`` from now on (see the module docstring)."""
    wanted = None if queues is None else frozenset(queues)
    buffer: collections.deque[Event] = collections.deque(maxlen=BUFFER)
    arrived = asyncio.Event()
    lost = asyncio.Event()

    def on_notify(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
        events = decode(payload, wanted)
        if events:
            buffer.extend(events)
            arrived.set()

    def on_lost(_conn: Any) -> None:
        lost.set()
        arrived.set()

    conn = await _connect(backend, channel, on_notify, on_lost)
    try:
        while True:
            while buffer:
                yield buffer.popleft()
            if lost.is_set():
                conn.terminate()
                lost.clear()
                log.warning("LISTEN %s lost; reconnecting (events sent meanwhile are missed)", channel)
                conn = await _connect(backend, channel, on_notify, on_lost)
                continue
            arrived.clear()
            if not buffer and not lost.is_set():
                await arrived.wait()
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(conn.execute(backend._q["unlisten_events"]), 1.0)
        with contextlib.suppress(Exception):
            conn.terminate()


async def _connect(backend: PostgresConnection, channel: str, on_notify: Any, on_lost: Any) -> Any:
    """A connection listening on ``channel``, tried with backoff for ``connect_timeout`` seconds."""
    give_up = time.monotonic() + backend.connect_timeout
    delay = 0.05
    while True:
        conn = None
        try:
            conn = await backend._connect_listener()
            conn.add_termination_listener(on_lost)
            await conn.add_listener(channel, on_notify)
            # Publishers NOTIFY only while some listener has a row (see migration 003).
            await conn.execute(backend._q["listen_events"])
            return conn
        except asyncio.CancelledError:
            if conn is not None:
                conn.terminate()
            raise
        except Exception as exc:
            if conn is not None:
                conn.terminate()
            if isinstance(exc, asyncpg.PostgresError) and not isinstance(exc, asyncpg.PostgresConnectionError):
                error = backend.translate_error(exc)
                if isinstance(error, FastjobsError):
                    raise error from exc
                raise
            left = give_up - time.monotonic()
            if left <= 0:
                raise BackendUnavailableError(
                    f"cannot LISTEN for events on PostgreSQL ({type(exc).__name__}: {exc}), tried for "
                    f"{backend.connect_timeout:g} s (connect_timeout)"
                ) from exc
            await asyncio.sleep(min(delay, left))
            delay = min(delay * 2, 0.5)
