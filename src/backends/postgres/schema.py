"""Bring a PostgreSQL schema up to date: the numbered migrations, then the functions.

Two mechanisms, because tables and functions age differently (River keeps the
same split between its migrations and its driver's queries):

* **Migrations** (``fastjobs/sql/migrations/NNN_name.up.sql``) change tables,
  indexes and types. Each runs once, in order, recorded in
  ``<schema>.schema_migrations``; a file is never edited once released.
* **Functions** (``fastjobs/sql/functions/*.sql``) are ``CREATE OR REPLACE``
  statements, applied all together. The schema records the revision
  (:data:`~.sql.FUNCTIONS_REVISION`) and the hash of the functions it holds as
  the comment of ``<schema>.schema_migrations`` (a comment, not a table of its
  own, so that the schema holds no table but fastjobs' data and its one record
  of changes). A process applies its functions when their revision is newer
  than the recorded one, or the same with another hash (an edit under
  development). A fixed function is an edit of its file and a bumped revision:
  every schema gets it at its next connect, however it was created, and no
  migration copies a 170-line function to change a line.
* **Rolling upgrades.** An older process (a lower revision) never replaces
  newer functions: it warns once and runs on them, which the compatibility rule
  of :data:`~.sql.FUNCTIONS_REVISION` makes safe. Old and new processes
  connecting in turn therefore leave the newest functions in place, rather
  than each re-applying its own at every connect.

Both run in one transaction under a per-schema advisory lock, so any number
of processes may connect (or run ``fastjobs migrate``) at once: one applies,
the others wait, then find nothing to do. A schema already at this code's
latest migration with these functions (or newer ones) costs two statements and
no lock. A schema migrated by a newer fastjobs (a migration this code does not
know) is refused rather than run with functions written for other tables.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ...errors import ConfigurationError
from .sql import FUNCTIONS, FUNCTIONS_HASH, FUNCTIONS_REVISION, MIGRATIONS, render

log = logging.getLogger("fastjobs.postgres")

# Two-key advisory lock namespace for migrations: (this, hash of the schema).
_MIGRATION_LOCK = 0x66A57

LATEST = MIGRATIONS[-1][0]


@dataclass
class Applied:
    """What one :func:`upgrade` changed."""

    migrations: list[str] = field(default_factory=list)
    """Names of the migrations it applied, in order."""
    functions: str | None = None
    """The functions' hash, if it (re-)applied them."""
    newer_functions: int | None = None
    """The schema's functions revision, if it is newer than this process's (left in place)."""


@dataclass(frozen=True)
class Functions:
    """One release of the function files: what :func:`upgrade` applies, and how the schema records it."""

    revision: int
    hash: str
    files: Sequence[tuple[str, str]]

    @property
    def stamp(self) -> str:
        """The comment of ``schema_migrations`` once these functions are applied."""
        # Digits, hex and fixed words: safe to write into a COMMENT literal.
        return f"fastjobs functions revision {self.revision} sha256 {self.hash}"


CURRENT = Functions(FUNCTIONS_REVISION, FUNCTIONS_HASH, FUNCTIONS)
"""This fastjobs' functions."""

_STAMP = re.compile(r"fastjobs functions revision (\d+) sha256 ([0-9a-f]{64})")

_warned_newer: set[tuple[str, int]] = set()
"""(schema, revision) pairs this process has warned about: once each, not at every connect."""


def recorded(stamp: str | None) -> tuple[int, str | None]:
    """The revision and hash a schema's stamp records.

    No stamp, or one from before revisions (``fastjobs functions sha256 ...``),
    reads as revision 0: older than any release, so it is replaced.

    Example:
        >>> recorded("fastjobs functions revision 3 sha256 " + "ab" * 32)[0]
        3
        >>> recorded(None)
        (0, None)
    """
    match = _STAMP.fullmatch(stamp or "")
    return (int(match[1]), match[2]) if match else (0, None)


def _should_apply(functions: Functions, stamp: str | None) -> bool:
    revision, digest = recorded(stamp)
    return revision < functions.revision or (revision == functions.revision and digest != functions.hash)


def _newer(schema: str, functions: Functions, stamp: str | None, applied: Applied) -> None:
    """Note (and warn, once per process) that the schema runs a newer revision than ``functions``."""
    revision = recorded(stamp)[0]
    if revision <= functions.revision:
        return
    applied.newer_functions = revision
    if (schema, revision) not in _warned_newer:
        _warned_newer.add((schema, revision))
        log.warning(
            "schema %s holds SQL functions revision %d, newer than this fastjobs' %d: a newer fastjobs "
            "applied them during an upgrade. This process runs on them and leaves them in place (they stay "
            "compatible within a schema version); upgrade fastjobs here too",
            schema, revision, functions.revision,
        )


_NAMES = {version: name for version, name, _ in MIGRATIONS}


