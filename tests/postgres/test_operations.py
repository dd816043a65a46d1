"""PostgreSQL's operations layer beyond the contract: migration 003 over a version-2 schema,
search plans that seek, events chunked under NOTIFY's payload limit and sent once per
statement, history kept bounded by the writes themselves, and the bookkeeping that
delete and edit-and-retry carry along (dependency rows, limit settings)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
import pytest

from fastjobs._core import DEAD, QUEUED, SUCCEEDED
from fastjobs.backends import Ack, AckKind, BackendOptions, Limit, NewJob
from fastjobs.backends.postgres import PostgresBackend
from fastjobs.backends.postgres.operations import _statement
from fastjobs.backends.postgres.search import search_args, shape_of
from fastjobs.backends.postgres.sql import MIGRATIONS, render
from fastjobs.backends.values import HISTOGRAM_BOUNDS, SEARCH_SCAN, HistoryRow, JobEdit, JobFilter
from tests.postgres.conftest import MakePostgres


def job(jid: str, queue: str = "q", task: str = "t", tags: tuple[str, ...] = (), **kw: Any) -> NewJob:
    fields: dict[str, Any] = dict(priority=0, delay=0.0, max_attempts=1, body=jid.encode(), unique_key=None,
                                  unique_ttl=0.0, depends_on=(), after=0, limit=None)
    fields.update(kw)
    return NewJob(jid, queue, fields["priority"], fields["delay"], fields["max_attempts"], fields["body"],
                  fields["unique_key"], fields["unique_ttl"], fields["depends_on"], fields["after"], fields["limit"],
                  task, tags)


async def test_migration_003_upgrades_a_version_2_schema_with_jobs_in_it(
    make_pg: MakePostgres, admin: asyncpg.Connection, schema: str
) -> None:
    quoted = f'"{schema}"'
    await admin.execute(f"CREATE SCHEMA {quoted}; CREATE TABLE {quoted}.schema_migrations ("
                        " version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")
    for version, name, sql in MIGRATIONS[:2]:
        await admin.execute(render(sql, schema))
        await admin.execute(f"INSERT INTO {quoted}.schema_migrations (version, name) VALUES ($1, $2)", version, name)
    # Jobs stored by version 2: one queued, one dead.
    await admin.execute(
        f"INSERT INTO {quoted}.jobs (id, queue, state, priority, seq, max_attempts, enqueued_at, run_at, body)"
        f" VALUES ('old-live', 'q', {QUEUED}, 0, 1, 3, now() - interval '1 hour', now() - interval '1 hour', 'x')")
    await admin.execute(
        f"INSERT INTO {quoted}.finished_jobs (id, queue, state, priority, attempt, max_attempts, token,"
        f" enqueued_at, run_at, finished_at, body)"
        f" VALUES ('old-dead', 'q', {DEAD}, 0, 3, 3, 3, now() - interval '2 hours', now() - interval '2 hours',"
        f" now() - interval '90 minutes', 'y')")
    pg = await make_pg()
    assert pg.applied_migrations == [name for _, name, _ in MIGRATIONS[2:]]
    assert pg.applied_migrations[:2] == ["003_operations", "004_event_log"]
    old = await pg.get("old-live")
    assert old is not None and old.task == "" and old.tags == ()
    # Old and new jobs are found, newest first, through the new indexes.
    await pg.enqueue_many([job("new", tags=("a",))])
    page, _ = await pg.search(JobFilter(), 10)
    assert [j.id for j in page] == ["new", "old-live", "old-dead"]
    assert await pg.retry_jobs(["old-dead"]) == [True]
    claims = await pg.claim(["q"], 10, 30.0)
    assert sorted(c.id for c in claims) == ["new", "old-dead", "old-live"]
    assert await pg.ack_many([Ack(c.id, c.token, AckKind.SUCCEED) for c in claims]) == [True] * 3
    page, _ = await pg.search(JobFilter(states=(SUCCEEDED,), tag="a"), 10)
    assert [j.id for j in page] == ["new"]


async def plan_of(pg: PostgresBackend, where: JobFilter, limit: int, after: Any = None) -> dict[str, Any]:
    shape = shape_of(where, after)
    sql = "EXPLAIN (ANALYZE, FORMAT JSON) " + _statement(shape, pg.schema)
    args = search_args(shape, where, limit, after)
    plan = await pg._run(lambda conn: conn.fetchval(sql, *args))
    result: dict[str, Any] = json.loads(plan)[0]["Plan"]
    return result


def scans(node: dict[str, Any]) -> list[dict[str, Any]]:
    found = [node] if "Scan" in node["Node Type"] else []
    for child in node.get("Plans", ()):
        found += scans(child)
    return found


@pytest.mark.parametrize("where", [
    JobFilter(),
    JobFilter(states=(DEAD,)),
    JobFilter(states=(QUEUED,), queue="q1"),
    JobFilter(queue="q2"),
    JobFilter(states=(SUCCEEDED, DEAD), since=0.0, until=4e9),
], ids=["none", "state", "state+queue", "queue", "states+since+until"])
async def test_a_search_page_seeks_every_part_and_reads_no_more_than_the_page(
    pg: PostgresBackend, where: JobFilter
) -> None:
    # 600 jobs over 3 queues and both tables; pages of 10, the second from a position.
    await pg.enqueue_many([job(f"j{i:04d}", queue=f"q{i % 3}") for i in range(600)])
    claims = await pg.claim(["q0", "q1", "q2"], 300, 30.0)
    await pg.ack_many([Ack(c.id, c.token, AckKind.SUCCEED if i % 2 else AckKind.DEAD) for i, c in enumerate(claims)])
    first, after = await pg.search(where, 10)
    assert len(first) == 10 and after is not None
    plan = await plan_of(pg, where, 10, after)
    for scan in scans(plan):
        if scan["Node Type"] in ("Subquery Scan", "CTE Scan", "Function Scan", "Result"):
            continue
        # An index walked from the position: never a table scan, never a row read to be thrown away.
        assert scan["Node Type"] in ("Index Scan", "Index Only Scan"), scan
        name = scan["Index Name"]
        if name == "jobs_lease":
            continue  # the active part: every active job (none here), sorted
        assert name.startswith(("jobs_search", "finished_jobs_search")) or name in ("jobs_pkey", "finished_jobs_pkey"), name
        assert scan.get("Rows Removed by Filter", 0) == 0, scan
        if name.endswith("_search") or name.endswith("_search_queue"):
            assert "<" in scan["Index Cond"] and scan["Actual Rows"] <= 10, scan


async def test_active_jobs_are_sorted_not_sought(pg: PostgresBackend) -> None:
    await pg.enqueue_many([job(f"a{i}") for i in range(30)])
    await pg.claim(["q"], 30, 30.0)
    page, after = await pg.search(JobFilter(states=(2,)), 20)  # ACTIVE
    assert len(page) == 20 and after is not None
    rest, end = await pg.search(JobFilter(states=(2,)), 20, after)
    assert len(rest) == 10 and end is None
    assert {j.id for j in page + rest} == {f"a{i}" for i in range(30)}


async def test_a_task_filter_examines_at_most_the_scan_budget(pg: PostgresBackend) -> None:
    await pg.enqueue_many([job(f"n{i:05d}", task="noise") for i in range(2500)] + [job("needle", task="needle")])
    where = JobFilter(states=(QUEUED,), task="needle")
    found, calls, after = [], 0, None
    while True:
        page, after = await pg.search(where, 50, after)
        calls += 1
        found += [j.id for j in page]
        if after is None:
            break
    # Each call examined at most SEARCH_SCAN candidates, shared by its three parts
    # (scheduled, queued, retry-pending): more calls than the 2,501 jobs / 1,000.
    assert found == ["needle"] and calls > 2501 // SEARCH_SCAN


class Published:
    """The payloads of the event rows written since :func:`listen` registered its connection."""

    def __init__(self, pg: PostgresBackend, admin: asyncpg.Connection, top: int) -> None:
        self.pg, self.admin, self.top = pg, admin, top
        self.got: list[str] = []

    async def read(self) -> list[str]:
        rows = await self.admin.fetch(
            f'SELECT seq, payload FROM "{self.pg.schema}".events WHERE seq > $1 ORDER BY seq', self.top)
        if rows:
            self.top = rows[-1]["seq"]
        self.got.extend(r["payload"] for r in rows)
        return self.got


async def listen(pg: PostgresBackend, admin: asyncpg.Connection) -> Published:
    """Registers ``admin`` as a listener, as an events() iterator's connection does."""
    return Published(pg, admin, await admin.fetchval(pg._q["listen_events"]))


