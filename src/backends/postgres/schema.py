"""Bring a PostgreSQL schema up to date: the numbered migrations, then the functions.

Two mechanisms, because tables and functions age differently (River keeps the
same split between its migrations and its driver's queries):

* **Migrations** (``fastjobs/sql/migrations/NNN_name.up.sql``) change tables,
  indexes and types. Each runs once, in order, recorded in
  ``<schema>.schema_migrations``; a file is never edited once released.
* **Functions** (``fastjobs/sql/functions/*.sql``) are ``CREATE OR REPLACE``
  statements, applied all together whenever the hash of their text differs
  from the one recorded as the comment of ``<schema>.schema_migrations``
  (a comment, not a table of its own, so that the schema holds no table but
  fastjobs' data and its one record of changes). A fixed function is
  an edit of its file: every schema gets it at its next connect, however it
  was created, and no migration copies a 170-line function to change a line.

Both run in one transaction under a per-schema advisory lock, so any number
of processes may connect (or run ``fastjobs migrate``) at once: one applies,
the others wait, then find nothing to do. A schema already at this code's
latest migration with these functions costs two statements and no lock. A
schema migrated by a newer fastjobs (a version this code does not know) is
refused rather than run with functions written for other tables.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from ...errors import ConfigurationError
from .sql import FUNCTIONS, FUNCTIONS_HASH, MIGRATIONS, render

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


FUNCTIONS_STAMP = f"fastjobs functions sha256 {FUNCTIONS_HASH}"
"""The comment of ``schema_migrations`` once these functions are applied."""


def _refuse_newer(schema: str, version: int | None) -> None:
    if version is not None and version > LATEST:
        raise ConfigurationError(
            f"PostgreSQL schema {schema!r} is at migration {version}, newer than this fastjobs knows "
            f"(up to {LATEST}): a newer fastjobs migrated it. Upgrade fastjobs here too (or point this "
            "App at another prefix=)"
        )


async def upgrade(conn: Any, schema: str) -> Applied:
    """Apply pending migrations and changed functions to ``schema`` on the asyncpg connection ``conn``.

    Example:
        >>> async def main(conn):  # doctest: +SKIP
        ...     applied = await upgrade(conn, "fastjobs")
        ...     print(applied.migrations, applied.functions)
    """
    quoted = f'"{schema}"'
    # Fast path, no lock: already up to date (every start but the first).
    if await conn.fetchval("SELECT to_regclass($1::text)", f"{quoted}.schema_migrations") is not None:
        found = await conn.fetchrow(
            f"SELECT max(version) AS version, obj_description('{quoted}.schema_migrations'::regclass, 'pg_class')"
            f" AS stamp FROM {quoted}.schema_migrations"
        )
        _refuse_newer(schema, found["version"])
        if found["version"] == LATEST and found["stamp"] == FUNCTIONS_STAMP:
            return Applied()
    applied = Applied()
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1::integer, hashtext($2::text))", _MIGRATION_LOCK, schema)
        await conn.execute(
            f"CREATE SCHEMA IF NOT EXISTS {quoted};"
            f"CREATE TABLE IF NOT EXISTS {quoted}.schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch(f"SELECT version FROM {quoted}.schema_migrations")}
        _refuse_newer(schema, max(done, default=None))
        for version, name, sql in MIGRATIONS:
            if version in done:
                continue
            await conn.execute(render(sql, schema))
            await conn.execute(f"INSERT INTO {quoted}.schema_migrations (version, name) VALUES ($1, $2)", version, name)
            applied.migrations.append(name)
        # Re-read under the lock: another process may have applied them while we waited.
        stamp = await conn.fetchval(f"SELECT obj_description('{quoted}.schema_migrations'::regclass, 'pg_class')")
        if stamp != FUNCTIONS_STAMP:
            for _, sql in FUNCTIONS:
                await conn.execute(render(sql, schema))
            # FUNCTIONS_STAMP is hex and fixed words: nothing to escape.
            await conn.execute(f"COMMENT ON TABLE {quoted}.schema_migrations IS '{FUNCTIONS_STAMP}'")
            applied.functions = FUNCTIONS_HASH
    if applied.migrations:
        log.info("schema %s: applied migrations %s", schema, ", ".join(applied.migrations))
    if applied.functions:
        log.info("schema %s: applied the functions (%s)", schema, applied.functions[:12])
    return applied