def _refuse_foreign(schema: str, recorded: list[Any]) -> None:
    """Refuse a schema whose recorded migrations are not this fastjobs' (same numbers, other
    names: a development build from before the tables were folded into one baseline, or a
    branch's). Numbers alone would take it as migrated and fail at the first query."""
    for row in recorded:
        expected = _NAMES.get(row["version"])
        if expected is not None and row["name"] != expected:
            raise ConfigurationError(
                f"PostgreSQL schema {schema!r} was made by another fastjobs build: its migration {row['version']} "
                f"is {row['name']!r}, this fastjobs' is {expected!r}. Its tables do not match this code's: drop it "
                f"(DROP SCHEMA \"{schema}\" CASCADE; its jobs are lost) or point this App at another prefix="
            )


def _refuse_newer(schema: str, version: int | None) -> None:
    if version is not None and version > LATEST:
        raise ConfigurationError(
            f"PostgreSQL schema {schema!r} is at migration {version}, newer than this fastjobs knows "
            f"(up to {LATEST}): a newer fastjobs migrated it. Upgrade fastjobs here too (or point this "
            "App at another prefix=)"
        )


async def require(conn: Any, schema: str) -> None:
    """Raise :class:`ConfigurationError` unless ``schema`` is migrated to this fastjobs' tables.

    For backends that must not create or change a schema (``migrate=False``: the
    read-only CLI commands, apps whose deployment migrates): a clear word at
    connect instead of a missing table at the first query.
    """
    quoted = f'"{schema}"'
    version = None
    if await conn.fetchval("SELECT to_regclass($1::text)", f"{quoted}.schema_migrations") is not None:
        recorded = await conn.fetch(f"SELECT version, name FROM {quoted}.schema_migrations")
        _refuse_foreign(schema, recorded)
        version = max((row["version"] for row in recorded), default=None)
    _refuse_newer(schema, version)
    if version is None:
        raise ConfigurationError(f"no fastjobs schema here: run `fastjobs migrate` (schema {schema!r} does not exist)")
    if version < LATEST:
        raise ConfigurationError(
            f"PostgreSQL schema {schema!r} is at migration {version}, this fastjobs needs {LATEST}: run `fastjobs migrate`"
        )


async def upgrade(conn: Any, schema: str, functions: Functions = CURRENT) -> Applied:
    """Apply pending migrations and changed functions to ``schema`` on the asyncpg connection ``conn``.

    ``functions``: the ones to apply, unless the schema holds a newer revision
    (this fastjobs' own, but for tests).

    Example:
        >>> async def main(conn):  # doctest: +SKIP
        ...     applied = await upgrade(conn, "fastjobs")
        ...     print(applied.migrations, applied.functions)
    """
    quoted = f'"{schema}"'
    # Fast path, no lock: already up to date (every start but the first).
    if await conn.fetchval("SELECT to_regclass($1::text)", f"{quoted}.schema_migrations") is not None:
        recorded = await conn.fetch(f"SELECT version, name FROM {quoted}.schema_migrations")
        _refuse_foreign(schema, recorded)
        found = await conn.fetchrow(
            f"SELECT max(version) AS version, obj_description('{quoted}.schema_migrations'::regclass, 'pg_class')"
            f" AS stamp FROM {quoted}.schema_migrations"
        )
        _refuse_newer(schema, found["version"])
        if found["version"] == LATEST and not _should_apply(functions, found["stamp"]):
            applied = Applied()
            _newer(schema, functions, found["stamp"], applied)
            return applied
    applied = Applied()
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1::integer, hashtext($2::text))", _MIGRATION_LOCK, schema)
        await conn.execute(
            f"CREATE SCHEMA IF NOT EXISTS {quoted};"
            f"CREATE TABLE IF NOT EXISTS {quoted}.schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        recorded = await conn.fetch(f"SELECT version, name FROM {quoted}.schema_migrations")
        _refuse_foreign(schema, recorded)  # again, under the lock
        done = {r["version"] for r in recorded}
        _refuse_newer(schema, max(done, default=None))
        for version, name, sql in MIGRATIONS:
            if version in done:
                continue
            await conn.execute(render(sql, schema))
            await conn.execute(f"INSERT INTO {quoted}.schema_migrations (version, name) VALUES ($1, $2)", version, name)
            applied.migrations.append(name)
        # Re-read under the lock: another process may have applied them while we waited.
        stamp = await conn.fetchval(f"SELECT obj_description('{quoted}.schema_migrations'::regclass, 'pg_class')")
        if _should_apply(functions, stamp):
            for _, sql in functions.files:
                await conn.execute(render(sql, schema))
            await conn.execute(f"COMMENT ON TABLE {quoted}.schema_migrations IS '{functions.stamp}'")
            applied.functions = functions.hash
        else:
            _newer(schema, functions, stamp, applied)
    if applied.migrations:
        log.info("schema %s: applied migrations %s", schema, ", ".join(applied.migrations))
    if applied.functions:
        log.info("schema %s: applied the functions (revision %d, %s)", schema, functions.revision, applied.functions[:12])
    return applied
