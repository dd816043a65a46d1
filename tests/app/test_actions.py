"""Acting on jobs through the App: retry (with edits), cancel, delete by id, by many ids and by
filter (over more than one backend call's worth of jobs), purge and clear."""

from __future__ import annotations

from typing import Any

import pytest

import fastjobs
from fastjobs.backends import Ack, AckKind
from fastjobs.job import error_record
from fastjobs.backends.base import MAX_IDS
from tests.app.helpers import failing_task, finish_claimed, make_dead

MANY = 2500
"""More jobs than one backend call takes (MAX_IDS), and not a multiple of it."""


async def states(app: fastjobs.App, ids: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for job_id in ids:
        info = await app.get_job(job_id)
        state = "gone" if info is None else info.state
        counts[state] = counts.get(state, 0) + 1
    return counts


# -- one job --------------------------------------------------------------------------------


async def test_retry_puts_a_dead_job_back_with_fresh_attempts_and_keeps_its_errors(app: fastjobs.App) -> None:
    task = failing_task(app)
    (job_id,) = await make_dead(app, task, 1)
    assert await app.retry(job_id) is True
    info = await app.get_job(job_id)
    assert info is not None and info.state == "queued" and info.attempt == 0
    assert len(info.errors) == 1 and info.args == (0,)


async def test_retry_of_a_cancelled_job(app: fastjobs.App) -> None:
    task = failing_task(app)
    job = await task.enqueue(1)
    assert await app.cancel(job.id) is True
    assert await app.retry(job.id) is True
    assert (await app.get_job(job.id)).state == "queued"  # type: ignore[union-attr]


async def test_retry_is_false_while_a_live_job_holds_the_unique_key(app: fastjobs.App) -> None:
    task = failing_task(app)
    (dead,) = await make_dead(app, task, 1, unique_key="k")
    holder = await task.options(unique_key="k").enqueue(1)  # a dead job released its key
    assert holder.id != dead
    assert await app.retry(dead) is False
    assert (await app.get_job(dead)).state == "dead"  # type: ignore[union-attr]
    await app.delete(holder.id)
    assert await app.retry(dead) is True


async def test_retry_with_edits_replaces_args_kwargs_queue_priority_and_attempts(app: fastjobs.App) -> None:
    task = failing_task(app)
    (job_id,) = await make_dead(app, task, 1, tags=["t"], meta={"m": 1})
    assert await app.retry(job_id, args=["fixed"], kwargs={"to": "x@y.z"}, queue="ops-slow", priority=7,
                           max_attempts=9) is True
    info = await app.get_job(job_id)
    assert info is not None
    assert (info.state, info.queue, info.priority, info.max_attempts) == ("queued", "ops-slow", 7, 9)
    assert (info.args, info.kwargs, info.task) == (("fixed",), {"to": "x@y.z"}, "ops.fail")
    assert (info.tags, info.meta) == (("t",), {"m": 1})
    assert [i.id for i in await app.jobs(queue="ops-slow")] == [job_id]
    assert await app.jobs(queue="ops") == fastjobs.JobPage([], None)
    backend = await app.backend()
    (claim,) = await backend.claim(["ops-slow"], 1, 60.0)  # claimable in its new queue, same id
    assert claim.id == job_id


async def test_retry_with_only_some_edits_keeps_the_rest(app: fastjobs.App) -> None:
    task = failing_task(app)
    (job_id,) = await make_dead(app, task, 1)
    assert await app.retry(job_id, kwargs={"i": 5}) is True
    info = await app.get_job(job_id)
    assert info is not None and (info.args, info.kwargs, info.queue, info.max_attempts) == ((0,), {"i": 5}, "ops", 1)


@pytest.mark.parametrize("edit, error", [
    ({"priority": 10**9}, fastjobs.InvalidOptionError),
    ({"priority": "high"}, fastjobs.InvalidOptionError),
    ({"max_attempts": 0}, fastjobs.InvalidOptionError),
    ({"queue": "no spaces allowed"}, fastjobs.InvalidOptionError),
    ({"args": "abc"}, fastjobs.InvalidOptionError),
    ({"kwargs": {1: 2}}, fastjobs.InvalidOptionError),
    ({"kwargs": {"x": object()}}, fastjobs.UnencodableError),
    ({"args": ["x" * 2_000_000]}, fastjobs.PayloadTooLargeError),
])
async def test_bad_edits_are_refused_and_change_nothing(app: fastjobs.App, edit: dict[str, Any],
                                                        error: type[Exception]) -> None:
    task = failing_task(app)
    (job_id,) = await make_dead(app, task, 1)
    with pytest.raises(error):
        await app.retry(job_id, **edit)
    info = await app.get_job(job_id)
    assert info is not None and (info.state, info.args, info.queue) == ("dead", (0,), "ops")


async def test_retry_of_an_unknown_job_raises_job_not_found(app: fastjobs.App) -> None:
    with pytest.raises(fastjobs.JobNotFoundError, match="no-such-job") as caught:
        await app.retry("no-such-job")
    assert caught.value.job_id == "no-such-job" and isinstance(caught.value, fastjobs.FastjobsError)


async def test_retry_or_edit_of_a_live_job_raises_job_state_error_and_changes_nothing(app: fastjobs.App) -> None:
    task = failing_task(app)
    queued = await task.enqueue(1)
    with pytest.raises(fastjobs.JobStateError, match="it is queued; retry takes dead or cancelled") as caught:
        await app.retry(queued.id, args=[2])
    assert (caught.value.state, caught.value.allowed) == ("queued", ("dead", "cancelled"))
    info = await app.get_job(queued.id)
    assert info is not None and info.args == (1,)
    backend = await app.backend()
    await backend.claim(["ops"], 1, 60.0)
    with pytest.raises(fastjobs.JobStateError, match="active"):
        await app.retry(queued.id)


@pytest.mark.parametrize("job_id", ["", "has space", 42, None])
async def test_bad_job_ids_are_refused(app: fastjobs.App, job_id: Any) -> None:
    for action in (app.retry, app.delete, app.cancel):
        with pytest.raises(fastjobs.InvalidOptionError, match="job id"):
            await action(job_id)


async def test_delete_removes_a_finished_or_queued_job(app: fastjobs.App) -> None:
    task = failing_task(app)
    (dead,) = await make_dead(app, task, 1)
    queued = await task.enqueue(1)
    assert await app.delete(dead) is True
    assert await app.delete(queued.id) is True
    assert await app.get_job(dead) is None and await app.get_job(queued.id) is None
    with pytest.raises(fastjobs.JobNotFoundError):
        await app.delete(dead)


async def test_delete_of_an_active_job_raises_job_state_error(app: fastjobs.App) -> None:
    task = failing_task(app)
    job = await task.enqueue(1)
    await (await app.backend()).claim(["ops"], 1, 60.0)
    with pytest.raises(fastjobs.JobStateError, match="cancel it first"):
        await app.delete(job.id)
    assert (await app.get_job(job.id)).state == "active"  # type: ignore[union-attr]


async def test_delete_frees_the_unique_key(app: fastjobs.App) -> None:
    task = failing_task(app)
    first = await task.options(unique_key="k").enqueue(1)
    assert (await task.options(unique_key="k").enqueue(2)).id == first.id
    assert await app.delete(first.id)
    assert (await task.options(unique_key="k").enqueue(3)).id != first.id


async def test_cancel_of_an_unknown_or_finished_job_is_false(app: fastjobs.App) -> None:
    task = failing_task(app)
    (dead,) = await make_dead(app, task, 1)
    assert await app.cancel("no-such-job") is False
    assert await app.cancel(dead) is False


# -- many ids --------------------------------------------------------------------------------


async def test_retry_many_cancel_many_delete_many_over_several_backend_calls(app: fastjobs.App) -> None:
    task = failing_task(app)
    dead = await make_dead(app, task, MANY)
    assert MANY > 2 * MAX_IDS
    assert await app.retry_many(dead + ["no-such-job"] + dead[:10]) == MANY  # unknown and repeated ids count once
    assert await states(app, dead) == {"queued": MANY}
    assert await app.cancel_many(iter(dead)) == MANY
    assert await states(app, dead) == {"cancelled": MANY}
    assert await app.cancel_many(dead) == 0  # already finished
    assert await app.delete_many(dead) == MANY
    assert await states(app, dead) == {"gone": MANY}
    assert await app.retry_many([]) == 0


async def test_many_takes_a_list_of_ids_not_one_string(app: fastjobs.App) -> None:
    for action in (app.retry_many, app.cancel_many, app.delete_many):
        with pytest.raises(fastjobs.InvalidOptionError, match="list of job ids"):
            await action("abc")  # type: ignore[arg-type]


async def test_delete_many_skips_active_jobs(app: fastjobs.App) -> None:
    task = failing_task(app)
    ids = (await app.enqueue_many([task.call(i) for i in range(3)])).ids
    (claim,) = await (await app.backend()).claim(["ops"], 1, 60.0)
    assert await app.delete_many(ids) == 2
    assert await states(app, ids) == {"gone": 2, "active": 1}


# -- by filter -------------------------------------------------------------------------------


async def test_retry_matching_retries_every_dead_job_of_the_filter(app: fastjobs.App) -> None:
    task = failing_task(app)
    other = failing_task(app, name="ops.other")
    dead = await make_dead(app, task, MANY)
    spared = await make_dead(app, other, 5)
    assert await app.count_matching(state="dead") == MANY + 5
    assert await app.count_matching(state="dead", task="ops.fail") == MANY
    assert await app.retry_matching(task="ops.fail") == MANY
    assert await states(app, dead) == {"queued": MANY}
    assert await states(app, spared) == {"dead": 5}
    assert await app.count_matching(state="dead") == 5


async def test_cancel_matching_and_delete_matching_over_many_jobs(app: fastjobs.App) -> None:
    task = failing_task(app)
    tagged = (await app.enqueue_many([task.options(tags=["bulk"]).call(i) for i in range(MANY)])).ids
    untagged = (await app.enqueue_many([task.call(i) for i in range(3)])).ids
    assert await app.count_matching(tag="bulk") == MANY
    assert await app.cancel_matching(tag="bulk") == MANY
    assert await states(app, tagged) == {"cancelled": MANY}
    assert await states(app, untagged) == {"queued": 3}
    assert await app.retry_matching(state="cancelled", tag="bulk") == MANY
    assert await app.delete_matching(queue="ops", state=["queued"]) == MANY + 3
    assert await states(app, tagged + untagged) == {"gone": MANY + 3}


async def test_matching_actions_refuse_states_they_do_not_apply_to(app: fastjobs.App) -> None:
    with pytest.raises(fastjobs.InvalidOptionError, match="retry does not apply to queued"):
        await app.retry_matching(state="queued")
    with pytest.raises(fastjobs.InvalidOptionError, match="cancel does not apply to dead"):
        await app.cancel_matching(state="dead")
    with pytest.raises(fastjobs.InvalidOptionError, match="delete does not apply to active"):
        await app.delete_matching(state=["dead", "active"])
    with pytest.raises(fastjobs.InvalidOptionError, match="unknown state"):
        await app.retry_matching(state="zombie")
    with pytest.raises(fastjobs.InvalidOptionError, match="before"):
        await app.count_matching(since=10, until=5)


async def test_delete_matching_without_a_state_leaves_active_jobs(app: fastjobs.App) -> None:
    task = failing_task(app)
    ids = (await app.enqueue_many([task.call(i) for i in range(4)])).ids
    await (await app.backend()).claim(["ops"], 1, 60.0)
    assert await app.delete_matching(queue="ops") == 3
    assert await states(app, ids) == {"gone": 3, "active": 1}


# -- purge and clear -------------------------------------------------------------------------


async def test_purge_deletes_one_finished_state(app: fastjobs.App) -> None:
    task = failing_task(app)
    dead = await make_dead(app, task, MANY)
    await app.enqueue_many([task.call(i) for i in range(3)])
    succeeded = await finish_claimed(app, "ops", 3, AckKind.SUCCEED)
    assert await app.purge("dead", queue="elsewhere") == 0
    assert await app.purge("dead") == MANY
    assert await states(app, dead) == {"gone": MANY}
    assert await states(app, succeeded) == {"succeeded": 3}
    assert await app.purge_dead() == 0  # the older name, an alias


@pytest.mark.parametrize("state", ["queued", "active", "retry", "zombie", None, 5])
async def test_purge_takes_only_finished_states(app: fastjobs.App, state: Any) -> None:
    with pytest.raises(fastjobs.InvalidOptionError, match="finished state"):
        await app.purge(state)


async def test_clear_deletes_jobs_not_started_and_leaves_active_waiting_and_finished(app: fastjobs.App) -> None:
    task = failing_task(app)
    other = failing_task(app, name="ops.other", queue="other")
    (dead,) = await make_dead(app, task, 1)
    retrying = await task.enqueue(0)
    backend = await app.backend()
    (claim,) = await backend.claim(["ops"], 1, 60.0)
    assert await backend.ack_many([Ack(claim.id, claim.token, AckKind.RETRY, error_record(1, "E", "m"), 3600.0)])
    active = await task.enqueue(1)
    await backend.claim(["ops"], 1, 60.0)
    queued = (await app.enqueue_many([task.call(i) for i in range(MAX_IDS + 5)])).ids
    scheduled = await task.options(delay=3600).enqueue(2)
    waiting = await task.options(depends_on=[active]).enqueue(3)
    elsewhere = await other.enqueue(4)
    assert (await app.get_job(retrying.id)).state == "retry_pending"  # type: ignore[union-attr]
    assert await app.clear("ops") == MAX_IDS + 7
    assert await states(app, queued + [scheduled.id, retrying.id]) == {"gone": MAX_IDS + 7}
    assert await states(app, [dead, active.id, waiting.id, elsewhere.id]) == {
        "dead": 1, "active": 1, "waiting": 1, "queued": 1}
    with pytest.raises(fastjobs.InvalidOptionError, match="queue"):
        await app.clear("bad queue")
