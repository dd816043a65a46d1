"""``Backend.search``: newest first by ``(at, id)``, keyset pages, every filter (see "Search" in base.py)."""

from __future__ import annotations

import asyncio

import pytest

from fastjobs._core import (
    ACTIVE,
    CANCELLED,
    DEAD,
    QUEUED,
    RETRY_PENDING,
    SCHEDULED,
    STATE_NAMES,
    SUCCEEDED,
    WAITING,
)
from fastjobs.backends import Ack, AckKind, Backend
from fastjobs.backends.base import SEARCH_SCAN, JobFilter
from tests.contract.ops_helpers import (
    FAR,
    LEASE,
    at_us,
    claim_all,
    finish,
    new,
    newest_first,
    search_all,
    stored,
)

ALL_STATES = (SCHEDULED, QUEUED, ACTIVE, SUCCEEDED, RETRY_PENDING, DEAD, CANCELLED, WAITING)


async def test_an_empty_store_gives_an_empty_last_page(backend: Backend) -> None:
    assert await backend.search(JobFilter(), 10) == ([], None)
    assert await backend.search(JobFilter(states=(DEAD,), queue="nowhere", task="x", tag="y"), 1) == ([], None)


async def test_live_jobs_come_newest_first_by_enqueue_time(backend: Backend) -> None:
    batches = []
    for _ in range(3):
        batch = [new() for _ in range(4)]
        await backend.enqueue_many(batch)
        batches.append(batch)
        await asyncio.sleep(0.01)  # distinct enqueue times (order is asserted from the stored times)
    ids = [j.id for batch in batches for j in batch]
    page, position = await backend.search(JobFilter(), 100)
    assert position is None
    assert [j.id for j in page] == newest_first(await stored(backend, ids))
    # The newest batch first: enqueue time decides before the id does.
    assert {j.id for j in page[:4]} == {j.id for j in batches[2]}
    assert {j.id for j in page[-4:]} == {j.id for j in batches[0]}


async def test_finished_jobs_come_newest_first_by_finish_time(backend: Backend) -> None:
    first, second, third = new(), new(), new()
    for j in (first, second, third):  # enqueued first, second, third ...
        await backend.enqueue_many([j])
        await asyncio.sleep(0.01)
    tokens = {c.id: c.token for c in await backend.claim(["q"], 10, LEASE)}
    for j in (third, second, first):  # ... finished in the other order
        assert await backend.ack_many([Ack(j.id, tokens[j.id], AckKind.SUCCEED, b"\xc0")]) == [True]
        await asyncio.sleep(0.01)
    late = new()
    await backend.enqueue_many([late])
    page, _ = await backend.search(JobFilter(), 10)
    assert [j.id for j in page] == [late.id, first.id, second.id, third.id]
    assert [at_us(j) for j in page] == sorted((at_us(j) for j in page), reverse=True)
    assert [j.id for j in page] == newest_first(await stored(backend, [late.id, first.id, second.id, third.id]))


async def test_a_page_carries_task_tags_and_the_stored_fields(backend: Backend) -> None:
    j = new(task="app.send_email", tags=("tenant:42", "import"), body=b"\x00body")
    await backend.enqueue_many([j])
    (found,), _ = await backend.search(JobFilter(), 10)
    assert (found.id, found.queue, found.state, found.body) == (j.id, "q", QUEUED, b"\x00body")
    assert (found.task, found.tags) == ("app.send_email", ("tenant:42", "import"))
    got = await backend.get(j.id)
    assert got is not None and (got.task, got.tags) == ("app.send_email", ("tenant:42", "import"))


