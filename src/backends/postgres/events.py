"""Reading job lifecycle events: ``Backend.events()`` on PostgreSQL.

The functions that move jobs append one row per statement to the schema's
``events`` table (``sql/functions/events.sql``, migration 004): the JSON text
``[at, [kind, id, task, queue], ...]``, and only while some session listens
(each iterator's connection has a row in ``event_listeners`` while it runs).
Not NOTIFY: a NOTIFY serializes the commits of every notifying transaction,
and cost the benchmark a quarter of its end-to-end rate with one dashboard
open; an insert into an unlogged table costs the publisher little and no lock
another session waits for.

Each ``events()`` iterator reads on a connection of its own (its row in
``event_listeners`` is keyed by that session) every :data:`POLL` seconds: the
rows after the last it saw, plus the numbers it skipped. A row's number is
taken when the publishing statement runs and becomes visible when its
transaction commits, so a later number may show first: the skipped ones are
asked for again for :data:`HOLE_WAIT` seconds (a rolled-back statement's
number never shows). It filters the queues it was asked for on this side,
buffers at most :data:`BUFFER` events (dropping the oldest for a consumer that
falls behind), and deletes rows older than :data:`RETAIN` seconds now and
then. A lost connection is re-established with backoff within
``connect_timeout`` (events of the meantime are missed: best effort), else
:class:`~fastjobs.BackendUnavailableError`.

Example:
    >>> decode('[1700000000.5,[3,"j1","send","emails"]]', None)
    [Event(kind='succeeded', job_id='j1', task='send', queue='emails', at=1700000000.5)]
"""

from __future__ import annotations

import asyncio
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
"""Most events one read hands its consumer; older ones are dropped first."""

POLL = 0.1
"""Seconds between two reads of the events table when the last one found less than :data:`READ_MAX` rows."""

READ_MAX = 200
"""Rows one read takes at most (a row holds one statement's events: up to a claim's or an ack's batch)."""

HOLE_WAIT = 2.0
"""Seconds a skipped event number is asked for again: a publisher's transaction commits well within it."""

MAX_HOLES = 10_000

RETAIN = 60.0
"""Seconds an event row is kept: listeners delete older ones."""

TRIM_EVERY = 10.0


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


async def listen_events(backend: PostgresConnection, queues: Sequence[str] | None) -> AsyncIterator[Event]:
    """Events of ``queues`` from now on (see the module docstring)."""
    wanted = None if queues is None else frozenset(queues)
    conn, top = await _connect(backend)
    holes: dict[int, float] = {}
    """Numbers skipped below ``top``, and until when to ask for them again."""
    trim_at = time.monotonic() + TRIM_EVERY
    try:
        while True:
            try:
                rows = await conn.fetch(backend._q["read_events"], top, list(holes), READ_MAX)
                if time.monotonic() >= trim_at:
                    trim_at = time.monotonic() + TRIM_EVERY
                    await conn.execute(backend._q["trim_events"], RETAIN)
            except (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, ConnectionError, OSError) as exc:
                log.warning("events: the connection failed (%s: %s); reconnecting (events of the meantime are "
                            "missed)", type(exc).__name__, exc)
                conn.terminate()
                conn, top = await _connect(backend)
                holes.clear()
                continue
            now = time.monotonic()
            events: list[Event] = []
            for seq, payload in rows:
                if seq > top:
                    if seq - top <= MAX_HOLES:
                        holes.update(dict.fromkeys(range(top + 1, seq), now + HOLE_WAIT))
                    top = seq
                elif holes.pop(seq, None) is None:
                    continue  # read already
                events.extend(decode(payload, wanted))
            for seq in [seq for seq, until in holes.items() if until <= now]:
                del holes[seq]
            if len(holes) > MAX_HOLES:  # never, but for a flood of rolled-back publishers: forget the oldest
                for seq in sorted(holes)[: len(holes) - MAX_HOLES]:
                    del holes[seq]
            for event in events[-BUFFER:]:
                yield event
            if len(rows) < READ_MAX:
                await asyncio.sleep(POLL)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(conn.execute(backend._q["unlisten_events"]), 1.0)
        with contextlib.suppress(Exception):
            conn.terminate()


async def _connect(backend: PostgresConnection) -> tuple[Any, int]:
    """A connection registered as a listener, and the last event number written so far; tried
    with backoff for ``connect_timeout`` seconds."""
    give_up = time.monotonic() + backend.connect_timeout
    delay = 0.05
    while True:
        conn = None
        try:
            conn = await backend._connect_listener()
            top: int = await conn.fetchval(backend._q["listen_events"])
            return conn, top
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
                    f"cannot listen for events on PostgreSQL ({type(exc).__name__}: {exc}), tried for "
                    f"{backend.connect_timeout:g} s (connect_timeout)"
                ) from exc
            await asyncio.sleep(min(delay, left))
            delay = min(delay * 2, 0.5)