async def test_events_are_one_row_per_statement(pg: PostgresBackend, admin: asyncpg.Connection) -> None:
    rows = await listen(pg, admin)
    long = "x" * 150
    jobs = [job(f"{long}-{i:04d}", queue="q", task="t" * 50) for i in range(300)]
    await pg.enqueue_many(jobs)
    got = await rows.read()
    assert len(got) == 1  # one statement, one row: not one per job
    events = json.loads(got[0])[1:]
    assert [e[1] for e in events] == [j.id for j in jobs] and {e[0] for e in events} == {0}
    # One claim of many jobs: one row, not one per job.
    got.clear()
    claims = await pg.claim(["q"], 300, 30.0)
    await rows.read()
    assert len(got) == 1 and len(json.loads(got[0])) - 1 == len(claims) == 300


async def test_nothing_is_published_while_nobody_listens(pg: PostgresBackend, admin: asyncpg.Connection) -> None:
    table = f'"{pg.schema}".events'
    await pg.enqueue_many([job("j1")])
    assert await admin.fetchval(f"SELECT count(*) FROM {table}") == 0  # nobody is known to listen
    rows = await listen(pg, admin)
    await pg.enqueue_many([job("j2")])
    assert [json.loads(p)[1][1] for p in await rows.read()] == ["j2"]
    await admin.execute(pg._q["unlisten_events"])
    await pg.enqueue_many([job("j3")])
    assert len(await rows.read()) == 1
    # A listener killed without unlistening is forgotten by cleanup.
    other = await asyncpg.connect(pg.url)
    await other.fetchval(pg._q["listen_events"])
    await other.close()
    await asyncio.sleep(0.2)
    await pg.cleanup()
    assert await admin.fetchval(f'SELECT count(*) FROM "{pg.schema}".event_listeners') == 0


