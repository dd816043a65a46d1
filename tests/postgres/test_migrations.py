"""Migrations: numbered .sql files, applied once under an advisory lock, however many
workers start at the same moment; ``fastjobs migrate``."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import asyncpg
import pytest

from fastjobs.backends import BackendOptions
from fastjobs.backends.postgres import PostgresBackend
from fastjobs.backends.postgres.sql import MIGRATIONS, QUERIES
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
