"""Tags and meta per call (validated, stored, shown), and what JobInfo carries: batch, attempts' workers."""

from __future__ import annotations

import time
from typing import Any

import pytest

import fastjobs
from fastjobs.backends.base import MAX_TAGS, TAG_MAX
from fastjobs.job import AttemptError, decode_error, error_record, exception_record
from fastjobs._core import encode_value
from tests.app.helpers import WORKER, failing_task, make_dead


async def test_tags_and_meta_are_stored_and_shown_after_the_job_ends(app: fastjobs.App) -> None:
    task = failing_task(app)
    (job_id,) = await make_dead(app, task, 1, tags=["tenant:42", "import", "tenant:42"], meta={"source": "api", "n": [1, 2]})
    info = await app.get_job(job_id)
    assert info is not None and info.state == "dead"
    assert info.tags == ("tenant:42", "import")  # duplicates dropped, order kept
    assert info.meta == {"source": "api", "n": [1, 2]}
    assert info.task == "ops.fail" and info.batch_id is None


async def test_a_job_without_tags_or_meta_shows_empty_ones(app: fastjobs.App) -> None:
    task = failing_task(app)
    info = await (await task.enqueue(1)).info()
    assert info is not None and info.tags == () and info.meta == {}


async def test_batch_members_and_callbacks_name_their_batch_and_keep_user_meta(app: fastjobs.App) -> None:
    task = failing_task(app)
    tagged = task.options(tags=["t1"], meta={"source": "api"})
    batch = await app.batch([tagged.call(1), task.call(2)], then=task.call(3))
    first = await app.get_job(batch.job_ids[0])
    callback = await app.get_job(batch.callback_ids[0])
    assert first is not None and callback is not None
    assert first.batch_id == batch.id == callback.batch_id
    assert first.meta == {"source": "api"} and first.tags == ("t1",)  # fastjobs' own keys left out
    assert callback.meta == {}


async def test_chain_steps_keep_their_meta_without_fastjobs_keys(app: fastjobs.App) -> None:
    task = failing_task(app)
    steps = await app.chain(task.call(1), task.options(meta={"k": "v"}).call())
    info = await app.get_job(steps[1].id)
    assert info is not None and info.meta == {"k": "v"} and info.depends_on == (steps[0].id,)


@pytest.mark.parametrize("tags", [
    "import",  # a str, not a list of them
    ["ok", ""],
    ["   "],
    ["a\tb"],
    ["line\nbreak"],
    ["x" * (TAG_MAX + 1)],
    [f"t{i}" for i in range(MAX_TAGS + 1)],
    [42],
    None,
])
def test_bad_tags_are_refused(tags: Any) -> None:
    app = fastjobs.App("memory://")
    task = failing_task(app)
    with pytest.raises(fastjobs.InvalidOptionError, match="tag"):
        task.options(tags=tags)


def test_tags_at_the_limits_are_accepted() -> None:
    task = failing_task(fastjobs.App("memory://"))
    task.options(tags=["x" * TAG_MAX, "é ü", *[f"t{i}" for i in range(MAX_TAGS - 2)]])


@pytest.mark.parametrize("meta, match", [
    (["source", "api"], "dict"),
    ({1: "x"}, "keys must be str"),
    ({"fastjobs.batch": "x"}, "reserved"),
    ({"_fastjobs": "x"}, "reserved"),
    ({"_fastjobs_trace": "x"}, "reserved"),
    ({"when": object()}, "cannot be stored"),
    ({"nested": [{"at": object()}]}, "cannot be stored"),
])
def test_bad_meta_is_refused(meta: Any, match: str) -> None:
    task = failing_task(fastjobs.App("memory://"))
    with pytest.raises(fastjobs.InvalidOptionError, match=match):
        task.options(meta=meta)


async def test_meta_counts_in_max_payload(app: fastjobs.App) -> None:
    task = failing_task(app)
    with pytest.raises(fastjobs.PayloadTooLargeError):
        await task.options(meta={"blob": "x" * (app.max_payload + 1)}).enqueue(1)


async def test_attempt_errors_carry_the_worker_and_start(app: fastjobs.App) -> None:
    task = failing_task(app)
    before = time.time()
    (job_id,) = await make_dead(app, task, 1)
    info = await app.get_job(job_id)
    assert info is not None and len(info.errors) == 1
    error = info.errors[0]
    assert (error.attempt, error.type, error.worker) == (1, "ValueError", WORKER)
    assert error.started_at is not None and before - 1 <= error.started_at <= error.at


def test_error_records_without_worker_or_start_decode_with_none() -> None:
    old = encode_value({"attempt": 2, "type": "KeyError", "message": "x", "traceback": "", "at": 5.0})
    assert decode_error(old) == AttemptError(2, "KeyError", "x", "", 5.0, None, None)
    assert decode_error(error_record(1, "E", "m", at=1.0)) == AttemptError(1, "E", "m", "", 1.0)
    odd = encode_value({"attempt": 1, "type": "E", "message": "m", "worker": 7, "started_at": "soon"})
    assert (decode_error(odd).worker, decode_error(odd).started_at) == (None, None)


def test_error_records_that_are_not_maps_read_as_unreadable_not_raised() -> None:
    for data in (encode_value(None), encode_value([1, 2]), encode_value("text"), b"\xc1"):
        error = decode_error(data)
        assert error.type == "CorruptJobError" and "unreadable error record" in error.message


async def test_a_job_with_damaged_error_records_and_body_is_still_listed(app: fastjobs.App) -> None:
    """What a backend holds may be damaged (another writer, a bug): search and get_job show it."""
    from fastjobs.backends.base import Ack, AckKind, NewJob

    backend = await app.backend()
    job_id = fastjobs.new_job_id()
    await backend.enqueue_many([NewJob(job_id, "ops", 0, 0.0, 1, b"\x80", None, 0.0, (), 0, None, "ops.x", ())])
    (claim,) = await backend.claim(["ops"], 1, 30.0)
    assert await backend.ack_many([Ack(claim.id, claim.token, AckKind.DEAD, encode_value(None))]) == [True]
    info = await app.get_job(job_id)
    assert info is not None and info.state == "dead" and info.task.startswith("<unreadable")
    assert info.errors[0].type == "CorruptJobError"
    page = await app.jobs(state="dead", queue="ops")
    assert [j.id for j in page.jobs] == [job_id]


def test_exception_records_carry_the_worker_and_start() -> None:
    try:
        raise KeyError("k")
    except KeyError as exc:
        record = decode_error(exception_record(3, exc, worker="w:1:x", started_at=10.5))
    assert (record.attempt, record.type, record.worker, record.started_at) == (3, "KeyError", "w:1:x", 10.5)
    assert "KeyError" in record.traceback


async def test_a_worker_records_its_id_and_the_start_in_each_failed_attempt(app: fastjobs.App) -> None:
    @app.task(name="ops.always_fails", queue="ops", max_attempts=2, backoff=None)
    async def always_fails() -> None:
        raise ValueError("nope")

    job = await always_fails.options(tags=["w"], meta={"by": "test"}).enqueue()
    worker = app.worker(["ops"], burst=True)
    await worker.run()
    info = await app.get_job(job.id)
    assert info is not None and info.state == "dead" and (info.tags, info.meta) == (("w",), {"by": "test"})
    assert [(e.attempt, e.type, e.worker) for e in info.errors] == [(1, "ValueError", worker.id), (2, "ValueError", worker.id)]
    assert all(e.started_at is not None and e.started_at <= e.at for e in info.errors)
    assert "nope" in info.errors[-1].traceback
