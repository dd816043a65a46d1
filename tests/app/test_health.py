"""app.check(): the backend answers, and a queue's oldest ready job waited less than max_age."""

from __future__ import annotations

from typing import Any

import pytest

import fastjobs
from tests.app.helpers import failing_task


async def test_a_backend_that_answers_is_healthy(app: fastjobs.App) -> None:
    health = await app.check()
    assert health == fastjobs.Health(True, "the backend answers", None)


async def test_an_empty_queue_is_healthy_with_no_age(app: fastjobs.App) -> None:
    health = await app.check(queue="ops", max_age=1.0)
    assert health.ok and health.oldest_age is None and "no job of queue 'ops'" in health.reason


async def test_a_queue_whose_oldest_ready_job_waited_too_long_is_unhealthy(app: fastjobs.App) -> None:
    task = failing_task(app)
    await task.enqueue(1)
    await task.enqueue(2)
    fine = await app.check(queue="ops", max_age=3600)
    assert fine.ok and fine.oldest_age is not None and 0 <= fine.oldest_age < 3600
    stale = await app.check(queue="ops", max_age=1e-9)
    assert not stale.ok and stale.oldest_age is not None and stale.oldest_age >= fine.oldest_age
    assert "not less than max_age" in stale.reason
    await app.pause("ops")
    assert "paused" in (await app.check(queue="ops", max_age=1e-9)).reason
    # without max_age: the age is reported, health is the backend's
    assert (await app.check(queue="ops")).ok


async def test_jobs_not_ready_yet_do_not_count(app: fastjobs.App) -> None:
    task = failing_task(app)
    await task.options(delay=3600).enqueue(1)
    health = await app.check(queue="ops", max_age=1e-9)
    assert health.ok and health.oldest_age is None


@pytest.mark.parametrize("args, match", [
    ({"max_age": 10}, "max_age needs a queue"),
    ({"queue": "ops", "max_age": -1}, "max_age"),
    ({"queue": "ops", "max_age": 0}, "max_age"),
    ({"queue": "bad queue"}, "queue"),
])
async def test_bad_arguments_raise(app: fastjobs.App, args: dict[str, Any], match: str) -> None:
    with pytest.raises(fastjobs.InvalidOptionError, match=match):
        await app.check(**args)


@pytest.mark.parametrize("url", ["redis://127.0.0.1:1/0", "postgresql://postgres@127.0.0.1:1/test"])
async def test_a_backend_that_cannot_be_reached_is_unhealthy(url: str) -> None:
    app = fastjobs.App(url, connect_timeout=0.2)
    try:
        health = await app.check()
    finally:
        await app.close()
    assert not health.ok and health.oldest_age is None
    assert "BackendUnavailableError" in health.reason
