"""The PostgreSQL backend's SQL files, loaded once at import: named queries,
migrations and functions, with their state names filled in from ``fastjobs._core``
and their shared snippets from ``snippets.sql``.

The files under ``fastjobs/sql/`` hold three kinds of placeholder. ``{QUEUED}``
and the other state names become the ``fastjobs._core`` constants here, once,
so no state number is written twice (a test checks that no bare one is left).
A snippet's name (``{FINISHED_CARRIED}``: see ``snippets.sql``) becomes its
text, here too, so SQL that several statements share is written once; the
text is pasted before anything is hashed or prepared, so it costs nothing when
the SQL runs. ``{schema}`` and ``{channel}`` become one backend's
quoted schema, wake-up channel and events channel in :func:`render`. Any other ``{Name}`` is an error at import, not
a statement that fails later.

Example:
    >>> render("SELECT 1 FROM {schema}.jobs", "fastjobs")
    'SELECT 1 FROM "fastjobs".jobs'
"""

from __future__ import annotations

import hashlib
import re
from importlib import resources

from ..._core import ACTIVE, CANCELLED, DEAD, QUEUED, RETRY_PENDING, SCHEDULED, SUCCEEDED, WAITING
from ...errors import ConfigurationError

SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,57}\Z")
"""Schema names: a lower-case identifier of at most 58 characters, so that the
NOTIFY channel ``<schema>_wake`` fits PostgreSQL's 63-character names."""

RESERVED_SCHEMAS = frozenset(("public", "information_schema", "pg_catalog"))
"""Schemas fastjobs never takes over (nor any ``pg_*`` one): they belong to the
database and its users, whose own ``jobs`` table may live there."""

STATES = {
    "SCHEDULED": SCHEDULED, "QUEUED": QUEUED, "ACTIVE": ACTIVE, "SUCCEEDED": SUCCEEDED,
    "RETRY_PENDING": RETRY_PENDING, "DEAD": DEAD, "CANCELLED": CANCELLED, "WAITING": WAITING,
}
"""What each state placeholder of the SQL files stands for."""

_PLACEHOLDER = re.compile(r"\{([A-Za-z_]+)\}")
_PER_SCHEMA = frozenset(("schema", "channel", "events"))
_LINE_START = re.compile(r"(?<=\n)(?=[^\n])")
MIGRATION_FILE = re.compile(r"^(\d{3})_([a-z0-9_]+)\.up\.sql\Z")
_SQL = resources.files("fastjobs").joinpath("sql")


def validate_schema(name: object) -> str:
    """Return ``name`` if it is a usable schema name, else raise :class:`ConfigurationError`.

    Example:
        >>> validate_schema("fastjobs")
        'fastjobs'
    """
    if not isinstance(name, str) or not SCHEMA_NAME.match(name) or name.startswith("pg_"):
        raise ConfigurationError(
            f"invalid PostgreSQL schema name (prefix=) {name!r}: use 1-58 lower-case letters, digits "
            "or '_', starting with a letter or '_' and not with 'pg_' (e.g. prefix='fastjobs')"
        )
    if name in RESERVED_SCHEMAS:
        raise ConfigurationError(
            f"PostgreSQL schema {name!r} (prefix=) belongs to the database, not to fastjobs: "
            "give fastjobs a schema of its own (e.g. prefix='fastjobs')"
        )
    return name


