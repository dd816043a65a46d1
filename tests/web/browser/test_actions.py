"""The dashboard at work in a real browser, against real processes: a job enqueued by another
process appears in the jobs list without a reload (pushed over the WebSocket); a dead job retried
from its detail page (as it was, or edited) succeeds on the worker; a queue paused from the
Queues page is left alone by the running worker until it is resumed."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.web.browser.conftest import APP, ROOT, Stack, login, playwright_expect

if TYPE_CHECKING:
    from playwright.async_api import Page, WebSocket

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]
expect = playwright_expect()


class Frames:
    """The messages the page's events WebSocket received (hooked before the page opens it)."""

    def __init__(self, page: Page) -> None:
        self.events: list[dict[str, object]] = []
        page.on("websocket", self.opened)

    def opened(self, ws: WebSocket) -> None:
        if ws.url.endswith("/api/events"):
            ws.on("framereceived", self.received)

    def received(self, payload: str | bytes) -> None:
        message = json.loads(payload)
        self.events += message.get("events", [message])

    def heard(self, job_id: str) -> bool:
        return any(e.get("job_id") == job_id for e in self.events)


async def until(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Wait (polling) until ``check()`` is true."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)


async def test_a_job_enqueued_by_another_process_appears_without_reload(page: Page, stack: Stack) -> None:
    frames = Frames(page)
    await login(page)
    await page.goto("/#/jobs?queue=parked")
    await expect(page.locator("table.jobs")).to_contain_text("No jobs match these filters.")
    # The hub subscribes to the backend when the first socket opens: warm up until events flow,
    # so the job below is announced (not found by the page's slow 15 s refresh instead).
    for _ in range(100):
        warm = await stack.tasks.send_email.options(queue="warmup").enqueue("warm@example.com")
        try:
            await until(lambda warm=warm: frames.heard(warm.id), "the warm-up event", timeout=0.5)
            break
        except AssertionError:
            continue
    else:
        raise AssertionError("no event reached the page's WebSocket")
    await page.evaluate("window.__sameDocument = true")

    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "fastjobs", "enqueue", APP, "emails.send", "--args",
                         '["ada@example.com"]', "--queue", "parked", "--tag", "from-cli", "--json"],
        cwd=ROOT, env=stack.env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    job_id = json.loads(done.stdout)["id"]
    row = page.get_by_test_id(f"job-row-{job_id}")
    await expect(row).to_be_visible(timeout=10_000)  # under the 15 s fallback refresh: pushed
    await expect(row).to_contain_text("emails.send")
    await expect(row).to_contain_text("queued")
    await expect(row).to_contain_text("from-cli")
    assert frames.heard(job_id)
    assert await page.evaluate("window.__sameDocument") is True  # no reload, no navigation


async def test_retry_a_dead_job_from_its_detail_page(page: Page, stack: Stack) -> None:
    flag = os.path.join(tempfile.mkdtemp(prefix="fastjobs-browser-"), "input")
    job = await stack.tasks.build_report.options(queue="reports").enqueue(flag)
    await stack.wait_state(job.id, "dead")

    await login(page)
    await page.goto(f"/#/jobs/{job.id}")
    await expect(page.get_by_test_id("job-state")).to_have_text("dead")
    await expect(page.get_by_test_id("job-errors")).to_contain_text("FileNotFoundError")
    await expect(page.get_by_test_id("job-errors")).to_contain_text("report input missing")
    await expect(page.get_by_test_id("job-cancel")).to_be_disabled()

    Path(flag).touch()  # the next attempt finds its input
    await page.get_by_test_id("job-retry").click()
    await expect(page.get_by_test_id("notice")).to_have_text("Retried")
    # The worker process runs it; the page updates by itself.
    await expect(page.get_by_test_id("job-state")).to_have_text("succeeded")
    await expect(page.get_by_test_id("job-result")).to_have_text("report built")
    await expect(page.get_by_test_id("job-retry")).to_be_disabled()
    await expect(page.get_by_test_id("job-errors")).to_contain_text("Attempt 1")  # the failure is kept
    info = await stack.wait_state(job.id, "succeeded", timeout=5)
    assert info.result == "report built" and len(info.errors) == 1


async def test_edit_and_retry_a_dead_job(page: Page, stack: Stack) -> None:
    folder = tempfile.mkdtemp(prefix="fastjobs-browser-")
    job = await stack.tasks.build_report.options(queue="reports").enqueue(os.path.join(folder, "missing"))
    await stack.wait_state(job.id, "dead")
    fixed = os.path.join(folder, "present")
    Path(fixed).touch()

    await login(page)
    await page.goto(f"/#/jobs/{job.id}")
    await expect(page.get_by_test_id("job-state")).to_have_text("dead")
    await page.get_by_test_id("job-edit").click()
    await page.get_by_test_id("edit-args").fill(json.dumps([fixed]))
    await page.get_by_test_id("edit-max-attempts").fill("2")
    await page.get_by_test_id("edit-submit").click()
    await expect(page.get_by_test_id("job-state")).to_have_text("succeeded")
    await expect(page.get_by_test_id("job-args")).to_contain_text(json.dumps(fixed))
    info = await stack.wait_state(job.id, "succeeded", timeout=5)
    assert info.args == (fixed,) and info.max_attempts == 2


async def test_pause_a_queue_and_workers_leave_its_jobs(page: Page, stack: Stack) -> None:
    first = await stack.tasks.send_email.options(queue="pausable").enqueue("first@example.com")
    await stack.wait_state(first.id, "succeeded")  # the worker serves the queue

    await login(page)
    await page.goto("/#/queues")
    row = page.get_by_test_id("queue-row-pausable")
    await expect(row).to_be_visible()
    await page.get_by_test_id("queue-pause-pausable").click()
    await expect(page.get_by_test_id("queue-resume-pausable")).to_be_visible()
    await expect(row).to_contain_text("paused")
    assert "pausable" in await stack.app.paused()

    held = await stack.tasks.send_email.options(queue="pausable").enqueue("held@example.com")
    # Enqueued after the held job, on a queue the same worker serves: once it ran, the worker has
    # claimed since the held job was there, and passed it by.
    control = await stack.tasks.send_email.options(queue="emails").enqueue("control@example.com")
    await stack.wait_state(control.id, "succeeded")
    info = await stack.app.get_job(held.id)
    assert info is not None and info.state == "queued"
    queued_cell = row.locator("td").nth(0)  # the first state column: queued
    await expect(queued_cell).to_have_text("1")

    await page.get_by_test_id("queue-resume-pausable").click()
    await expect(page.get_by_test_id("queue-pause-pausable")).to_be_visible()
    await stack.wait_state(held.id, "succeeded")
    assert await stack.app.paused() == []
    await expect(queued_cell).to_have_text("0")  # live: the page saw the job go
