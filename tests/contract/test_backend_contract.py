"""The backend contract (``fastjobs/backends/base.py``), run against every backend."""

from __future__ import annotations

import asyncio
import time

import pytest

from fastjobs._core import (
    ACTIVE,
    CANCELLED,
    DEAD,
    QUEUED,
    RETRY_PENDING,
    SCHEDULED,
    SUCCEEDED,
    decode_value,
)
from fastjobs.backends import Ack, AckKind, Backend, NewJob
from fastjobs.job import decode_error, error_record, new_job_id
from tests.contract.conftest import MakeBackend

LEASE = 30.0


def job(queue: str = "q", priority: int = 0, delay: float = 0.0, max_attempts: int = 3,
        body: bytes | None = None, unique_key: str | None = None, job_id: str | None = None,
        unique_ttl: float = 0.0) -> NewJob:
    jid = job_id or new_job_id()
    return NewJob(jid, queue, priority, delay, max_attempts, body or jid.encode(), unique_key, unique_ttl)


async def claim_ids(backend: Backend, queues: list[str], n: int = 100, lease: float = LEASE) -> list[str]:
    return [c.id for c in await backend.claim(queues, n, lease)]


async def test_enqueue_then_claim_returns_body_token_and_attempt(backend: Backend) -> None:
    j = job(body=b"\x00payload\xff")
    assert await backend.enqueue_many([j]) == [j.id]
    stored = await backend.get(j.id)
    assert stored is not None and stored.state == QUEUED and stored.attempt == 0
    claims = await backend.claim(["q"], 10, LEASE)
    assert len(claims) == 1
    c = claims[0]
    assert (c.id, c.token, c.attempt, c.body) == (j.id, 1, 1, b"\x00payload\xff")
    stored = await backend.get(j.id)
    assert stored is not None and stored.state == ACTIVE and stored.lease_until is not None
    assert await backend.claim(["q"], 10, LEASE) == []


async def test_priority_then_fifo_then_queue_order(backend: Backend) -> None:
    low1, high1, low2, high2 = job(priority=0), job(priority=5), job(priority=0), job(priority=5)
    other = job(queue="other", priority=100)
    await backend.enqueue_many([low1, high1])
    await backend.enqueue_many([low2, high2, other])
    assert await claim_ids(backend, ["q", "other"], 3) == [high1.id, high2.id, low1.id]
    assert await claim_ids(backend, ["q", "other"], 3) == [low2.id, other.id]


async def test_negative_priorities_come_last(backend: Backend) -> None:
    a, b, c = job(priority=-3), job(priority=0), job(priority=-1)
    await backend.enqueue_many([a, b, c])
    assert await claim_ids(backend, ["q"]) == [b.id, c.id, a.id]


async def test_claim_takes_at_most_n(backend: Backend) -> None:
    jobs = [job() for _ in range(25)]
    await backend.enqueue_many(jobs)
    first = await claim_ids(backend, ["q"], 10)
    second = await claim_ids(backend, ["q"], 100)
    assert first == [j.id for j in jobs[:10]]
    assert second == [j.id for j in jobs[10:]]
    assert await backend.claim(["q"], 0, LEASE) == []


async def test_delayed_job_waits_for_its_time(backend: Backend) -> None:
    later, now = job(delay=0.4), job()
    await backend.enqueue_many([later, now])
    stored = await backend.get(later.id)
    assert stored is not None and stored.state == SCHEDULED
    assert await claim_ids(backend, ["q"]) == [now.id]
    await asyncio.sleep(0.5)
    assert (await backend.promote_due()) in (0, 1)  # claim promotes too; either is fine
    assert await claim_ids(backend, ["q"]) == [later.id]


async def test_delayed_job_keeps_its_enqueue_position(backend: Backend) -> None:
    early = job(delay=0.2)
    late = job()
    await backend.enqueue_many([early])
    await backend.enqueue_many([late])
    await asyncio.sleep(0.3)
    assert await claim_ids(backend, ["q"]) == [early.id, late.id]


