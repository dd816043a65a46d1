"""PostgreSQL stats_estimated: exact counts up to ESTIMATE_ABOVE, a sample's estimate above.

The cap and the sample are lowered (module globals of the backend) so that a
few thousand jobs stand for a large store: the big count is capped and then
estimated from a sample of a few of its table's pages, as at 1M jobs."""

from __future__ import annotations

import asyncpg
import pytest

from fastjobs.backends import Ack, AckKind, NewJob
from fastjobs.backends.postgres import PostgresBackend
from fastjobs.backends.postgres import backend as pg_backend

BIG = 3000
CAP = 1000
PAGES = 12


def jobs(n: int, queue: str, delay: float = 0.0) -> list[NewJob]:
    return [NewJob(f"{queue}-{delay}-{i}", queue, 0, delay, 3, b"x" * 100, None, 0.0) for i in range(n)]


async def test_large_counts_are_estimated_small_ones_exact(
    pg: PostgresBackend, admin: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pg_backend, "ESTIMATE_ABOVE", CAP)
    monkeypatch.setattr(pg_backend, "SAMPLE_PAGES", PAGES)
    big = jobs(BIG, "big")
    for start in range(0, BIG, 1000):
        await pg.enqueue_many(big[start:start + 1000])
    await pg.enqueue_many([*jobs(5, "small"), *jobs(3, "small", delay=3600), *jobs(2, "other")])
    # A scheduled job whose time has come counts as queued, before promote_due moved it.
    await admin.execute(f'UPDATE "{pg.schema}".jobs SET run_at = now() - interval \'1 second\' '
                        "WHERE id = 'small-3600-0'")
    claimed = await pg.claim(["other"], 2, 30.0)
    await pg.ack_many([Ack(claimed[0].id, claimed[0].token, AckKind.SUCCEED)])
    pages = await admin.fetchval(f"SELECT pg_relation_size('\"{pg.schema}\".jobs') / 8192")
    assert pages > 2 * PAGES  # the big count is estimated from a sample, not the whole table

    exact = await pg.stats()
    counts, estimated = await pg.stats_estimated()
    assert estimated == {"big": frozenset({"queued"})}
    assert {q: {k: v for k, v in c.items() if v} for q, c in counts.items() if q != "big"} == {
        "small": {"queued": 6, "scheduled": 2},
        "other": {"active": 1, "succeeded": 1},
    }
    assert {q: c for q, c in counts.items() if q != "big"} == {q: c for q, c in exact.items() if q != "big"}
    assert {k: v for k, v in counts["big"].items() if k != "queued"} == dict.fromkeys(
        (k for k in exact["big"] if k != "queued"), 0)
    assert exact["big"]["queued"] == BIG
    assert CAP < counts["big"]["queued"]
    assert abs(counts["big"]["queued"] - BIG) <= 0.2 * BIG, counts["big"]


async def test_a_capped_count_is_never_reported_below_the_cap(
    pg: PostgresBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The sample may miss a count that is just over the cap (here: one page of
    # the table's many): the count then says "more than the cap", estimated.
    monkeypatch.setattr(pg_backend, "ESTIMATE_ABOVE", 10)
    monkeypatch.setattr(pg_backend, "SAMPLE_PAGES", 1)
    filler = jobs(2000, "filler")
    await pg.enqueue_many(filler[:1000])
    await pg.enqueue_many(filler[1000:])
    await pg.enqueue_many(jobs(11, "rare"))
    counts, estimated = await pg.stats_estimated()
    assert estimated == {"filler": frozenset({"queued"}), "rare": frozenset({"queued"})}
    assert counts["rare"]["queued"] >= 11
    assert counts["filler"]["queued"] > 10