async def listening(pg: PostgresBackend, admin: asyncpg.Connection) -> tuple[Any, asyncio.Future[Any]]:
    """An events() iterator waiting for its first event, once its listener row is in."""
    events = pg.events()
    first = asyncio.ensure_future(events.__anext__())
    for _ in range(100):
        if await admin.fetchval(f'SELECT count(*) FROM "{pg.schema}".event_listeners'):
            break
        await asyncio.sleep(0.02)
    return events, first


async def test_an_event_committed_after_a_later_one_is_still_delivered(
    pg: PostgresBackend, admin: asyncpg.Connection
) -> None:
    """A row's number is taken when its statement runs, and shows when its transaction commits:
    the iterator asks again for the numbers it skipped."""
    events, first = await listening(pg, admin)
    async with admin.transaction():
        # The earlier number, held by an open transaction...
        await admin.execute(f'SELECT "{pg.schema}".publish(0::smallint, ARRAY[\'early\'], ARRAY[\'t\'], ARRAY[\'q\'])')
        await pg.enqueue_many([job("late")])  # ...while a later one commits first.
        assert (await asyncio.wait_for(first, 5)).job_id == "late"
        second = asyncio.ensure_future(events.__anext__())
        await asyncio.sleep(0.3)
        assert not second.done()
    assert (await asyncio.wait_for(second, 5)).job_id == "early"
    await events.aclose()


async def test_an_events_iterator_registers_while_it_runs(pg: PostgresBackend, admin: asyncpg.Connection) -> None:
    events, first = await listening(pg, admin)
    await pg.enqueue_many([job("j1")])
    event = await asyncio.wait_for(first, 5)
    assert (event.kind, event.job_id, event.queue, event.task) == ("enqueued", "j1", "q", "t")
    await events.aclose()
    assert await admin.fetchval(f'SELECT count(*) FROM "{pg.schema}".event_listeners') == 0


async def test_no_events_when_they_are_off(make_pg: MakePostgres, admin: asyncpg.Connection) -> None:
    pg = await make_pg()
    quiet = PostgresBackend(pg.url, BackendOptions(prefix=pg.schema, events=False))
    try:
        rows = await listen(pg, admin)
        await quiet.enqueue_many([job("j1")])
        [c] = await quiet.claim(["q"], 1, 30.0)
        await quiet.ack_many([Ack(c.id, c.token, AckKind.SUCCEED)])
        assert await rows.read() == []
    finally:
        await quiet.close()


def row(queue: str, runs: int) -> HistoryRow:
    return HistoryRow(queue, "t", 0, runs, 0.001 * runs, (runs,) + (0,) * len(HISTOGRAM_BOUNDS))