async def test_enqueue_many_is_all_or_nothing(backend: Backend) -> None:
    existing = job()
    await backend.enqueue_many([existing])
    fresh = job()
    with pytest.raises(Exception):
        await backend.enqueue_many([fresh, job(job_id=existing.id)])
    assert await backend.get(fresh.id) is None


async def test_succeed_stores_result_and_rejects_a_second_ack(backend: Backend) -> None:
    j = job()
    await backend.enqueue_many([j])
    (c,) = await backend.claim(["q"], 1, LEASE)
    assert await backend.ack_many([Ack(c.id, c.token, AckKind.SUCCEED, b"\x01result")]) == [True]
    stored = await backend.get(j.id)
    assert stored is not None and stored.state == SUCCEEDED and stored.result == b"\x01result"
    assert stored.finished_at is not None
    # The same ack again is stale: never applied twice.
    assert await backend.ack_many([Ack(c.id, c.token, AckKind.SUCCEED, b"other")]) == [False]
    stored = await backend.get(j.id)
    assert stored is not None and stored.result == b"\x01result"


async def test_ack_with_a_wrong_token_is_rejected(backend: Backend) -> None:
    j = job()
    await backend.enqueue_many([j])
    (c,) = await backend.claim(["q"], 1, LEASE)
    result = await backend.ack_many([
        Ack(c.id, c.token + 1, AckKind.SUCCEED),
        Ack("no-such-job", 1, AckKind.SUCCEED),
    ])
    assert result == [False, False]
    stored = await backend.get(j.id)
    assert stored is not None and stored.state == ACTIVE


async def test_mixed_batch_of_acks(backend: Backend) -> None:
    jobs = [job() for _ in range(4)]
    await backend.enqueue_many(jobs)
    c = await backend.claim(["q"], 4, LEASE)
    err = error_record(1, "ValueError", "boom")
    applied = await backend.ack_many([
        Ack(c[0].id, c[0].token, AckKind.SUCCEED, None),
        Ack(c[1].id, c[1].token, AckKind.RETRY, err, 60.0),
        Ack(c[2].id, c[2].token, AckKind.DEAD, err),
        Ack(c[3].id, c[3].token, AckKind.RELEASE),
    ])
    assert applied == [True, True, True, True]
    states = [(await backend.get(j.id)).state for j in jobs]  # type: ignore[union-attr]
    assert states == [SUCCEEDED, RETRY_PENDING, DEAD, QUEUED]


async def test_retry_waits_then_counts_the_next_attempt(backend: Backend) -> None:
    j = job(max_attempts=3)
    await backend.enqueue_many([j])
    (c,) = await backend.claim(["q"], 1, LEASE)
    err = error_record(1, "ValueError", "boom", "Traceback...")
    assert await backend.ack_many([Ack(c.id, c.token, AckKind.RETRY, err, 0.3)]) == [True]
    stored = await backend.get(j.id)
    assert stored is not None and stored.state == RETRY_PENDING
    assert [decode_error(e).message for e in stored.errors] == ["boom"]
    assert await backend.claim(["q"], 1, LEASE) == []
    await asyncio.sleep(0.4)
    (c2,) = await backend.claim(["q"], 1, LEASE)
    assert (c2.id, c2.attempt, c2.token) == (j.id, 2, 2)


async def test_retry_without_delay_is_ready_at_once(backend: Backend) -> None:
    j = job()
    await backend.enqueue_many([j])
    (c,) = await backend.claim(["q"], 1, LEASE)
    await backend.ack_many([Ack(c.id, c.token, AckKind.RETRY, error_record(1, "E", "x"), 0.0)])
    assert await claim_ids(backend, ["q"]) == [j.id]


