"""The PostgreSQL backend (``postgresql://`` and ``postgres://``), on asyncpg.

For teams who want their jobs in the same database as their data: enqueue
inside your own transaction and the job exists exactly when your data does::

    async with conn.transaction():
        await conn.execute("INSERT INTO orders ...")
        await send_receipt.options(connection=conn).enqueue(order_id)

How it stores jobs:

* One schema per App (``prefix``, default ``fastjobs``; a strict identifier).
  Its tables come from the numbered files in ``fastjobs/sql/migrations/``, its
  functions from ``fastjobs/sql/functions/`` (re-applied when their revision is
  newer than the schema's, never replaced by an older fastjobs during a rolling
  upgrade), both under an advisory lock on first use (or by ``fastjobs migrate
  module:app``), so many workers may start at once (see :mod:`.schema`).
* Live jobs sit in ``jobs``, the hot table, with a partial index per access
  path (the claim, due delayed jobs, lease expiry). Finished jobs move to
  ``finished_jobs`` at their ack, in the same statement, so the hot table stays
  as small as the work still to do; ``cleanup`` deletes finished rows past their
  retention in batches, and vacuums the hot table when its dead rows pile up
  (autovacuum may be off or slow to come round), and ``finished_jobs`` after
  deleting many of its rows.
* Every operation is one round trip: a named query from
  ``fastjobs/sql/queries.sql`` run as a prepared statement, batches passed as
  arrays and unnested, the multi-step ones (claim with recovery and promotion,
  ack of mixed outcomes) as PL/pgSQL functions. All times are the server's
  ``now()``.
* Paused queues are rows of ``paused_queues``, read by every claim (so every
  worker of the schema sees a pause); a succeeded job's ``unique_ttl`` window
  is its ``finished_jobs`` row's ``unique_until``, checked by the same
  ``enqueue_unique`` that the live jobs' partial unique index serves.
* Dependencies: a waiting child's ``job_deps`` rows name its live parents; a
  parent's finish (ack, lease recovery, cancel) settles its children in the
  same transaction, recursively (``settle_dependants``). Limits: ``claim``
  leases a limited job only under its key's ``limit_keys`` row lock, counting
  the key's active rows and its ``limit_log`` window; the plain claim's index
  holds unlimited jobs only, so jobs without limits pay one empty probe.
  The function files explain the races.
* Enqueues ``NOTIFY`` the schema's channel (at commit); one LISTEN connection
  per backend wakes idle workers, and is re-established with backoff when it is
  lost, idle workers polling slowly meanwhile.
* Search (:mod:`.search`): every job carries its ``task`` and ``tags``
  (migration 003); a page is one statement that seeks, per stored state, an
  index on (state, at, id) or (queue, state, at, id) from the position, and
  merges the parts: filters on states, queue, since and until seek; ``task``
  and ``tag`` are checked on at most ``SEARCH_SCAN`` candidates per call (not
  indexed: a GIN index on tags cost enqueues about 10% in a measurement, and
  an index on task one more entry per enqueue; see :mod:`.search`).
* Retry, cancel and delete by ids are one set-based function call per batch
  (``sql/functions/actions.sql``); ``cancel``, ``retry_dead`` and ``purge``
  are the base class's, built on them.
* History: ``ack`` upserts the flush's rows into the current minute and hour
  points of ``history`` in the same statement, and trims at most 100 expired
  points per step whenever it creates one.
* Events (``BackendOptions.events``): the functions that move jobs append one
  row per statement to the unlogged ``events`` table while someone listens
  (``sql/functions/events.sql``; not NOTIFY, whose commit lock serializes the
  publishers); each ``events()`` iterator reads the new rows a few times a
  second on a connection of its own (:mod:`.events`). Best effort: a listener
  that falls behind or reconnects misses events.
* Outages: an operation keeps trying to reach a server that is down for
  ``connect_timeout`` seconds (an App option, 5 s by default), then raises
  :class:`~fastjobs.BackendUnavailableError`; so does a connection lost
  mid-statement, at once, and it leaves the pool. The worker's claims give up
  at once (it lands its acknowledgements first). See :mod:`.connection`.

Durability: by default every statement commits durably. ``synchronous_commit=False``
(``App(url, synchronous_commit=False)``) sets ``synchronous_commit = off`` on the
backend's own connections: commits no longer wait for the WAL flush, so a crash
of the PostgreSQL server itself (not of a worker) may forget the last fraction
of a second of enqueues (gone) and acks (their jobs run again). Transactional
enqueues on your connection follow your connection's setting.

Example:
    >>> import fastjobs
    >>> app = fastjobs.App("postgresql://postgres@127.0.0.1:5432/app", prefix="jobs")  # doctest: +SKIP

The modules: :mod:`.backend` (the class: the operations), :mod:`.operations`
(search, actions by ids, history, events), :mod:`.search` (the search statement),
:mod:`.events` (reading events), :mod:`.connection`
(the pool, connection failures and outages, migrating at connect), :mod:`.sql`
(the SQL files, loaded and rendered), :mod:`.schema` (migrations and functions),
:mod:`.rows` (rows read by name, the lease-expired record), :mod:`.listen` (wake-ups).
"""

from __future__ import annotations

from .backend import PostgresBackend
from .sql import validate_schema

__all__ = ["PostgresBackend", "validate_schema"]
