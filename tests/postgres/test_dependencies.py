"""Dependencies on PostgreSQL: the races between transactions that the contract suite cannot stage.

Each race is staged deterministically: one side runs inside a transaction held
open on a raw asyncpg connection, the other side runs on a backend meanwhile,
then the first commits.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from fastjobs._core import CANCELLED, DEAD, QUEUED, SUCCEEDED, WAITING
from fastjobs.backends import Ack, NewJob
from fastjobs.backends.postgres import PostgresBackend
from fastjobs.errors import DependencyError
from tests.postgres.conftest import MakePostgres


def job(job_id: str, *parents: str, after: int = 0, max_attempts: int = 3, queue: str = "q") -> NewJob:
    return NewJob(job_id, queue, 0, 0.0, max_attempts, b"", None, 0.0, parents, after)


async def claim_ids(pg: PostgresBackend, wanted: set[str]) -> dict[str, int]:
    """Claim until every job of ``wanted`` is leased; their tokens (other claims are left active)."""
    tokens: dict[str, int] = {}
    for _ in range(20):
        for c in await pg.claim(["q"], 100, 60.0):
            tokens[c.id] = c.token
        if wanted <= tokens.keys():
            return tokens
    raise AssertionError(f"could not claim {wanted - tokens.keys()}")


async def dep_rows(admin: asyncpg.Connection, schema: str) -> int:
    return int(await admin.fetchval(f'SELECT count(*) FROM "{schema}".job_deps'))


async def test_two_parents_acked_in_two_concurrent_transactions_release_the_child_once(
    make_pg: MakePostgres, admin: asyncpg.Connection
) -> None:
    a, b = await make_pg(), await make_pg()
    await a.enqueue_many([job("p1"), job("p2"), job("c", "p1", "p2")])
    tokens = await claim_ids(a, {"p1", "p2"})
    s = f'"{a.schema}"'
    # p1's ack runs in a transaction held open; p2's ack, from the other
    # backend, must then wait for the child's row instead of reading a stale count.
    async with admin.transaction():
        applied = await admin.fetchval(
            f"SELECT {s}.ack($1::text[], $2::bigint[], NULL, NULL, NULL, true)", ["p1"], [tokens["p1"]]
        )
        assert applied == [1]
        second = asyncio.ensure_future(b.ack_many([Ack("p2", tokens["p2"], 0)]))
        await asyncio.sleep(0.3)
        assert not second.done()  # blocked on the child's row
    assert await second == [True]
    child = await a.get("c")
    assert child is not None and (child.state, child.pending_parents, child.failed_parents) == (QUEUED, 0, 0)
    assert [c.id for c in await a.claim(["q"], 10, 60.0)] == ["c"]
    assert await a.claim(["q"], 10, 60.0) == []
    assert await dep_rows(admin, a.schema) == 0


async def test_many_children_of_two_parents_acked_concurrently(make_pg: MakePostgres) -> None:
    a, b = await make_pg(), await make_pg()
    children = [job(f"c{i:03d}", "p1", "p2") for i in range(200)]
    await a.enqueue_many([job("p1"), job("p2"), *children])
    tokens = await claim_ids(a, {"p1", "p2"})
    assert await asyncio.gather(
        a.ack_many([Ack("p1", tokens["p1"], 0)]), b.ack_many([Ack("p2", tokens["p2"], 0)])
    ) == [[True], [True]]
    states = {(s.state, s.pending_parents) for s in await a.list_jobs(QUEUED, "q", 1000)}
    assert states == {(QUEUED, 0)}
    assert len(await a.list_jobs(QUEUED, "q", 1000)) == 200
    assert await a.list_jobs(WAITING) == []


@pytest.mark.parametrize("kind, expected", [(0, QUEUED), (2, CANCELLED)])
async def test_a_parent_acked_while_its_child_is_enqueued_in_an_open_transaction(
    pg: PostgresBackend, postgres_url: str, kind: int, expected: int
) -> None:
    await pg.enqueue_many([job("p")])
    (claim,) = await pg.claim(["q"], 1, 60.0)
    conn = await asyncpg.connect(postgres_url)
    try:
        async with conn.transaction():
            await pg.enqueue_many([job("c", "p")], connection=conn)
            # The ack commits after the child's enqueue looked at the parent
            # (live): it must see the child's registration once it commits.
            ack = asyncio.ensure_future(pg.ack_many([Ack("p", claim.token, kind)]))
            await asyncio.sleep(0.3)
        assert await ack == [True]
    finally:
        await conn.close()
    child = await pg.get("c")
    assert child is not None and child.state == expected
    assert child.pending_parents == 0


@pytest.mark.parametrize("kind, expected", [(0, QUEUED), (2, CANCELLED)])
async def test_a_child_enqueued_while_its_parent_ack_is_uncommitted(
    pg: PostgresBackend, admin: asyncpg.Connection, kind: int, expected: int
) -> None:
    await pg.enqueue_many([job("p")])
    (claim,) = await pg.claim(["q"], 1, 60.0)
    s = f'"{pg.schema}"'
    async with admin.transaction():
        await admin.fetchval(
            f"SELECT {s}.ack($1::text[], $2::bigint[], $3::smallint[], NULL, NULL, true)", ["p"], [claim.token], [kind]
        )
        # The enqueue looks at its parent while the ack that finishes it is in
        # flight: it must neither call the parent unknown nor wait for it forever.
        enqueue = asyncio.ensure_future(pg.enqueue_many([job("c", "p")]))
        await asyncio.sleep(0.3)
    assert await enqueue == ["c"]
    child = await pg.get("c")
    assert child is not None and (child.state, child.pending_parents) == (expected, 0)
    assert child.failed_parents == (1 if kind == 2 else 0)
    assert await dep_rows(admin, pg.schema) == 0


async def test_a_three_level_chain_is_cancelled_when_its_root_dies_at_lease_expiry(
    pg: PostgresBackend, admin: asyncpg.Connection
) -> None:
    await pg.enqueue_many([job("a", max_attempts=1), job("b", "a"), job("c", "b"), job("d", "c", after=1)])
    (claim,) = await pg.claim(["q"], 10, 0.05)
    assert claim.id == "a"
    await asyncio.sleep(0.15)
    # The claim recovers the lease first: a dies, b and c are cancelled, and d
    # (FINISHED: a cancelled parent is an outcome like any other) is released
    # in time to be leased by the same claim.
    assert [c.id for c in await pg.claim(["q"], 10, 60.0)] == ["d"]
    states = {i: (await pg.get(i)) for i in "abcd"}
    assert states["a"] is not None and states["a"].state == DEAD
    assert states["b"] is not None and (states["b"].state, states["b"].failed_parents) == (CANCELLED, 1)
    assert states["c"] is not None and (states["c"].state, states["c"].failed_parents) == (CANCELLED, 1)
    assert states["d"] is not None and (states["d"].pending_parents, states["d"].failed_parents) == (0, 1)
    assert await dep_rows(admin, pg.schema) == 0


async def test_recover_cascades_like_the_claim(pg: PostgresBackend) -> None:
    await pg.enqueue_many([job("a", max_attempts=1), job("b", "a"), job("c", "b")])
    await pg.claim(["q"], 1, 0.05)
    await asyncio.sleep(0.15)
    assert await pg.recover() == 1
    assert [(await pg.get(i)).state for i in "bc"] == [CANCELLED, CANCELLED]  # type: ignore[union-attr]


async def test_a_parent_in_another_queue_counts(pg: PostgresBackend) -> None:
    await pg.enqueue_many([job("p", queue="other"), job("c", "p")])
    (claim,) = await pg.claim(["other"], 1, 60.0)
    await pg.ack_many([Ack("p", claim.token, 0)])
    child = await pg.get("c")
    assert child is not None and child.state == QUEUED


async def test_an_unknown_parent_rolls_back_a_transactional_enqueue(
    pg: PostgresBackend, postgres_url: str, admin: asyncpg.Connection
) -> None:
    conn = await asyncpg.connect(postgres_url)
    try:
        with pytest.raises(DependencyError) as info:
            async with conn.transaction():
                await pg.enqueue_many([job("ok"), job("c", "ok", "missing")], connection=conn)
        assert (info.value.job_id, info.value.parent) == ("c", "missing")
    finally:
        await conn.close()
    assert await pg.get("ok") is None and await pg.get("c") is None
    assert await dep_rows(admin, pg.schema) == 0


async def test_a_cleaned_up_parent_is_unknown(make_pg: MakePostgres) -> None:
    pg = await make_pg(result_ttl=0.0)
    await pg.enqueue_many([job("p")])
    (claim,) = await pg.claim(["q"], 1, 60.0)
    await pg.ack_many([Ack("p", claim.token, 0)])  # result_ttl=0: deleted at its ack
    with pytest.raises(DependencyError):
        await pg.enqueue_many([job("c", "p")])


async def test_finished_parents_leave_no_dependency_rows(pg: PostgresBackend, admin: asyncpg.Connection) -> None:
    await pg.enqueue_many([job("p1"), job("p2"), job("c1", "p1"), job("c2", "p1", "p2")])
    assert await dep_rows(admin, pg.schema) == 3
    await pg.cancel("p2")  # c2 cancelled (SUCCEEDED mode), its row on p1 stays until p1 finishes
    assert (await pg.get("c2")).state == CANCELLED  # type: ignore[union-attr]
    tokens = await claim_ids(pg, {"p1"})
    await pg.ack_many([Ack("p1", tokens["p1"], 0)])
    assert (await pg.get("p1")).state == SUCCEEDED  # type: ignore[union-attr]
    assert await dep_rows(admin, pg.schema) == 0
    assert (await pg.get("c1")).state == QUEUED  # type: ignore[union-attr]