async def test_release_gives_back_without_using_an_attempt(backend: Backend) -> None:
    j = job()
    await backend.enqueue_many([j])
    (c,) = await backend.claim(["q"], 1, LEASE)
    assert await backend.ack_many([Ack(c.id, c.token, AckKind.RELEASE)]) == [True]
    (c2,) = await backend.claim(["q"], 1, LEASE)
    assert c2.attempt == 1 and c2.token > c.token


async def test_dead_letters_list_retry_and_purge(backend: Backend) -> None:
    a, b = job(queue="q"), job(queue="r")
    await backend.enqueue_many([a, b])
    claims = await backend.claim(["q", "r"], 2, LEASE)
    await backend.ack_many([Ack(c.id, c.token, AckKind.DEAD, error_record(1, "Fail", "bad")) for c in claims])
    dead = await backend.list_jobs(DEAD)
    assert sorted(d.id for d in dead) == sorted([a.id, b.id])
    assert [d.id for d in await backend.list_jobs(DEAD, "r")] == [b.id]
    assert await backend.retry_dead(a.id) is True
    assert await backend.retry_dead(a.id) is False  # no longer dead
    (c,) = await backend.claim(["q"], 1, LEASE)
    assert (c.id, c.attempt) == (a.id, 1)
    assert await backend.purge(DEAD, "q") == 0
    assert await backend.purge(DEAD) == 1
    assert await backend.get(b.id) is None


async def test_expired_lease_comes_back_with_the_next_token(backend: Backend) -> None:
    j = job(max_attempts=3)
    await backend.enqueue_many([j])
    (c,) = await backend.claim(["q"], 1, 0.2)
    await asyncio.sleep(0.35)
    (c2,) = await backend.claim(["q"], 1, LEASE)
    assert (c2.id, c2.attempt, c2.token) == (j.id, 2, c.token + 1)
    # The first worker wakes up late: its ack is stale and changes nothing.
    assert await backend.ack_many([Ack(c.id, c.token, AckKind.SUCCEED, b"late")]) == [False]
    assert await backend.ack_many([Ack(c2.id, c2.token, AckKind.SUCCEED, b"ok")]) == [True]
    stored = await backend.get(j.id)
    assert stored is not None and stored.result == b"ok"
    assert [decode_error(e).type for e in stored.errors] == ["LeaseExpiredError"]


async def test_expired_lease_on_the_last_attempt_goes_dead(backend: Backend) -> None:
    j = job(max_attempts=1)
    await backend.enqueue_many([j])
    await backend.claim(["q"], 1, 0.2)
    await asyncio.sleep(0.35)
    assert await backend.recover() == 1
    stored = await backend.get(j.id)
    assert stored is not None and stored.state == DEAD
    assert decode_error(stored.errors[-1]).type == "LeaseExpiredError"


async def test_renew_extends_only_current_leases(backend: Backend) -> None:
    j = job()
    await backend.enqueue_many([j])
    (c,) = await backend.claim(["q"], 1, 0.3)
    await asyncio.sleep(0.15)
    assert await backend.renew([(c.id, c.token, 5.0), (c.id, c.token + 7, 5.0), ("nope", 1, 5.0)]) == [True, False, False]
    await asyncio.sleep(0.3)
    assert await backend.recover() == 0
    assert await backend.claim(["q"], 1, LEASE) == []
    assert await backend.ack_many([Ack(c.id, c.token, AckKind.SUCCEED)]) == [True]


async def test_cancel_queued_active_and_finished(backend: Backend) -> None:
    queued, active, delayed = job(), job(), job(delay=60)
    await backend.enqueue_many([active])
    (c,) = await backend.claim(["q"], 1, LEASE)
    await backend.enqueue_many([queued, delayed])
    assert await backend.cancel(queued.id) is True
    assert await backend.cancel(delayed.id) is True
    assert await backend.cancel(active.id) is True
    assert await backend.cancel(active.id) is False
    assert await backend.cancel("no-such-job") is False
    for j in (queued, active, delayed):
        stored = await backend.get(j.id)
        assert stored is not None and stored.state == CANCELLED
    assert await backend.claim(["q"], 10, LEASE) == []
    assert await backend.ack_many([Ack(c.id, c.token, AckKind.SUCCEED)]) == [False]
    assert await backend.renew([(c.id, c.token, 5.0)]) == [False]