@pytest.mark.parametrize("limit", [7, 100])
async def test_paging_gives_every_job_once_through_big_ties(backend: Backend, limit: int) -> None:
    # 2,500 jobs enqueued in one call share their enqueue time; 2,500 acked in one call
    # share their finish time: the id must order each tie, or pages skip and repeat.
    before = [new() for _ in range(5)]
    await backend.enqueue_many(before)
    done = [new(queue="done") for _ in range(2500)]
    await backend.enqueue_many(done)
    finished = await finish(backend, "done", 2500)
    tie = [new() for _ in range(2500)]
    await backend.enqueue_many(tie)
    after = [new() for _ in range(5)]
    await backend.enqueue_many(after)
    assert len({(await backend.get(j.id)).enqueued_at for j in tie[:50]}) == 1  # type: ignore[union-attr]
    everything = await search_all(backend, JobFilter(), limit)
    ids = [j.id for j in everything]
    assert len(ids) == len(set(ids)) == 5 + 2500 + 2500 + 5
    assert [at_us(j) for j in everything] == sorted((at_us(j) for j in everything), reverse=True)
    assert ids[:5] == newest_first(await stored(backend, [j.id for j in after]))
    assert set(ids[5:2505]) == {j.id for j in tie}
    # Within a tie, ids descending.
    tie_part = ids[5:2505]
    assert tie_part == sorted(tie_part, reverse=True)
    succeeded = await search_all(backend, JobFilter(states=(SUCCEEDED,)), limit)
    assert sorted(j.id for j in succeeded) == sorted(finished)
    assert [j.id for j in succeeded] == sorted(finished, reverse=True)
    assert len({at_us(j) for j in succeeded}) == 1
    queued = await search_all(backend, JobFilter(states=(QUEUED,), queue="q"), limit)
    assert len(queued) == len({j.id for j in queued}) == 2510


async def test_a_full_last_page_is_followed_by_nothing(backend: Backend) -> None:
    jobs = [new() for _ in range(6)]
    await backend.enqueue_many(jobs)
    page, position = await backend.search(JobFilter(), 3)
    assert len(page) == 3 and position is not None
    page2, position2 = await backend.search(JobFilter(), 3, position)
    assert len(page2) == 3
    assert {j.id for j in page + page2} == {j.id for j in jobs}
    if position2 is not None:  # a backend may not know yet that nothing follows
        assert await backend.search(JobFilter(), 3, position2) == ([], None)
    page3, position3 = await backend.search(JobFilter(), 10, position)
    assert [j.id for j in page3] == [j.id for j in page2] and position3 is None


async def one_of_each_state(backend: Backend) -> dict[int, str]:
    """A job in each of the 8 states: state -> job id (the waiting one's parent is scheduled too)."""
    queued, parent = new(), new(queue="w", delay=FAR)
    scheduled = new(delay=FAR)
    waiting = new(queue="w", depends_on=(parent.id,))  # on Redis, parents share their child's queue
    active, retried, succeeded, dead, cancelled = (new(queue=name) for name in ("a", "r", "s", "d", "c"))
    await backend.enqueue_many([queued, scheduled, parent, waiting, active, retried, succeeded, dead, cancelled])
    await claim_all(backend, "a", 1)
    await finish(backend, "r", 1, AckKind.RETRY, FAR)
    await finish(backend, "s", 1)
    await finish(backend, "d", 1, AckKind.DEAD)
    assert await backend.cancel_jobs([cancelled.id]) == [True]
    ids = {QUEUED: queued.id, SCHEDULED: scheduled.id, WAITING: waiting.id, ACTIVE: active.id,
           RETRY_PENDING: retried.id, SUCCEEDED: succeeded.id, DEAD: dead.id, CANCELLED: cancelled.id}
    for state, job_id in ids.items():
        got = await backend.get(job_id)
        assert got is not None and got.state == state, (STATE_NAMES[state], got)
    return ids