async def test_history_rows_are_merged_and_expired_points_trimmed_a_bounded_amount_per_write(
    pg: PostgresBackend, admin: asyncpg.Connection
) -> None:
    table = f'"{pg.schema}".history'
    # 250 expired minute points (older than a day), as a long-stopped fleet would leave.
    await admin.execute(
        f"INSERT INTO {table} SELECT 60, now() - interval '2 days' - g * interval '1 minute', 'old', 't', 0, 0, 1, 0,"
        f" array_fill(0::bigint, ARRAY[{len(HISTOGRAM_BOUNDS) + 1}]) FROM generate_series(1, 250) g")
    await pg.ack_many([], history=[row("q", 2), row("q", 3), row("r", 1)])
    points = await pg.history(0, 4e9, 60, "q")
    assert len(points) == 1 and points[0].row.runs == 5 and points[0].row.buckets[0] == 5
    # Another session's shard of the same point (each session writes its own): read as one point.
    await admin.execute(f"INSERT INTO {table} SELECT step, at, queue, task, outcome, (shard + 1) % 8, 4, 0.5, buckets"
                        f" FROM {table} WHERE queue = 'q' AND step = 60")
    [point] = await pg.history(0, 4e9, 60, "q")
    assert point == points[0]._replace(row=points[0].row._replace(
        runs=9, runtime_sum=points[0].row.runtime_sum + 0.5, buckets=(10,) + (0,) * len(HISTOGRAM_BOUNDS)))
    assert len(await pg.history(0, 4e9, 3600, "r")) == 1
    # The write that created the points deleted at most 100 expired ones per step.
    assert await admin.fetchval(f"SELECT count(*) FROM {table} WHERE queue = 'old'") == 150
    # Adding to existing points deletes nothing more; a later new point goes on.
    await pg.ack_many([], history=[row("q", 1)])
    assert await admin.fetchval(f"SELECT count(*) FROM {table} WHERE queue = 'old'") == 150
    await pg.ack_many([], history=[row("s", 1)])
    assert await admin.fetchval(f"SELECT count(*) FROM {table} WHERE queue = 'old'") == 50


async def test_deleting_a_waiting_child_removes_its_registrations(pg: PostgresBackend, admin: asyncpg.Connection) -> None:
    await pg.enqueue_many([job("parent"), job("child", depends_on=("parent",))])
    deps = f'"{pg.schema}".job_deps'
    assert await admin.fetchval(f"SELECT count(*) FROM {deps}") == 1
    assert await pg.delete_jobs(["child", "nope"]) == [True, False]
    assert await admin.fetchval(f"SELECT count(*) FROM {deps}") == 0
    [c] = await pg.claim(["q"], 1, 30.0)
    assert await pg.ack_many([Ack(c.id, c.token, AckKind.SUCCEED)]) == [True]


async def test_a_limited_job_retried_into_another_queue_takes_its_limit_along(pg: PostgresBackend) -> None:
    await pg.enqueue_many([job("lim", limit=Limit("k", concurrency=1))])
    [c] = await pg.claim(["q"], 1, 30.0)
    await pg.ack_many([Ack(c.id, c.token, AckKind.DEAD)])
    assert await pg.retry_jobs(["lim"], JobEdit(b"new", "elsewhere", 5, 2)) == [True]
    [c] = await pg.claim(["elsewhere"], 1, 30.0)
    assert c.id == "lim" and c.body == b"new"
    stored = await pg.get("lim")
    assert stored is not None and stored.queue == "elsewhere" and stored.priority == 5 and stored.max_attempts == 2


async def test_tags_keep_their_order_and_a_separator_in_one_is_refused(pg: PostgresBackend) -> None:
    await pg.enqueue_many([job("a", tags=("z", "tenant:42", "a b")), job("b"), job("c", tags=("x",))])
    assert [(await pg.get(i)).tags for i in "abc"] == [("z", "tenant:42", "a b"), (), ("x",)]  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="U\\+001F"):
        await pg.enqueue_many([job("d", tags=("bad\x1ftag",))])


async def test_the_revision_3_enqueue_claim_and_ack_still_work_for_older_processes(
    pg: PostgresBackend, admin: asyncpg.Connection
) -> None:
    # What a process of the previous release sends during a rolling upgrade (its prepared statements).
    s = f'"{pg.schema}"'
    await admin.execute(f"SELECT {s}.enqueue($1::text[], $2::text[], $3::bigint[], $4::float8[], $5::integer[], $6::bytea[])",
                        ["old"], ["q"], [0], [0.0], [1], [b"x"])
    row = await admin.fetchrow(f"SELECT * FROM {s}.claim($1::text[], 1, 30.0, ''::bytea, ''::bytea, ''::bytea)", ["q"])
    assert row["claimed_ids"] == ["old"]
    assert await admin.fetchval(f"SELECT {s}.ack($1::text[], $2::bigint[], NULL, NULL, NULL, true)",
                                ["old"], row["claimed_tokens"]) == [1]
    stored = await pg.get("old")
    assert stored is not None and stored.state == SUCCEEDED and stored.task == ""


async def test_event_rows_older_than_a_minute_are_deleted_by_cleanup(pg: PostgresBackend, admin: asyncpg.Connection) -> None:
    table = f'"{pg.schema}".events'
    await admin.execute(f"INSERT INTO {table} (at, payload) VALUES (now() - interval '2 minutes', '[0]'), (now(), '[1]')")
    await pg.cleanup()
    assert [r["payload"] for r in await admin.fetch(f"SELECT payload FROM {table}")] == ["[1]"]