async def test_stats_count_per_queue_and_state(backend: Backend) -> None:
    await backend.enqueue_many([job("a"), job("a"), job("a", delay=60), job("b")])
    (c,) = await backend.claim(["a"], 1, LEASE)
    await backend.ack_many([Ack(c.id, c.token, AckKind.SUCCEED)])
    await backend.claim(["b"], 1, LEASE)
    stats = await backend.stats()
    assert {k: v for k, v in stats["a"].items() if v} == {"queued": 1, "scheduled": 1, "succeeded": 1}
    assert {k: v for k, v in stats["b"].items() if v} == {"active": 1}


async def test_cleanup_honours_result_ttl(make_backend: MakeBackend) -> None:
    backend = await make_backend(result_ttl=0.2, dead_ttl=60.0)
    ok, dead = job(), job()
    await backend.enqueue_many([ok, dead])
    a, b = await backend.claim(["q"], 2, LEASE)
    await backend.ack_many([Ack(a.id, a.token, AckKind.SUCCEED), Ack(b.id, b.token, AckKind.DEAD, error_record(1, "E", "x"))])
    await asyncio.sleep(0.3)
    await backend.cleanup()
    assert await backend.get(ok.id) is None
    assert await backend.get(dead.id) is not None


async def test_result_ttl_zero_deletes_at_ack(make_backend: MakeBackend) -> None:
    backend = await make_backend(result_ttl=0.0)
    j = job()
    await backend.enqueue_many([j])
    (c,) = await backend.claim(["q"], 1, LEASE)
    assert await backend.ack_many([Ack(c.id, c.token, AckKind.SUCCEED, b"r")]) == [True]
    assert await backend.get(j.id) is None


async def test_unique_key_returns_the_live_job(backend: Backend) -> None:
    first = job(unique_key="report:42")
    assert await backend.enqueue_many([first]) == [first.id]
    dup = job(unique_key="report:42")
    assert await backend.enqueue_many([dup]) == [first.id]
    assert await backend.get(dup.id) is None
    # Within one batch too.
    x, y = job(unique_key="k2"), job(unique_key="k2")
    assert await backend.enqueue_many([x, y]) == [x.id, x.id]
    (c,) = await backend.claim(["q"], 1, LEASE)
    await backend.ack_many([Ack(c.id, c.token, AckKind.SUCCEED)])
    again = job(unique_key="report:42")
    assert await backend.enqueue_many([again]) == [again.id]


async def test_wait_wakes_on_enqueue_and_times_out_otherwise(backend: Backend) -> None:
    started = time.monotonic()
    await backend.wait(["q"], 0.2)
    assert time.monotonic() - started >= 0.15

    async def enqueue_soon() -> None:
        await asyncio.sleep(0.05)
        await backend.enqueue_many([job()])

    producer = asyncio.ensure_future(enqueue_soon())
    started = time.monotonic()
    await backend.wait(["q"], 5.0)
    assert time.monotonic() - started < 2.0
    await producer
    assert len(await backend.claim(["q"], 1, LEASE)) == 1


async def test_wait_wakes_when_a_delayed_job_falls_due(backend: Backend) -> None:
    await backend.enqueue_many([job(delay=0.3)])
    started = time.monotonic()
    await backend.wait(["q"], 5.0)
    assert time.monotonic() - started < 2.0
    await asyncio.sleep(max(0.0, 0.35 - (time.monotonic() - started)))
    assert len(await backend.claim(["q"], 1, LEASE)) == 1


async def test_backend_clock_is_close_to_ours(backend: Backend) -> None:
    assert abs(await backend.now() - time.time()) < 2.0


async def test_get_unknown_job_is_none(backend: Backend) -> None:
    assert await backend.get("does-not-exist") is None


