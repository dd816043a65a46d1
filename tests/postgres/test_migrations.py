"""Migrations: numbered .sql files, applied once under an advisory lock, however many
workers start at the same moment; the functions, re-applied when their revision is newer
(or their text changed within one), never downgraded by an older process; ``fastjobs migrate``."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys

import asyncpg
import pytest

from fastjobs.backends import Ack, AckKind, BackendOptions, NewJob
from fastjobs.backends.postgres import PostgresBackend
from fastjobs.backends.postgres.schema import CURRENT, Functions, upgrade
from fastjobs.backends.postgres.sql import FUNCTIONS_HASH, FUNCTIONS_REVISION, MIGRATIONS, QUERIES, functions_hash
from fastjobs.errors import ConfigurationError
from tests.postgres.conftest import MakePostgres

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_migration_files_are_numbered_and_queries_named() -> None:
    assert [v for v, _, _ in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    assert MIGRATIONS[0][1] == "001_create_tables"
    for name in ("enqueue", "claim", "ack", "renew", "get", "delete_expired", "wait_info"):
        assert name in QUERIES and QUERIES[name]


async def test_many_backends_starting_at_once_migrate_once(make_pg: MakePostgres, admin: asyncpg.Connection, schema: str) -> None:
    backends = await asyncio.gather(*(make_pg(min_connections=1, max_connections=2) for _ in range(8)))
    applied = [name for b in backends for name in b.applied_migrations]
    assert sorted(applied) == sorted(name for _, name, _ in MIGRATIONS)
    rows = await admin.fetch(f'SELECT version, name FROM "{schema}".schema_migrations ORDER BY version')
    assert [(r[0], r[1]) for r in rows] == [(v, n) for v, n, _ in MIGRATIONS]
    # And every one of them works.
    for b in backends:
        assert await b.stats() == {}


async def test_later_starts_take_the_fast_path(make_pg: MakePostgres) -> None:
    first = await make_pg()
    assert first.applied_migrations
    again = await make_pg()
    assert again.applied_migrations == []
    assert await again.migrate() == []


async def test_migrate_false_leaves_the_schema_alone(postgres_url: str, schema: str, admin: asyncpg.Connection) -> None:
    backend = PostgresBackend(postgres_url, BackendOptions(prefix=schema), migrate=False)
    await backend.connect()
    try:
        assert await admin.fetchval("SELECT to_regnamespace($1)", schema) is None
        assert [n for n in await backend.migrate()] == [n for _, n, _ in MIGRATIONS]
        assert await admin.fetchval("SELECT to_regnamespace($1)", schema) is not None
    finally:
        await backend.close()


@pytest.mark.slow
def test_cli_migrate_from_several_processes_at_once(postgres_url: str, schema: str) -> None:
    env = {**os.environ, "FASTJOBS_TEST_URL": postgres_url, "FASTJOBS_TEST_PREFIX": schema}
    cmd = [sys.executable, "-m", "fastjobs", "migrate", "tests.postgres.workerapp:app"]
    procs = [subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, outputs
    lines = [out.strip() for out, _ in outputs]
    assert sum("applied 001_create_tables" in line for line in lines) == 1, lines
    assert sum("is up to date" in line for line in lines) == 3, lines


def test_cli_migrate_on_a_backend_without_schema() -> None:
    env = {**os.environ, "FASTJOBS_TEST_URL": "memory://", "FASTJOBS_TEST_PREFIX": "fastjobs"}
    out = subprocess.run(
        [sys.executable, "-m", "fastjobs", "migrate", "tests.postgres.workerapp:app"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "nothing to migrate" in out.stdout


# -- functions: re-applied by hash, not migrated ------------------------------------


OLD_ACK = """
CREATE OR REPLACE FUNCTION {s}.ack(
    p_ids text[], p_tokens bigint[], p_kinds smallint[], p_payloads bytea[],
    p_delays double precision[], p_keep_results boolean
) RETURNS integer[] LANGUAGE plpgsql AS $$ BEGIN RETURN '{{}}'; END $$
"""


async def ack_source(admin: asyncpg.Connection, schema: str) -> str:
    source: str = await admin.fetchval(
        "SELECT prosrc FROM pg_proc WHERE proname = 'ack' AND pronamespace = to_regnamespace($1)", schema
    )
    return source


# Each released revision of src/sql/functions/ and the hash of its files. A change
# to those files (or to a state number they use) changes the hash: bump
# FUNCTIONS_REVISION in src/backends/postgres/sql.py and add the new pair here.
PINNED_FUNCTIONS = {
    1: "42959f0edab38be03c3eeed122bb0c647b549199eadaca25d0e43a3d16f41a59",
    2: "d22e917a5f449086f9c8b4103f286d32cc8ea2afef325b87e81dd75ae2e3021d",
    3: "99dd68b9b74c5e099b119f02f59e84b874c0fc5df3d8d4a9efdd834b486df5ca",
    4: "3820ae39bc5773abf58917cbac1e3f122d233792b31803c63a47f6b313a8bd74",
    5: "613df8ad20b34759379aea92d78d75e06b16373feded7929fed5220e27a42f9b",
    6: "07f2cf63f55639a7b31bd2a361e22509440471dc53f7e30ccaf3b19fbb9cb9b0",
    7: "7d1a9b2193569044847f3a618cd3e644035775365a95e5e102d0edb9766e328f",
}


def test_every_change_to_the_functions_bumps_their_revision() -> None:
    assert FUNCTIONS_REVISION == max(PINNED_FUNCTIONS), (
        f"FUNCTIONS_REVISION is {FUNCTIONS_REVISION}, but the latest pinned revision here is "
        f"{max(PINNED_FUNCTIONS)}: revisions go up by one, and each is pinned in PINNED_FUNCTIONS"
    )
    assert PINNED_FUNCTIONS[FUNCTIONS_REVISION] == FUNCTIONS_HASH, (
        f"the SQL functions changed (their hash is now {FUNCTIONS_HASH}) but their revision is still "
        f"{FUNCTIONS_REVISION}: set FUNCTIONS_REVISION = {FUNCTIONS_REVISION + 1} in src/backends/postgres/sql.py "
        f"and add {FUNCTIONS_REVISION + 1}: \"{FUNCTIONS_HASH}\" to PINNED_FUNCTIONS in this file (keep "
        "the change backward compatible: see FUNCTIONS_REVISION's docstring). Without a new revision, "
        "processes of the two versions would re-apply their own functions at every connect"
    )
    assert len(set(PINNED_FUNCTIONS.values())) == len(PINNED_FUNCTIONS)


def newer_functions(marker: str = "newer") -> Functions:
    """The current functions plus one more, as the next revision would ship them."""
    files = [*CURRENT.files, ("zz_marker.sql", f"CREATE OR REPLACE FUNCTION {{schema}}.marker() RETURNS text "
                              f"LANGUAGE sql AS $$ SELECT '{marker}'::text $$")]
    return Functions(CURRENT.revision + 1, functions_hash(files), files)


async def functions_xmin(admin: asyncpg.Connection, schema: str) -> list[int]:
    """The pg_proc row versions of the schema's functions: CREATE OR REPLACE changes them."""
    rows = await admin.fetch(
        "SELECT xmin::text::bigint FROM pg_proc WHERE pronamespace = to_regnamespace($1) ORDER BY oid", schema
    )
    return [r[0] for r in rows]