async def test_the_state_filter(backend: Backend) -> None:
    ids = await one_of_each_state(backend)
    parent = {j.id for j in await search_all(backend, JobFilter(queue="w", states=(SCHEDULED,)), 10)}
    assert len(parent) == 1
    for state in ALL_STATES:
        page, position = await backend.search(JobFilter(states=(state,)), 10)
        expected = {ids[state]} | (parent if state == SCHEDULED else set())
        assert {j.id for j in page} == expected, STATE_NAMES[state]
        assert all(j.state == state for j in page)
        assert position is None
    some = (DEAD, CANCELLED, SCHEDULED, WAITING)
    found = await search_all(backend, JobFilter(states=some), 10)
    assert {j.id for j in found} == {ids[s] for s in some} | parent
    everything = await search_all(backend, JobFilter(states=ALL_STATES), 3)
    assert {j.id for j in everything} == set(ids.values()) | parent
    assert [j.id for j in everything] == [j.id for j in await search_all(backend, JobFilter(), 3)]


async def test_a_due_delayed_job_is_found_as_queued(backend: Backend) -> None:
    soon = new(delay=0.05)
    await backend.enqueue_many([soon])
    await asyncio.sleep(0.2)
    found = await search_all(backend, JobFilter(states=(QUEUED,)), 10)
    assert [j.id for j in found] == [soon.id] and found[0].state == QUEUED
    assert await search_all(backend, JobFilter(states=(SCHEDULED,)), 10) == []


async def test_queue_task_and_tag_filters(backend: Backend) -> None:
    jobs = [
        new(queue="emails", task="send", tags=("tenant:1", "vip")),
        new(queue="emails", task="send", tags=("tenant:2",)),
        new(queue="emails", task="bounce", tags=("tenant:1",)),
        new(queue="pdf", task="send", tags=("tenant:1",)),
        new(queue="pdf", task="render"),
    ]
    await backend.enqueue_many(jobs)
    await finish(backend, "pdf", 1)  # the pdf "send" job: finished ones filter the same

    async def ids(where: JobFilter) -> set[str]:
        return {j.id for j in await search_all(backend, where, 2)}

    e1, e2, e3, p1, p2 = (j.id for j in jobs)
    assert await ids(JobFilter(queue="emails")) == {e1, e2, e3}
    assert await ids(JobFilter(queue="pdf")) == {p1, p2}
    assert await ids(JobFilter(queue="nowhere")) == set()
    assert await ids(JobFilter(task="send")) == {e1, e2, p1}
    assert await ids(JobFilter(task="send", queue="emails")) == {e1, e2}
    assert await ids(JobFilter(tag="tenant:1")) == {e1, e3, p1}
    assert await ids(JobFilter(tag="vip")) == {e1}
    assert await ids(JobFilter(tag="tenant")) == set()  # a tag matches whole, not by prefix
    assert await ids(JobFilter(tag="tenant:1", task="send", queue="pdf", states=(SUCCEEDED,))) == {p1}
    assert await ids(JobFilter(tag="tenant:1", states=(QUEUED,))) == {e1, e3}


async def test_since_is_inclusive_and_until_exclusive(backend: Backend) -> None:
    jobs = []
    for _ in range(3):
        j = new()
        await backend.enqueue_many([j])
        jobs.append(j)
        await asyncio.sleep(0.01)
    first, middle, last = await stored(backend, [j.id for j in jobs])
    assert first.enqueued_at < middle.enqueued_at < last.enqueued_at

    async def ids(since: float | None, until: float | None) -> list[str]:
        return [j.id for j in await search_all(backend, JobFilter(since=since, until=until), 2)]

    at = middle.enqueued_at
    assert await ids(at, None) == [last.id, middle.id]
    assert await ids(None, at) == [first.id]
    assert await ids(at, last.enqueued_at) == [middle.id]
    assert await ids(at, at) == []
    assert await ids(first.enqueued_at, last.enqueued_at + 1) == [last.id, middle.id, first.id]
    # For finished jobs the bounds apply to the finish time.
    done = await finish(backend, "q", 1)
    finished = await backend.get(done[0])
    assert finished is not None and finished.finished_at is not None
    assert [j.id for j in await search_all(backend, JobFilter(since=finished.finished_at), 5)] == done
    assert done[0] not in await ids(None, finished.finished_at)