async def test_result_payload_roundtrips_through_value_codec(backend: Backend) -> None:
    from fastjobs._core import encode_value

    j = job()
    await backend.enqueue_many([j])
    (c,) = await backend.claim(["q"], 1, LEASE)
    await backend.ack_many([Ack(c.id, c.token, AckKind.SUCCEED, encode_value({"n": 1}))])
    stored = await backend.get(j.id)
    assert stored is not None and stored.result is not None
    assert decode_value(stored.result) == {"n": 1}


async def test_unique_keys_are_scoped_per_queue(backend: Backend) -> None:
    a, b = job(queue="q", unique_key="same"), job(queue="r", unique_key="same")
    assert await backend.enqueue_many([a]) == [a.id]
    assert await backend.enqueue_many([b]) == [b.id]


async def test_a_repeated_ack_in_one_batch_applies_once(backend: Backend) -> None:
    # An ack applies only to an active job with that token, so the second copy
    # of the same (id, token) in one batch is stale, and must not release the
    # lease of a job it did not finish: the rest of the claim still comes back.
    x, y = job(), job()
    await backend.enqueue_many([x, y])
    cx, cy = await backend.claim(["q"], 2, 0.4)
    assert (cx.id, cy.id) == (x.id, y.id)
    twice = [Ack(cx.id, cx.token, AckKind.SUCCEED, b"one"), Ack(cx.id, cx.token, AckKind.SUCCEED, b"two")]
    assert await backend.ack_many(twice) == [True, False]
    stored = await backend.get(x.id)
    assert stored is not None and stored.state == SUCCEEDED and stored.result == b"one"
    assert (await backend.stats())["q"]["succeeded"] == 1
    await asyncio.sleep(0.6)
    (again,) = await backend.claim(["q"], 10, LEASE)
    assert (again.id, again.attempt) == (y.id, 2)
    assert await backend.ack_many([Ack(again.id, again.token, AckKind.SUCCEED)]) == [True]


async def test_a_repeated_renewal_in_one_batch_applies_once(backend: Backend) -> None:
    # Renewed twice in one call, a job is still leased once and comes back
    # once, and the job it was claimed with comes back too.
    a, b = job(), job()
    await backend.enqueue_many([a, b])
    ca, cb = await backend.claim(["q"], 2, 0.4)
    assert await backend.renew([(ca.id, ca.token, 0.4), (ca.id, ca.token, 0.4)]) == [True, False]
    await asyncio.sleep(0.6)
    back = await backend.claim(["q"], 10, LEASE)
    assert sorted(c.id for c in back) == sorted([a.id, b.id])
    assert await backend.claim(["q"], 10, LEASE) == []
    assert await backend.ack_many([Ack(c.id, c.token, AckKind.SUCCEED) for c in back]) == [True, True]


async def test_a_claim_is_not_cut_short_by_cancelled_jobs_ahead(backend: Backend) -> None:
    jobs = [job() for _ in range(5)]
    await backend.enqueue_many(jobs)
    for j in jobs[:3]:
        assert await backend.cancel(j.id) is True
    assert await claim_ids(backend, ["q"], 2) == [jobs[3].id, jobs[4].id]


async def test_a_taken_job_id_is_refused_with_a_typed_error_and_nothing_is_stored(backend: Backend) -> None:
    import fastjobs

    first = job()
    await backend.enqueue_many([first])
    fresh = job()
    with pytest.raises(fastjobs.DuplicateJobError, match=f"job id '{first.id}' already exists"):
        await backend.enqueue_many([fresh, job()._replace(id=first.id)])
    assert await backend.get(fresh.id) is None  # all or nothing
    (claim,) = await backend.claim(["q"], 10, LEASE)
    assert await backend.ack_many([Ack(claim.id, claim.token, AckKind.SUCCEED)]) == [True]
    with pytest.raises(fastjobs.DuplicateJobError, match=f"job id '{first.id}' already exists"):
        await backend.enqueue_many([job()._replace(id=first.id)])  # finished, not yet cleaned up


