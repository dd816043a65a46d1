"""Migrations: numbered .sql files, applied once under an advisory lock, however many
workers start at the same moment; the functions, re-applied when their text changes;
``fastjobs migrate``."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import asyncpg
import pytest

from fastjobs.backends import Ack, AckKind, BackendOptions, NewJob
from fastjobs.backends.postgres import PostgresBackend
from fastjobs.backends.postgres.sql import FUNCTIONS_HASH, MIGRATIONS, QUERIES
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


@pytest.mark.parametrize("stamp", ["stale", None])
async def test_a_schema_with_older_functions_gets_the_current_ones_at_connect(
    make_pg: MakePostgres, admin: asyncpg.Connection, schema: str, stamp: str | None
) -> None:
    first = await make_pg()
    current = await ack_source(admin, schema)
    # A schema that ran an earlier ack (the upgrade defect: its migration
    # number matched, so nothing replaced it), recorded stale or not at all.
    await admin.execute(OLD_ACK.format(s=f'"{schema}"'))
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