async def test_since_until_bound_a_page_that_goes_on(backend: Backend) -> None:
    jobs = []
    for _ in range(4):
        batch = [new() for _ in range(3)]
        await backend.enqueue_many(batch)
        jobs.append(batch)
        await asyncio.sleep(0.01)
    middle = await stored(backend, [j.id for j in jobs[1] + jobs[2]])
    since, until = middle[0].enqueued_at, middle[-1].enqueued_at + 1e-3
    found = await search_all(backend, JobFilter(since=since, until=until), 2)
    assert [j.id for j in found] == newest_first(middle)


@pytest.mark.parametrize("field", ["task", "tag"])
async def test_a_filter_past_the_scan_bound_goes_on_with_short_pages(backend: Backend, field: str) -> None:
    def rare() -> dict[str, str] | dict[str, tuple[str, ...]]:
        return {"task": "rare"} if field == "task" else {"tags": ("rare",)}

    old = [new(**rare()) for _ in range(3)]  # type: ignore[arg-type]
    await backend.enqueue_many(old)
    await backend.enqueue_many([new(task="common", tags=("common",)) for _ in range(2 * SEARCH_SCAN + 10)])
    young = [new(**rare()) for _ in range(2)]  # type: ignore[arg-type]
    await backend.enqueue_many(young)
    where = JobFilter(task="rare") if field == "task" else JobFilter(tag="rare")
    found = await search_all(backend, where, 10)
    assert sorted(j.id for j in found) == sorted(j.id for j in old + young)
    assert [j.id for j in found[:2]] == newest_first(await stored(backend, [j.id for j in young]))
    # Each call's page holds at most limit jobs, matching ones only.
    assert all((j.task == "rare") if field == "task" else ("rare" in j.tags) for j in found)


async def test_positions_are_exact_microseconds_and_ids(backend: Backend) -> None:
    jobs = [new() for _ in range(3)]
    await backend.enqueue_many(jobs)
    page, position = await backend.search(JobFilter(), 2)
    assert position is not None
    at, job_id = position
    assert isinstance(at, int) and job_id == page[-1].id and at == at_us(page[-1])
    rest, end = await backend.search(JobFilter(), 2, (at, job_id))
    assert end is None and len(rest) == 1 and rest[0].id not in {j.id for j in page}


async def test_search_is_read_only(backend: Backend) -> None:
    soon = new(delay=0.05)
    await backend.enqueue_many([soon, new()])
    await asyncio.sleep(0.2)
    await search_all(backend, JobFilter(), 1)
    got = await backend.get(soon.id)
    assert got is not None and got.state == QUEUED and got.attempt == 0
    assert len(await backend.claim(["q"], 10, LEASE)) == 2


async def test_jobs_that_stay_put_are_seen_once_while_others_move(backend: Backend) -> None:
    # A job moving state between two pages may be seen twice or missed; one that stays never is.
    jobs = [new() for _ in range(60)]
    await backend.enqueue_many(jobs)
    seen: list[str] = []
    page, position = await backend.search(JobFilter(), 10)
    seen += [j.id for j in page]
    moved = set(await finish(backend, "q", 15))  # finished now: the newest by search time
    dead = set(await finish(backend, "q", 5, AckKind.DEAD))
    while position is not None:
        page, position = await backend.search(JobFilter(), 10, position)
        seen += [j.id for j in page]
    stayed = {j.id for j in jobs} - moved - dead
    assert all(seen.count(job_id) == 1 for job_id in stayed)
    assert stayed <= set(seen)


async def test_the_running_jobs_among_many_waiting_ones(backend: Backend) -> None:
    await backend.enqueue_many([new() for _ in range(SEARCH_SCAN + 200)])
    early = set(await claim_all(backend, "q", 5))
    await backend.enqueue_many([new() for _ in range(SEARCH_SCAN + 200)])
    running = await search_all(backend, JobFilter(states=(ACTIVE,), queue="q"), 3)
    assert {j.id for j in running} == early and len(running) == 5
    assert [j.id for j in running] == newest_first(running)
    assert {j.id for j in await search_all(backend, JobFilter(states=(ACTIVE,)), 100)} == early