# -- issue 6: pause / resume, progress, unique_ttl ---------------------------


async def test_paused_queue_is_skipped_by_claim_until_resumed(backend: Backend) -> None:
    a1, a2, b1, b2 = job(queue="a"), job(queue="a"), job(queue="b"), job(queue="b")
    await backend.enqueue_many([a1, b1, a2, b2])
    assert await backend.paused() == []
    await backend.pause("a")
    await backend.pause("a")  # idempotent
    assert await backend.paused() == ["a"]
    assert await claim_ids(backend, ["a", "b"]) == [b1.id, b2.id]
    a3 = job(queue="a")
    assert await backend.enqueue_many([a3]) == [a3.id]  # enqueues continue
    assert await claim_ids(backend, ["a", "b"]) == []
    stored = await backend.get(a1.id)
    assert stored is not None and stored.state == QUEUED
    await backend.resume("a")
    await backend.resume("a")  # resuming a queue that is not paused: no-op
    await backend.resume("never-paused")
    assert await backend.paused() == []
    assert await claim_ids(backend, ["a", "b"]) == [a1.id, a2.id, a3.id]


async def test_paused_lists_queues_sorted(backend: Backend) -> None:
    for queue in ("zeta", "alpha", "mid"):
        await backend.pause(queue)
    assert await backend.paused() == ["alpha", "mid", "zeta"]
    await backend.resume("mid")
    assert await backend.paused() == ["alpha", "zeta"]


async def test_pause_is_shared_by_backends_on_one_namespace(make_backend: MakeBackend, backend_kind: str) -> None:
    first = await make_backend()
    a, b = job(queue="a"), job(queue="b")
    await first.enqueue_many([a, b])
    await first.pause("a")
    if backend_kind == "memory":
        # memory:// keeps jobs and paused queues per backend object: nothing to share.
        assert await claim_ids(first, ["a", "b"]) == [b.id]
        return
    second = await make_backend()
    assert await second.paused() == ["a"]
    assert await claim_ids(second, ["a", "b"]) == [b.id]
    await second.resume("a")
    assert await first.paused() == []
    assert await claim_ids(first, ["a", "b"]) == [a.id]


async def test_set_progress_needs_the_current_token(backend: Backend) -> None:
    j = job()
    await backend.enqueue_many([j])
    stored = await backend.get(j.id)
    assert stored is not None and stored.progress is None
    assert await backend.set_progress(j.id, 1, b"early") is False  # not active yet
    (c,) = await backend.claim(["q"], 1, LEASE)
    assert await backend.set_progress(c.id, c.token, b"\x00half\xff") is True
    stored = await backend.get(j.id)
    assert stored is not None and stored.progress == b"\x00half\xff"
    # Released, then claimed again: the old token is stale.
    assert await backend.ack_many([Ack(c.id, c.token, AckKind.RELEASE)]) == [True]
    (c2,) = await backend.claim(["q"], 1, LEASE)
    assert c2.token > c.token
    assert await backend.set_progress(c.id, c.token, b"stale") is False
    stored = await backend.get(j.id)
    assert stored is not None and stored.progress == b"\x00half\xff"  # kept across attempts, unchanged
    assert await backend.set_progress(c2.id, c2.token, b"done") is True
    assert await backend.ack_many([Ack(c2.id, c2.token, AckKind.SUCCEED, b"r")]) == [True]
    stored = await backend.get(j.id)
    assert stored is not None and stored.state == SUCCEEDED and stored.progress == b"done"
    assert await backend.set_progress(c2.id, c2.token, b"after") is False  # finished
    assert await backend.set_progress("no-such-job", 1, b"x") is False


