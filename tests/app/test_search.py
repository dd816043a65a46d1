"""app.jobs(): filters, keyset pages with opaque cursors, and typed errors for bad input."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import pytest

import fastjobs
from fastjobs.backends import AckKind
from fastjobs.search import FILL_CALLS, MAX_LIMIT, decode_cursor, encode_cursor, job_filter
from tests.app.helpers import failing_task, make_dead


async def page_all(app: fastjobs.App, limit: int, **filters: Any) -> list[list[str]]:
    """Every page of a search, as lists of ids, following cursors to the end."""
    pages: list[list[str]] = []
    cursor = None
    for _ in range(1000):
        page = await app.jobs(limit=limit, cursor=cursor, **filters)
        assert len(page) <= limit and list(page) == page.jobs
        pages.append([info.id for info in page])
        cursor = page.cursor
        if cursor is None:
            return pages
    raise AssertionError("no last page")


async def test_paging_a_search_fully_meets_every_job_once_newest_first(app: fastjobs.App) -> None:
    task = failing_task(app)
    ids = (await app.enqueue_many([task.call(i) for i in range(130)])).ids
    pages = await page_all(app, 50, queue="ops")
    seen = [job_id for page in pages for job_id in page]
    assert sorted(seen) == sorted(ids) and len(seen) == len(set(seen))
    assert [len(p) for p in pages[:3]] == [50, 50, 30]
    assert all(page == [] for page in pages[3:])  # at most an empty last page
    infos = [info for page in [await app.jobs(queue="ops", limit=MAX_LIMIT)] for info in page]
    keys = [(round(i.enqueued_at * 1e6), i.id) for i in infos]
    assert keys == sorted(keys, reverse=True)


async def test_filters_by_state_task_tag_queue_and_time(app: fastjobs.App) -> None:
    task = failing_task(app)
    other = failing_task(app, name="ops.other", queue="other")
    dead = await make_dead(app, task, 3, tags=["tenant:1"])
    queued = (await app.enqueue_many([task.options(tags=["tenant:2"]).call(i) for i in range(4)])).ids
    elsewhere = (await app.enqueue_many([other.call(i) for i in range(2)])).ids
    ids = lambda page: sorted(info.id for info in page)  # noqa: E731
    assert ids(await app.jobs(state="dead")) == sorted(dead)
    assert ids(await app.jobs(state=["queued"], queue="ops")) == sorted(queued)
    assert ids(await app.jobs(state=("queued", "dead"), task="ops.fail")) == sorted(dead + queued)
    assert ids(await app.jobs(tag="tenant:2")) == sorted(queued)
    assert ids(await app.jobs(queue="other")) == sorted(elsewhere)
    assert ids(await app.jobs(task="ops.other", state="dead")) == []
    assert len(await app.jobs()) == 9
    now = await (await app.backend()).now()
    assert ids(await app.jobs(since=now + 60)) == []
    assert len(await app.jobs(until=dt.datetime.fromtimestamp(now + 60, dt.timezone.utc))) == 9
    assert ids(await app.jobs(state="dead", since=now - 3600, until=now + 60)) == sorted(dead)


async def test_retry_pending_is_also_called_retry(app: fastjobs.App) -> None:
    task = app.task(name="ops.flaky", queue="ops", max_attempts=5)(lambda: None)
    (job_id,) = (await app.enqueue_many([task.call()])).ids
    backend = await app.backend()
    (claim,) = await backend.claim(["ops"], 1, 60.0)
    from fastjobs.backends import Ack
    from fastjobs.job import error_record
    assert await backend.ack_many([Ack(claim.id, claim.token, AckKind.RETRY, error_record(1, "E", "m"), 3600.0)])
    assert [i.id for i in await app.jobs(state="retry")] == [job_id]
    assert [i.id for i in await app.jobs(state="retry_pending")] == [job_id]


async def test_a_page_with_a_cursor_continues_where_the_last_one_ended(app: fastjobs.App) -> None:
    task = failing_task(app)
    await app.enqueue_many([task.call(i) for i in range(5)])
    first = await app.jobs(limit=2)
    assert first.cursor is not None
    second = await app.jobs(limit=2, cursor=first.cursor)
    assert not {i.id for i in first} & {i.id for i in second}
    # the same cursor read twice gives the same page
    again = await app.jobs(limit=2, cursor=first.cursor)
    assert [i.id for i in again] == [i.id for i in second]


async def test_an_empty_search_has_no_cursor(app: fastjobs.App) -> None:
    page = await app.jobs(state="dead")
    assert page.jobs == [] and page.cursor is None and list(page) == []


@pytest.mark.parametrize("filters, match", [
    ({"state": "finished"}, "unknown state"),
    ({"state": ["dead", "zombie"]}, "unknown state"),
    ({"state": 5}, "state"),
    ({"limit": 0}, "limit"),
    ({"limit": MAX_LIMIT + 1}, "limit"),
    ({"limit": True}, "limit"),
    ({"limit": 2.5}, "limit"),
    ({"since": 200.0, "until": 100.0}, "before"),
    ({"since": 100, "until": 100}, "before"),
    ({"since": dt.datetime(2026, 1, 1)}, "aware"),
    ({"until": "yesterday"}, "until"),
    ({"since": float("nan")}, "since"),
    ({"tag": ""}, "tag"),
    ({"tag": "x" * 101}, "tag"),
    ({"tag": "a\x00b"}, "tag"),
    ({"queue": "bad queue"}, "queue"),
    ({"task": "has space"}, "task"),
])
async def test_bad_filters_raise_invalid_option_errors(app: fastjobs.App, filters: dict[str, Any], match: str) -> None:
    with pytest.raises(fastjobs.InvalidOptionError, match=match):
        await app.jobs(**filters)


@pytest.mark.parametrize("cursor", [
    "", "not-a-cursor", "!!!", 42, "x" * 500,
    base64.urlsafe_b64encode(b"1|notanint|abc|id").decode(),
    base64.urlsafe_b64encode(b"9|1|abc|id").decode(),
    base64.urlsafe_b64encode(b"\xff\xfe").decode(),
])
async def test_bad_cursors_raise_invalid_cursor_errors(app: fastjobs.App, cursor: Any) -> None:
    with pytest.raises(fastjobs.InvalidCursorError) as caught:
        await app.jobs(state="dead", cursor=cursor)
    assert isinstance(caught.value, fastjobs.InvalidOptionError) and isinstance(caught.value, ValueError)


async def test_a_cursor_of_another_search_is_refused(app: fastjobs.App) -> None:
    task = failing_task(app)
    await app.enqueue_many([task.call(i) for i in range(3)])
    page = await app.jobs(queue="ops", limit=1)
    assert page.cursor is not None
    with pytest.raises(fastjobs.InvalidCursorError, match="other filters"):
        await app.jobs(queue="other", limit=1, cursor=page.cursor)
    assert len(await app.jobs(queue="ops", limit=5, cursor=page.cursor)) == 2  # another limit is fine


def test_cursors_round_trip_and_are_opaque_url_safe_strings() -> None:
    where = job_filter(state="dead", queue="emails", tag="a|b")
    for position in [(0, "a"), (1_700_000_000_123_456, "id|with|bars"), (-5, "x" * 200)]:
        cursor = encode_cursor(position, where)
        assert cursor.replace("-", "").replace("_", "").isalnum()
        assert decode_cursor(cursor, where) == position


async def test_a_sparse_filter_fills_its_page_with_bounded_calls_and_keeps_a_cursor(app: fastjobs.App) -> None:
    # One tagged job under 11,000 newer untagged ones: a backend that cannot seek on tags
    # examines SEARCH_SCAN candidates per call, so a page may come back empty, with a cursor.
    task = failing_task(app)
    tagged = (await task.options(tags=["needle"]).enqueue(0)).id
    for start in range(0, 11_000, 1000):
        await app.enqueue_many([task.call(i) for i in range(start, start + 1000)])
    backend = await app.backend()
    search, calls = backend.search, []

    async def counted(*args: Any, **kwargs: Any) -> Any:  # the real search, counted
        calls.append(1)
        return await search(*args, **kwargs)

    setattr(backend, "search", counted)
    try:
        found, cursor = [], None
        for _ in range(11_000):
            calls.clear()
            page = await app.jobs(tag="needle", limit=10, cursor=cursor)
            assert len(calls) <= FILL_CALLS
            found += [info.id for info in page]
            cursor = page.cursor
            if cursor is None:
                break
    finally:
        delattr(backend, "search")
    assert found == [tagged]
