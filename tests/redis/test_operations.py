"""Redis specifics of the operations layer: the search indexes and their seeks, what a page costs in
Redis commands whatever the store's size, deleting every key of a job, moving an edited retry to
another queue, the history keys' retention, the events' payload, and the damaged-key report.

The contract suite (tests/contract, and on a Cluster in test_cluster_contract) covers the behaviour;
these look inside.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis

from fastjobs._core import CANCELLED, DEAD, QUEUED, SUCCEEDED
from fastjobs.backends import Ack, AckKind, NewJob
from fastjobs.backends.base import BROKEN, HISTOGRAM_BOUNDS, HistoryRow, JobEdit, JobFilter, Outcome, Position
from fastjobs.backends.redis import RedisBackend
from fastjobs.job import new_job_id
from tests.redis.conftest import next_published
from tests.redis.servers import RedisServer

LEASE = 60.0


def job(queue: str = "q", task: str = "t", tags: tuple[str, ...] = (), unique_key: str | None = None,
        unique_ttl: float = 0.0) -> NewJob:
    jid = new_job_id()
    return NewJob(jid, queue, 0, 0.0, 3, jid.encode(), unique_key, unique_ttl, (), 0, None, task, tags)


async def page_all(backend: RedisBackend, where: JobFilter, limit: int) -> list[str]:
    ids: list[str] = []
    position: Position | None = None
    while True:
        jobs, position = await backend.search(where, limit, position)
        ids += [j.id for j in jobs]
        if position is None:
            return ids


async def commands(client: Any) -> int:
    """Commands the server ran so far (those run by scripts included)."""
    stats = await client.info("commandstats")
    return sum(int(v["calls"]) for v in stats.values())


async def test_a_tie_group_of_one_batch_pages_exactly_and_seeks_past_a_deleted_position(
    redis_url: str, open_backend: Any
) -> None:
    """3,000 jobs of one enqueue share one time: pages of 100 give each once, by id descending;
    a page whose last job was deleted meanwhile goes on from the right place (the binary search)."""
    backend: RedisBackend = await open_backend(redis_url)
    jobs = [job() for _ in range(3000)]
    await backend.enqueue_many(jobs)
    ids = await page_all(backend, JobFilter(queue="q"), 100)
    assert ids == sorted((j.id for j in jobs), reverse=True)
    first, position = await backend.search(JobFilter(queue="q"), 100)
    assert position is not None and position[1] == first[-1].id
    assert await backend.delete_jobs([first[-1].id]) == [True]
    second, _ = await backend.search(JobFilter(queue="q"), 100, position)
    assert [j.id for j in second] == ids[100:200]


async def test_a_page_costs_the_same_number_of_commands_at_1000_and_20000_jobs(
    server: RedisServer, open_backend: Any
) -> None:
    """Counted in Redis commands (no timing): the first page, a deep page, and a page of dead jobs,
    with 1,000 and with 20,000 jobs stored (batches of 1,000 sharing a time)."""
    backend: RedisBackend = await open_backend(server.url)
    client = aioredis.Redis.from_url(server.url)
    costs: dict[int, list[int]] = {}
    stored = 0
    try:
        for size in (1000, 20000):
            while stored < size:
                batch = [job() for _ in range(1000)]
                await backend.enqueue_many(batch)
                claims = await backend.claim(["q"], 500, LEASE)
                await backend.ack_many([Ack(c.id, c.token, AckKind.DEAD) for c in claims])
                stored += 1000
            middle: Position | None = None
            seen = 0
            while seen < size // 2:  # a position in the middle of the store
                jobs, middle = await backend.search(JobFilter(queue="q"), 250, middle)
                seen += len(jobs)
            costs[size] = []
            for where, after in ((JobFilter(queue="q"), None), (JobFilter(queue="q"), middle),
                                 (JobFilter(queue="q", states=(DEAD,)), None), (JobFilter(queue="q", states=(QUEUED,)), middle)):
                before = await commands(client)
                jobs, _ = await backend.search(where, 50, after)
                assert len(jobs) == 50, (size, where, after)
                costs[size].append(await commands(client) - before)
    finally:
        await client.aclose()
    # The binary search inside a group of equal times may take a few more steps; nothing grows with N.
    for small, large in zip(costs[1000], costs[20000]):
        assert large <= small + 12, costs


async def test_delete_removes_every_key_of_the_job_and_frees_its_uniqueness_window(
    redis_url: str, open_backend: Any
) -> None:
    backend: RedisBackend = await open_backend(redis_url, result_ttl=3600)
    j = job(unique_key="k", unique_ttl=3600, tags=("a", "b"))
    await backend.enqueue_many([j])
    (c,) = await backend.claim(["q"], 1, LEASE)
    await backend.set_progress(c.id, c.token, b"half")
    assert await backend.ack_many([Ack(c.id, c.token, AckKind.SUCCEED, b"result")]) == [True]
    again = job(unique_key="k")
    assert await backend.enqueue_many([again]) == [j.id]  # the window holds the key
    client = await backend._redis()
    assert await client.keys(f"{backend.prefix}:*{j.id}*")
    assert await backend.delete_jobs([j.id]) == [True]
    assert await client.keys(f"{backend.prefix}:*{j.id}*") == []
    k = backend._queue("q")
    for index in (k.finished[SUCCEEDED], k.live):
        assert await client.zscore(index, j.id) is None
    assert await backend.enqueue_many([again]) == [again.id]  # the key is free


async def test_task_and_tags_travel_in_a_small_key_and_come_back_from_get(redis_url: str, open_backend: Any) -> None:
    backend: RedisBackend = await open_backend(redis_url)
    tagged, plain = job(task="mail.send", tags=("tenant:42", "import")), job(task="")
    await backend.enqueue_many([tagged, plain])
    client = await backend._redis()
    assert await client.get(backend._queue("q").base + b"t:" + tagged.id.encode()) == b"mail.send\ttenant:42\timport"
    assert await client.exists(backend._queue("q").base + b"t:" + plain.id.encode()) == 0  # nothing to store
    got = await backend.get(tagged.id)
    assert got is not None and (got.task, got.tags) == ("mail.send", ("tenant:42", "import"))
    found, _ = await backend.search(JobFilter(tag="import"), 10)
    assert [j.id for j in found] == [tagged.id]


async def test_an_edited_retry_into_another_queue_keeps_the_id_and_leaves_nothing_behind(
    redis_url: str, open_backend: Any
) -> None:
    backend: RedisBackend = await open_backend(redis_url)
    j = job(task="t", tags=("x",))
    await backend.enqueue_many([j])
    (c,) = await backend.claim(["q"], 1, LEASE)
    await backend.ack_many([Ack(c.id, c.token, AckKind.DEAD, b"boom")])
    edit = JobEdit(b"new body", "other", 5, 7)
    assert await backend.retry_jobs([j.id], edit) == [True]
    client = await backend._redis()
    assert await client.keys(f"{backend.prefix}:{{q}}:*{j.id}*") == []
    got = await backend.get(j.id)
    assert got is not None
    assert (got.queue, got.state, got.priority, got.max_attempts, got.attempt) == ("other", QUEUED, 5, 7, 0)
    assert (got.body, got.errors, got.task, got.tags) == (b"new body", [b"boom"], "t", ("x",))
    assert "other" in await backend._queues()
    (c2,) = await backend.claim(["other"], 1, LEASE)
    assert (c2.id, c2.body) == (j.id, b"new body")
    # Not dead or cancelled any more: a second move is refused and changes nothing.
    assert await backend.retry_jobs([j.id], JobEdit(b"x", "q", 0, 1)) == [False]
    assert await client.keys(f"{backend.prefix}:{{q}}:*{j.id}*") == []


async def test_history_points_are_per_minute_and_hour_and_old_ones_are_dropped_as_new_ones_begin(
    redis_url: str, open_backend: Any
) -> None:
    backend: RedisBackend = await open_backend(redis_url)
    buckets = tuple([0] * 3 + [2] + [0] * (len(HISTOGRAM_BOUNDS) - 3))
    row = HistoryRow("q", "t", int(Outcome.SUCCEEDED), 2, 0.02, buckets)
    await backend.ack_many([], history=[row, row])
    client = await backend._redis()
    keys = backend._history
    now = await backend.now()
    minute = now - now % 60
    points = await backend.history(minute - 60, minute + 60)
    assert [(p.at, p.row) for p in points] == [(minute, row._replace(runs=4, runtime_sum=0.04, buckets=tuple(2 * b for b in buckets)))]
    hours = await backend.history(now - 7200, now + 1, step=3600)
    assert len(hours) == 1 and hours[0].row.runs == 4
    # An old minute (stored by hand) goes when a new minute begins.
    old = str(int(minute) - 10 * 86400).encode()
    await client.zadd(keys.minutes, {old: int(old)})
    await client.hset(keys.minutes + b":" + old, "q\tt\t0\tn", 1)
    await client.zrem(keys.minutes, str(int(minute)))
    await backend.ack_many([], history=[row])
    assert await client.zscore(keys.minutes, old) is None
    assert await client.exists(keys.minutes + b":" + old) == 0


async def test_events_are_one_flat_publish_per_queue_and_call(redis_url: str, open_backend: Any) -> None:
    backend: RedisBackend = await open_backend(redis_url)
    client = aioredis.Redis.from_url(redis_url)
    pubsub = client.pubsub()
    try:
        await pubsub.subscribe(f"{backend.prefix}:events:q")
        await pubsub.get_message(timeout=1.0)  # the subscribe confirmation
        jobs = [job(task="t1"), job(task="t2")]
        await backend.enqueue_many(jobs)
        queue, at, *flat = await next_published(pubsub)
        assert queue == "q" and isinstance(at, float)
        assert flat == ["enqueued", jobs[0].id, "t1", "enqueued", jobs[1].id, "t2"]
    finally:
        await pubsub.aclose()
        await client.aclose()


async def test_no_event_work_without_a_listener(server: RedisServer, open_backend: Any) -> None:
    """Nobody subscribed: the scripts ask PUBSUB once per queue and publish nothing."""
    backend: RedisBackend = await open_backend(server.url)
    client = aioredis.Redis.from_url(server.url)
    try:
        await backend.enqueue_many([job() for _ in range(10)])
        stats = await client.info("commandstats")
        assert "cmdstat_publish" not in stats
        assert any(name.startswith("cmdstat_pubsub") for name in stats)
    finally:
        await client.aclose()


async def test_a_damaged_live_index_is_reported_by_stats(redis_url: str, open_backend: Any) -> None:
    backend: RedisBackend = await open_backend(redis_url)
    good = job(queue="good")
    await backend.enqueue_many([job(queue="bad"), good])
    client = await backend._redis()
    live = backend._queue("bad").live
    await client.delete(live)
    await client.set(live, b"oops")
    stats = await backend.stats()
    assert "live is a string, not a zset" in str(stats["bad"][BROKEN])
    assert stats["good"]["queued"] == 1
    assert good.id in [c.id for c in await backend.claim(["bad", "good"], 10, LEASE)]


async def test_cancel_and_retry_by_ids_are_one_script_call_for_several_queues(
    server: RedisServer, open_backend: Any
) -> None:
    backend: RedisBackend = await open_backend(server.url)
    jobs = [job(queue=f"q{i % 3}") for i in range(9)]
    await backend.enqueue_many(jobs)
    client = await backend._redis()

    async def script_calls() -> int:  # FCALL (Redis 7: the function library) or EVALSHA (6.2)
        stats = await client.info("commandstats")
        return sum(stats.get(f"cmdstat_{c}", {}).get("calls", 0) for c in ("evalsha", "fcall"))

    before = await script_calls()
    assert await backend.cancel_jobs([j.id for j in jobs]) == [True] * 9
    assert await script_calls() - before == 1
    assert await backend.retry_jobs([j.id for j in jobs]) == [True] * 9
    assert {(await backend.get(j.id)).state for j in jobs} == {QUEUED}  # type: ignore[union-attr]
    assert await backend.cancel_jobs([j.id for j in jobs[:3]]) == [True] * 3
    found = await page_all(backend, JobFilter(states=(CANCELLED,)), 2)
    assert sorted(found) == sorted(j.id for j in jobs[:3])


async def test_search_over_queues_merges_pages_exactly(redis_url: str, open_backend: Any) -> None:
    backend: RedisBackend = await open_backend(redis_url)
    jobs: list[NewJob] = []
    for batch in range(5):
        part = [job(queue=f"q{(batch + i) % 4}", task="a" if i % 3 else "b") for i in range(40)]
        await backend.enqueue_many(part)
        jobs += part
        await asyncio.sleep(0.002)
    by_time = [(await backend.get(j.id)) for j in jobs]
    expected = [j.id for j in sorted(by_time, key=lambda s: (round(s.enqueued_at * 1e6), s.id), reverse=True)]  # type: ignore[union-attr]
    assert await page_all(backend, JobFilter(), 7) == expected
    only_b = [i for i in expected if next(j for j in jobs if j.id == i).task == "b"]
    assert await page_all(backend, JobFilter(task="b"), 5) == only_b


async def test_cleanup_moves_succeeded_jobs_listed_the_old_way_into_the_search_index(
    redis_url: str, open_backend: Any
) -> None:
    """A store written before issue 13 listed succeeded jobs in a LIST: cleanup adopts them."""
    backend: RedisBackend = await open_backend(redis_url)
    j = job()
    await backend.enqueue_many([j])
    (c,) = await backend.claim(["q"], 1, LEASE)
    await backend.ack_many([Ack(c.id, c.token, AckKind.SUCCEED)])
    client = await backend._redis()
    k = backend._queue("q")
    finished = await client.zscore(k.finished[SUCCEEDED], j.id)
    await client.zrem(k.finished[SUCCEEDED], j.id)
    await client.rpush(k.base + b"succeeded", f"{finished:.6f}|r|{j.id}", f"{finished:.6f}||gone-job")
    assert await backend.search(JobFilter(states=(SUCCEEDED,)), 10) == ([], None)
    assert await backend.cleanup() == 0
    assert await client.exists(k.base + b"succeeded") == 0
    found, _ = await backend.search(JobFilter(states=(SUCCEEDED,)), 10)
    assert [f.id for f in found] == [j.id]


async def test_the_oldest_ready_jobs_come_from_the_live_index_or_else_the_ready_structures(
    redis_url: str, open_backend: Any, monkeypatch: Any
) -> None:
    """list_jobs(QUEUED, queue) from its start reads the queue's live index from its low end
    (oldest-1.lua); when its budget runs out on jobs that are not ready (running ones), it
    reads the ready structures instead: the same answer either way."""
    from fastjobs.backends.redis import backend as module

    backend: RedisBackend = await open_backend(redis_url)
    first = [job() for _ in range(3)]
    await backend.enqueue_many(first)
    await asyncio.sleep(0.01)
    later = [job() for _ in range(3)]
    await backend.enqueue_many(later)
    claimed = {c.id for c in await backend.claim(["q"], 3, 30.0)}
    assert claimed == {j.id for j in first}
    expected = [j.id for j in sorted(later, key=lambda j: j.id)]
    for budget in (10_000, 2):  # 2: the three running jobs come first in the index
        monkeypatch.setattr(module, "OLDEST_BUDGET", budget)
        assert [j.id for j in await backend.list_jobs(QUEUED, "q", limit=2)] == expected[:2]
        assert {j.id for j in await backend.list_jobs(QUEUED, "q", limit=10)} == {j.id for j in later}
