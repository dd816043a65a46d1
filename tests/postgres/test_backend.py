"""PostgreSQL specifics beyond the shared contract: URLs, where finished jobs go,
retention in batches, the hot table's vacuum, and the fencing of stale outcomes."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

import fastjobs
from fastjobs._core import DEAD, QUEUED, RETRY_PENDING, SUCCEEDED
from fastjobs.backends import Ack, AckKind, BackendOptions, NewJob, create_backend
from fastjobs.backends.postgres import PostgresBackend
from fastjobs.job import error_record
from tests.postgres.conftest import NO_EXTRAS, MakePostgres


def jobs(n: int, queue: str = "q", **kw: object) -> list[NewJob]:
    return [NewJob(f"{queue}-{i}", queue, 0, 0.0, 3, b"body", **kw) for i in range(n)]  # type: ignore[arg-type]


def with_scheme(url: str, scheme: str, query: str = "") -> str:
    parts = urlsplit(url)
    return urlunsplit((scheme, parts.netloc, parts.path, query, ""))


@pytest.mark.parametrize(
    ("scheme", "query"),
    [("postgresql", ""), ("postgres", ""), ("postgresql", "sslmode=disable"), ("postgres", "sslmode=prefer&application_name=fastjobs-test")],
)
async def test_urls(postgres_url: str, schema: str, scheme: str, query: str) -> None:
    backend = create_backend(with_scheme(postgres_url, scheme, query), BackendOptions(prefix=schema))
    assert isinstance(backend, PostgresBackend)
    await backend.connect()
    try:
        # It answers, with the server's clock (the same machine's: close to ours).
        assert abs(await backend.now() - time.time()) < 60
        if "application_name" in query:  # the URL's options reach the server
            assert await backend._fetchval("SELECT current_setting('application_name')") == "fastjobs-test"
        await backend.enqueue_many(jobs(1))
        assert (await backend.stats())["q"]["queued"] == 1
    finally:
        await backend.close()


async def test_unreachable_server_is_a_clear_error(schema: str) -> None:
    backend = create_backend("postgresql://postgres@127.0.0.1:1/nowhere", BackendOptions(prefix=schema))
    with pytest.raises(fastjobs.BackendUnavailableError, match="cannot connect"):
        await backend.connect()
    await backend.close()


async def test_finished_jobs_leave_the_hot_table(pg: PostgresBackend, admin: asyncpg.Connection) -> None:
    await pg.enqueue_many(jobs(30))
    claims = await pg.claim(["q"], 30, 30.0)
    acks = [Ack(c.id, c.token, AckKind.SUCCEED, b"r") for c in claims[:10]]
    acks += [Ack(c.id, c.token, AckKind.DEAD, error_record(1, "E", "x")) for c in claims[10:20]]
    acks += [Ack(c.id, c.token, AckKind.RETRY, error_record(1, "E", "x"), 60.0) for c in claims[20:]]
    assert await pg.ack_many(acks) == [True] * 30
    s = f'"{pg.schema}"'
    assert await admin.fetchval(f"SELECT count(*) FROM {s}.jobs") == 10  # the retry-pending ones
    assert await admin.fetchval(f"SELECT count(*) FROM {s}.finished_jobs") == 20
    assert (await pg.get(claims[0].id)).state == SUCCEEDED  # type: ignore[union-attr]
    assert (await pg.get(claims[15].id)).state == DEAD  # type: ignore[union-attr]
    assert (await pg.get(claims[25].id)).state == RETRY_PENDING  # type: ignore[union-attr]


async def test_cleanup_deletes_in_batches_and_keeps_the_young(make_pg: MakePostgres, admin: asyncpg.Connection) -> None:
    pg = await make_pg(result_ttl=0.3, dead_ttl=3600)
    await pg.enqueue_many(jobs(120))
    claims = await pg.claim(["q"], 120, 30.0)
    await pg.ack_many([Ack(c.id, c.token, AckKind.SUCCEED) for c in claims[:100]]
                      + [Ack(c.id, c.token, AckKind.DEAD, b"") for c in claims[100:]])
    assert await pg.cleanup() == 0  # too young
    await asyncio.sleep(0.4)
    assert await pg.cleanup() == 100
    assert await admin.fetchval(f'SELECT count(*) FROM "{pg.schema}".finished_jobs') == 20


async def test_ids_stay_unique_after_a_job_finished(pg: PostgresBackend) -> None:
    (first,) = jobs(1)
    await pg.enqueue_many([first])
    (c,) = await pg.claim(["q"], 1, 30.0)
    await pg.ack_many([Ack(c.id, c.token, AckKind.SUCCEED)])
    with pytest.raises(ValueError, match="already exists"):
        await pg.enqueue_many([first])
    assert (await pg.get(first.id)).state == SUCCEEDED  # type: ignore[union-attr]


async def test_duplicate_acks_in_one_batch_apply_once(pg: PostgresBackend) -> None:
    await pg.enqueue_many(jobs(2))
    a, b = await pg.claim(["q"], 2, 30.0)
    result = await pg.ack_many([
        Ack(a.id, a.token, AckKind.SUCCEED, b"first"),
        Ack(a.id, a.token, AckKind.SUCCEED, b"second"),
        Ack(b.id, b.token, AckKind.RELEASE),
    ])
    assert result == [True, False, True]
    assert (await pg.get(a.id)).result == b"first"  # type: ignore[union-attr]
    assert (await pg.get(b.id)).state == QUEUED  # type: ignore[union-attr]


async def test_a_repeated_job_in_one_batch_applies_its_current_lease(pg: PostgresBackend) -> None:
    await pg.enqueue_many(jobs(1))
    (old,) = await pg.claim(["q"], 1, 30.0)
    assert await pg.ack_many([Ack(old.id, old.token, AckKind.RELEASE)]) == [True]
    (new,) = await pg.claim(["q"], 1, 30.0)
    assert new.id == old.id and new.token > old.token
    # Whatever comes with it (an older token, a bogus higher one, a repeat),
    # the copy with the current token applies, once; the others report stale.
    assert await pg.renew([
        (old.id, old.token, 60.0), (new.id, new.token + 5, 60.0), (new.id, new.token, 60.0), (new.id, new.token, 60.0),
    ]) == [False, False, True, False]
    result = await pg.ack_many([
        Ack(old.id, old.token, AckKind.SUCCEED, b"stale"),
        Ack(new.id, new.token + 5, AckKind.DEAD, b""),
        Ack(new.id, new.token, AckKind.SUCCEED, b"current"),
        Ack(new.id, new.token, AckKind.RETRY, b""),
    ])
    assert result == [False, False, True, False]
    assert (await pg.get(new.id)).result == b"current"  # type: ignore[union-attr]


async def test_unknown_ack_kind_is_refused_before_anything_applies(pg: PostgresBackend) -> None:
    await pg.enqueue_many(jobs(1))
    (c,) = await pg.claim(["q"], 1, 30.0)
    with pytest.raises(ValueError, match="unknown ack kind"):
        await pg.ack_many([Ack(c.id, c.token, AckKind.SUCCEED), Ack(c.id, c.token, 9)])
    assert await pg.ack_many([Ack(c.id, c.token, AckKind.SUCCEED)]) == [True]


async def test_the_hot_table_is_vacuumed_once_dead_rows_pile_up(make_pg: MakePostgres, admin: asyncpg.Connection) -> None:
    pg = await make_pg(result_ttl=0)
    for _ in range(3):
        await pg.enqueue_many(jobs(1000, queue=f"q{_}"))
        claims = await pg.claim([f"q{_}"], 1000, 30.0)
        await pg.ack_many([Ack(c.id, c.token, AckKind.SUCCEED) for c in claims])
    # The statistics collector learns of dead rows when a session reports (at
    # most once a second): wait for it rather than guess.
    s = f'"{pg.schema}"'
    for _ in range(50):
        dead = await admin.fetchval(f"SELECT n_dead_tup FROM pg_stat_user_tables WHERE relid = '{s}.jobs'::regclass")
        if dead >= 3000:
            break
        await asyncio.sleep(0.1)
    assert await pg.vacuum_hot_table(min_dead=100_000) is False
    assert await pg.vacuum_hot_table(min_dead=1000) is True
    last = await admin.fetchval(f"SELECT last_vacuum FROM pg_stat_user_tables WHERE relid = '{s}.jobs'::regclass")
    assert last is not None


async def test_cleanup_vacuums_finished_jobs_after_deleting_many(make_pg: MakePostgres, admin: asyncpg.Connection) -> None:
    pg = await make_pg(result_ttl=60)
    s = f'"{pg.schema}"'
    # 12,000 results long past their retention (cleanup's threshold is 10,000 dead rows).
    await admin.execute(
        f"INSERT INTO {s}.finished_jobs (id, queue, state, priority, attempt, max_attempts, token,"
        " enqueued_at, run_at, finished_at, body)"
        " SELECT 'old' || i, 'q', 3, 0, 1, 3, 1, now() - interval '1 day', now() - interval '1 day',"
        " now() - interval '1 day', '' FROM generate_series(1, 12000) AS i"
    )
    assert await admin.fetchval(f"SELECT last_vacuum FROM pg_stat_user_tables WHERE relid = '{s}.finished_jobs'::regclass") is None
    assert await pg.cleanup() == 12_000
    last = await admin.fetchval(f"SELECT last_vacuum FROM pg_stat_user_tables WHERE relid = '{s}.finished_jobs'::regclass")
    assert last is not None


async def test_delayed_and_retried_jobs_keep_fifo_by_enqueue_order(pg: PostgresBackend) -> None:
    early = NewJob("early", "q", 0, 0.2, 3, b"")
    await pg.enqueue_many([early])
    await pg.enqueue_many([NewJob("late", "q", 0, 0.0, 3, b"")])
    await asyncio.sleep(0.3)
    assert await pg.promote_due() == 1
    assert [c.id for c in await pg.claim(["q"], 10, 30.0)] == ["early", "late"]


async def test_enqueue_is_refused_on_a_closed_backend(make_pg: MakePostgres) -> None:
    pg = await make_pg()
    await pg.close()
    with pytest.raises(fastjobs.BackendUnavailableError, match="closed"):
        await pg.enqueue_many(jobs(1))


async def test_concurrent_claims_never_hand_out_a_job_twice(make_pg: MakePostgres) -> None:
    producer = await make_pg()
    await producer.enqueue_many([NewJob(f"j{i}", "q", i % 3, 0.0, 3, b"") for i in range(2000)])
    claimers = [await make_pg(max_connections=2) for _ in range(4)]
    seen: list[str] = []

    async def drain(backend: PostgresBackend) -> None:
        while True:
            got = await backend.claim(["q"], 37, 30.0)
            if not got:
                return
            seen.extend(c.id for c in got)
            await backend.ack_many([Ack(c.id, c.token, AckKind.SUCCEED) for c in got])

    await asyncio.gather(*(drain(b) for b in claimers))
    assert len(seen) == 2000 and len(set(seen)) == 2000
    assert (await producer.stats())["q"]["succeeded"] == 2000


async def test_a_batch_repeating_an_id_is_refused_whole(pg: PostgresBackend) -> None:
    a = NewJob("same", "q", 0, 0.0, 3, b"", "k")
    b = NewJob("same", "q", 0, 0.0, 3, b"", "k")
    c = NewJob("other", "q", 0, 0.0, 3, b"")
    with pytest.raises(ValueError, match="more than once"):
        await pg.enqueue_many([c, a, b])
    assert await pg.get("other") is None


@pytest.mark.parametrize("unique_key", [None, "k"])
async def test_an_id_enqueued_while_its_job_is_being_acked_is_refused(
    pg: PostgresBackend, admin: asyncpg.Connection, unique_key: str | None
) -> None:
    # Several schedulers enqueue one periodic tick under one id: one of them
    # may come while the first copy's ack is moving it to finished_jobs.
    await pg.enqueue_many([NewJob("tick", "q", 0, 0.0, 3, b"", unique_key)])
    (c,) = await pg.claim(["q"], 1, 30.0)
    async with admin.transaction():
        assert await admin.fetchval(pg._q["ack"], [c.id], [c.token], None, None, None, True, *NO_EXTRAS) == [1]
        racing = asyncio.ensure_future(pg.enqueue_many([NewJob("tick", "q", 0, 0.0, 3, b"", unique_key)]))
        await asyncio.sleep(0.3)
        assert not racing.done()  # waiting on the finishing job's row
    with pytest.raises(fastjobs.DuplicateJobError, match="'tick' already exists"):
        await asyncio.wait_for(racing, 5.0)
    assert (await pg.stats())["q"] == {**dict.fromkeys(fastjobs._core.STATE_NAMES, 0), "succeeded": 1}