async def stamp_of(admin: asyncpg.Connection, schema: str) -> str:
    stamp: str = await admin.fetchval(f"SELECT obj_description('\"{schema}\".schema_migrations'::regclass, 'pg_class')")
    return stamp


async def test_an_older_process_runs_on_newer_functions_and_leaves_them_in_place(
    make_pg: MakePostgres, admin: asyncpg.Connection, schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A rolling upgrade: the new version's process applies its revision...
    await make_pg()
    newer = newer_functions()
    applied = await upgrade(admin, schema, newer)
    assert applied.functions == newer.hash and applied.newer_functions is None
    before = await functions_xmin(admin, schema)
    # ...then old processes connect (and migrate) while it runs.
    with caplog.at_level(logging.WARNING, logger="fastjobs.postgres"):
        old = [await make_pg() for _ in range(3)]
        assert await old[0].migrate() == []
    assert [b.applied_functions for b in old] == [[], [], []]
    assert await functions_xmin(admin, schema) == before
    assert await stamp_of(admin, schema) == newer.stamp
    warned = [r.getMessage() for r in caplog.records if "newer than this fastjobs" in r.getMessage()]
    assert len(warned) == 1 and f"revision {newer.revision}," in warned[0], warned
    # They work on the newer functions (compatible within a schema version).
    await old[0].enqueue_many([NewJob("j1", "q", 0, 0.0, 3, b"body")])
    [claim] = await old[1].claim(["q"], 1, 30.0)
    assert await old[2].ack_many([Ack(claim.id, claim.token, AckKind.SUCCEED)]) == [True]
    assert await admin.fetchval(f'SELECT "{schema}".marker()') == "newer"
    # And the new version does not re-apply either: nobody flip-flops.
    assert (await upgrade(admin, schema, newer)).functions is None
    assert await functions_xmin(admin, schema) == before


async def test_many_older_processes_at_once_leave_newer_functions_in_place(
    make_pg: MakePostgres, admin: asyncpg.Connection, schema: str
) -> None:
    await make_pg()
    await upgrade(admin, schema, newer_functions())
    before = await functions_xmin(admin, schema)
    backends = await asyncio.gather(*(make_pg(min_connections=1, max_connections=2) for _ in range(6)))
    assert [b.applied_functions for b in backends] == [[]] * 6
    assert await functions_xmin(admin, schema) == before


async def test_a_newer_revision_replaces_older_functions_and_the_same_revision_with_new_text_too(
    make_pg: MakePostgres, admin: asyncpg.Connection, schema: str
) -> None:
    await make_pg()
    newer = newer_functions()
    assert (await upgrade(admin, schema, newer)).functions == newer.hash
    # An edit under development: same revision, other text. Applied, as before revisions.
    edited = newer_functions("edited")
    assert edited.revision == newer.revision and edited.hash != newer.hash
    assert (await upgrade(admin, schema, edited)).functions == edited.hash
    assert await admin.fetchval(f'SELECT "{schema}".marker()') == "edited"
    assert await stamp_of(admin, schema) == edited.stamp


@pytest.mark.parametrize("stamp", ["stale", None, "pre-revision", "same-revision-other-hash"])
async def test_a_schema_with_older_functions_gets_the_current_ones_at_connect(
    make_pg: MakePostgres, admin: asyncpg.Connection, schema: str, stamp: str | None
) -> None:
    first = await make_pg()
    current = await ack_source(admin, schema)
    # A schema that ran an earlier ack (the upgrade defect: its migration
    # number matched, so nothing replaced it), recorded stale or not at all.
    await admin.execute(OLD_ACK.format(s=f'"{schema}"'))
    if stamp == "pre-revision":  # what fastjobs recorded before functions had revisions
        stamp = f"fastjobs functions sha256 {'0' * 64}"
    elif stamp == "same-revision-other-hash":
        stamp = f"fastjobs functions revision {FUNCTIONS_REVISION} sha256 {'0' * 64}"
    await admin.execute(f'COMMENT ON TABLE "{schema}".schema_migrations IS {"NULL" if stamp is None else repr(stamp)}')
    assert await ack_source(admin, schema) != current
    second = await make_pg()
    assert second.applied_migrations == [] and second.applied_functions == [FUNCTIONS_HASH]
    assert await ack_source(admin, schema) == current
    await first.enqueue_many([NewJob("j1", "q", 0, 0.0, 3, b"body")])
    [claim] = await first.claim(["q"], 1, 30.0)
    assert await first.ack_many([Ack(claim.id, claim.token, AckKind.SUCCEED)]) == [True]
    assert (await make_pg()).applied_functions == []


async def test_many_backends_with_stale_functions_apply_them_once(
    make_pg: MakePostgres, admin: asyncpg.Connection, schema: str
) -> None:
    await make_pg()
    await admin.execute(f"COMMENT ON TABLE \"{schema}\".schema_migrations IS 'stale'")
    backends = await asyncio.gather(*(make_pg(min_connections=1, max_connections=2) for _ in range(8)))
    assert sorted(len(b.applied_functions) for b in backends) == [0] * 7 + [1]
    assert all(b.applied_migrations == [] for b in backends)


@pytest.mark.parametrize("stamp", ["current", "stale"])
async def test_a_schema_migrated_by_a_newer_fastjobs_is_refused(
    make_pg: MakePostgres, admin: asyncpg.Connection, schema: str, postgres_url: str, stamp: str
) -> None:
    await make_pg()
    latest = MIGRATIONS[-1][0]
    await admin.execute(f'INSERT INTO "{schema}".schema_migrations (version, name) VALUES ($1, $2)', latest + 1, "9_future")
    if stamp == "stale":  # the locked path, not the fast one
        await admin.execute(f"COMMENT ON TABLE \"{schema}\".schema_migrations IS 'stale'")
    before = await ack_source(admin, schema)
    backend = PostgresBackend(postgres_url, BackendOptions(prefix=schema))
    with pytest.raises(ConfigurationError, match=rf"at migration {latest + 1}, newer than this fastjobs knows"):
        await backend.connect()
    await backend.close()
    assert await ack_source(admin, schema) == before
    assert await admin.fetchval(f'SELECT count(*) FROM "{schema}".schema_migrations') == latest + 1


@pytest.mark.parametrize("path", ["fast", "locked", "require"])
async def test_a_schema_made_by_a_pre_fold_build_is_refused_not_half_migrated(
    admin: asyncpg.Connection, schema: str, postgres_url: str, path: str
) -> None:
    # What a development build from before the tables were folded into one baseline left: the
    # same migration numbers under other names (and other tables). Numbers alone took it as
    # migrated up to 3, applied 4, and the first enqueue failed on a missing column.
    await admin.execute(f'CREATE SCHEMA "{schema}"')
    await admin.execute(f'CREATE TABLE "{schema}".schema_migrations (version integer PRIMARY KEY, name text NOT NULL,'
                        " applied_at timestamptz NOT NULL DEFAULT now())")
    old = [(1, "001_create_tables"), (2, "002_job_functions"), (3, "003_dependencies_and_limits")]
    if path == "fast":
        old.append((MIGRATIONS[-1][0], MIGRATIONS[-1][1]))  # at the latest number: the unlocked fast path
    await admin.executemany(f'INSERT INTO "{schema}".schema_migrations (version, name) VALUES ($1, $2)', old)
    backend = PostgresBackend(postgres_url, BackendOptions(prefix=schema), migrate=path != "require")
    try:
        with pytest.raises(ConfigurationError, match=r"made by another fastjobs build: its migration 2 is "
                                                      r"'002_job_functions', this fastjobs' is '002_workers'.*DROP SCHEMA"):
            await backend.connect()
            await backend.ready()  # what the read-only commands ask (migrate=False)
    finally:
        await backend.close()
    assert await admin.fetchval(f'SELECT count(*) FROM "{schema}".schema_migrations') == len(old)  # nothing applied


@pytest.mark.slow
def test_cli_migrate_reapplies_stale_functions_once(postgres_url: str, schema: str) -> None:
    env = {**os.environ, "FASTJOBS_TEST_URL": postgres_url, "FASTJOBS_TEST_PREFIX": schema}
    cmd = [sys.executable, "-m", "fastjobs", "migrate", "tests.postgres.workerapp:app"]
    subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True)

    async def make_stale() -> None:
        conn = await asyncpg.connect(postgres_url)
        try:
            await conn.execute(f"COMMENT ON TABLE \"{schema}\".schema_migrations IS 'stale'")
        finally:
            await conn.close()

    asyncio.run(make_stale())
    procs = [subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0] * 3, outputs
    lines = sorted(out.strip() for out, _ in outputs)
    assert lines == [f"schema {schema!r} is up to date"] * 2 + [f"schema {schema!r}: applied the SQL functions"], lines