async def test_progress_is_kept_after_retry_death_and_cancel(backend: Backend) -> None:
    retried, killed, cancelled = job(), job(), job()
    await backend.enqueue_many([retried, killed, cancelled])
    claims = {c.id: c for c in await backend.claim(["q"], 3, LEASE)}
    for job_id, c in claims.items():
        assert await backend.set_progress(job_id, c.token, job_id.encode()) is True
    err = error_record(1, "ValueError", "boom")
    assert await backend.ack_many([
        Ack(retried.id, claims[retried.id].token, AckKind.RETRY, err, 0.0),
        Ack(killed.id, claims[killed.id].token, AckKind.DEAD, err),
    ]) == [True, True]
    assert await backend.cancel(cancelled.id) is True
    assert await backend.set_progress(cancelled.id, claims[cancelled.id].token, b"x") is False
    for j in (retried, killed, cancelled):
        stored = await backend.get(j.id)
        assert stored is not None and stored.progress == j.id.encode()


async def test_unique_ttl_holds_the_key_after_success(backend: Backend) -> None:
    first = job(unique_key="k", unique_ttl=0.5)
    assert await backend.enqueue_many([first]) == [first.id]
    (c,) = await backend.claim(["q"], 1, LEASE)
    assert await backend.ack_many([Ack(c.id, c.token, AckKind.SUCCEED, b"r")]) == [True]
    again = job(unique_key="k", unique_ttl=0.5)
    assert await backend.enqueue_many([again]) == [first.id]
    assert await backend.get(again.id) is None
    other_queue = job(queue="other", unique_key="k")
    assert await backend.enqueue_many([other_queue]) == [other_queue.id]  # scoped per queue
    await asyncio.sleep(0.7)
    later = job(unique_key="k", unique_ttl=0.5)
    assert await backend.enqueue_many([later]) == [later.id]


async def test_unique_ttl_is_released_at_once_by_dead_and_cancel(backend: Backend) -> None:
    dead = job(unique_key="d", unique_ttl=60.0, max_attempts=1)
    cancelled = job(unique_key="c", unique_ttl=60.0)
    await backend.enqueue_many([dead, cancelled])
    (c,) = await backend.claim(["q"], 1, LEASE)
    assert c.id == dead.id
    err = error_record(1, "ValueError", "boom")
    assert await backend.ack_many([Ack(c.id, c.token, AckKind.DEAD, err)]) == [True]
    assert await backend.cancel(cancelled.id) is True
    dead2, cancelled2 = job(unique_key="d", unique_ttl=60.0), job(unique_key="c", unique_ttl=60.0)
    assert await backend.enqueue_many([dead2, cancelled2]) == [dead2.id, cancelled2.id]


async def test_unique_ttl_zero_releases_at_success(backend: Backend) -> None:
    first = job(unique_key="k")
    await backend.enqueue_many([first])
    (c,) = await backend.claim(["q"], 1, LEASE)
    assert await backend.ack_many([Ack(c.id, c.token, AckKind.SUCCEED, b"r")]) == [True]
    again = job(unique_key="k")
    assert await backend.enqueue_many([again]) == [again.id]


async def test_listing_a_queue_s_ready_jobs_counts_due_delayed_ones_oldest_first(backend: Backend) -> None:
    """list_jobs(QUEUED, queue): what health checks and the dashboard read the oldest ready job from."""
    first = job("ready", delay=0.3)
    await backend.enqueue_many([first])
    await asyncio.sleep(0.01)
    later = [job("ready"), job("ready", delay=3600.0), job("other")]
    await backend.enqueue_many(later)
    assert [j.id for j in await backend.list_jobs(QUEUED, "ready", limit=5)] == [later[0].id]
    await asyncio.sleep(0.4)  # the first one is due now: it counts as queued, and it is the oldest
    listed = await backend.list_jobs(QUEUED, "ready", limit=5)
    assert [j.id for j in listed] == [first.id, later[0].id] and listed[0].state == QUEUED
    assert [j.id for j in await backend.list_jobs(QUEUED, "ready", limit=1)] == [first.id]
    assert [j.id for j in await backend.list_jobs(QUEUED, "ready", limit=5, offset=1)] == [later[0].id]