def paste_snippets(sql: str, snippets: dict[str, str] | None = None) -> str:
    """``sql`` with the snippets of ``snippets.sql`` pasted where their names stand.

    A snippet's later lines are indented to the column its placeholder stands
    at, so a pasted select list lines up as if written in place. Other
    placeholders are left for :func:`fill_states` and :func:`render`.
    """
    known = SNIPPETS if snippets is None else snippets

    def text(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in known:
            return match.group(0)
        column = match.start() - (sql.rfind("\n", 0, match.start()) + 1)
        return _LINE_START.sub(" " * column, known[name])

    return _PLACEHOLDER.sub(text, sql)


def fill_states(sql: str, source: str) -> str:
    """``sql`` with its state placeholders replaced; per-schema ones are left for :func:`render`."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in _PER_SCHEMA:
            return match.group(0)
        if name not in STATES:
            raise RuntimeError(
                f"{source}: unknown placeholder {match.group(0)} (states: {', '.join(STATES)}; "
                "shared text: the snippets of snippets.sql)"
            )
        return str(int(STATES[name]))

    return _PLACEHOLDER.sub(value, sql)


def render(sql: str, schema: str) -> str:
    """``sql`` for one schema (which :func:`validate_schema` accepted)."""
    # The schema was validated against SCHEMA_NAME, so quoting it (and the
    # channel literal) cannot break out; everything else is a bind parameter.
    return (
        sql.replace("{schema}", f'"{schema}"')
        .replace("{channel}", f"'{wake_channel(schema)}'")
    )


def wake_channel(schema: str) -> str:
    """The channel enqueues NOTIFY (with the queue's name) to wake idle workers."""
    return f"{schema}_wake"


def parse_named_queries(text: str) -> dict[str, str]:
    """Split a ``-- name: x`` file into ``{name: sql}``; full-line comments are dropped."""
    queries: dict[str, str] = {}
    name: str | None = None
    lines: list[str] = []
    for line in text.splitlines():
        match = re.match(r"--\s*name:\s*([A-Za-z_]+)\s*$", line)
        if match:
            if name is not None:
                queries[name] = "\n".join(lines).strip()
            name, lines = match.group(1), []
        elif name is not None and not line.lstrip().startswith("--"):
            lines.append(line)
    if name is not None:
        queries[name] = "\n".join(lines).strip()
    return queries


def load_snippets() -> dict[str, str]:
    """The snippets of ``snippets.sql``, states filled in; a snippet may use the ones above it."""
    snippets: dict[str, str] = {}
    text = _SQL.joinpath("snippets.sql").read_text(encoding="utf-8")
    for name, sql in parse_named_queries(text).items():
        snippets[name] = fill_states(paste_snippets(sql, snippets), f"snippets.sql ({name})")
    return snippets


def load_queries() -> dict[str, str]:
    """The named queries of ``queries.sql``, states and snippets filled in."""
    text = _SQL.joinpath("queries.sql").read_text(encoding="utf-8")
    return {
        name: fill_states(paste_snippets(sql), f"queries.sql ({name})") for name, sql in parse_named_queries(text).items()
    }


def load_migrations() -> list[tuple[int, str, str]]:
    """The migration files, in order: ``(version, name, sql)``, states filled in."""
    found = []
    for entry in _SQL.joinpath("migrations").iterdir():
        match = MIGRATION_FILE.match(entry.name)
        if match:
            name = entry.name[: -len(".up.sql")]
            # No snippets: a migration's text must not change after its release.
            found.append((int(match.group(1)), name, fill_states(entry.read_text(encoding="utf-8"), entry.name)))
    found.sort()
    versions = [v for v, _, _ in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"fastjobs migrations must be numbered 001, 002, ... without gaps; found {versions}")
    return found


def load_functions() -> list[tuple[str, str]]:
    """The function files, by name: ``(file name, sql)``, states and snippets filled in."""
    found = [
        (entry.name, fill_states(paste_snippets(entry.read_text(encoding="utf-8")), entry.name))
        for entry in _SQL.joinpath("functions").iterdir()
        if entry.name.endswith(".sql")
    ]
    if not found:
        raise RuntimeError("fastjobs/sql/functions/ holds no .sql file: a broken install")
    return sorted(found)


def functions_hash(functions: list[tuple[str, str]]) -> str:
    """What a schema records of the functions it was given: any change to any file changes it."""
    digest = hashlib.sha256()
    for name, sql in functions:
        digest.update(f"{name}\0{len(sql)}\0{sql}".encode())
    return digest.hexdigest()


SNIPPETS = load_snippets()
QUERIES = load_queries()
MIGRATIONS = load_migrations()
FUNCTIONS = load_functions()
FUNCTIONS_HASH = functions_hash(FUNCTIONS)

FUNCTIONS_REVISION = 7
"""The revision of the files in ``fastjobs/sql/functions/``: bump it (by one) with
every change to them (or to a snippet of ``snippets.sql`` they use), and pin the new hash beside it in
``tests/postgres/test_migrations.py`` (a test fails until both are done).

A schema records the revision and hash of the functions it was given (see
:mod:`.schema`). A process applies its own functions only if their revision is
newer than the recorded one, or the same with another hash (a change under
development, never released). An older process does not downgrade them: it
warns once and runs on the newer ones. So during a rolling upgrade old and new
processes share the newest functions instead of replacing each other's at
every connect. That works only under this rule:

**Within one schema version (the same latest migration) every revision is
backward compatible with the earlier ones.** Each function keeps its name,
its arguments (names, types, order) and its result as earlier revisions' code
calls it. To give one more arguments, add a new function (another name, or the
same name with more arguments and no defaults) and keep the old signature as a
wrapper that calls it: a new argument with a DEFAULT would make the old call
match two functions, which PostgreSQL refuses as ambiguous (``renew`` did this in
revision 3). Add a function rather than change what one returns. A change that needs another table, column
or index comes with a migration: that is a new schema version, which older
processes refuse to connect to.
"""
