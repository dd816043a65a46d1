"""Every page of the dashboard in a real browser: job values that look like HTML are shown as text
and run nothing; no page logs a console error or breaks its Content-Security-Policy; and the
screenshots of the README (docs/screenshots/overview.png and job.png, 1280x800) are taken here."""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.web.browser.conftest import (
    SCREENSHOTS,
    Stack,
    Watch,
    login,
    playwright_expect,
)

if TYPE_CHECKING:
    from playwright.async_api import Page

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]
expect = playwright_expect()

SCRIPT = "<script>window.__xss=1</script>"
IMG = '"><img src=x onerror="window.__xss=2">'


async def assert_inert(page: Page) -> None:
    """Nothing a job carried became markup or ran."""
    assert await page.evaluate("typeof window.__xss") == "undefined"
    assert await page.evaluate("document.querySelectorAll('main img, main script, main [onerror]').length") == 0


async def test_html_in_job_values_is_shown_as_text(page: Page, stack: Stack) -> None:
    text = f"{SCRIPT} {IMG}"
    dead = await stack.tasks.resize_image.options(queue="images", tags=[SCRIPT, IMG]).enqueue(text)
    # A task whose very name is markup (a name may hold anything but spaces and control characters).
    odd = stack.app.task(name=SCRIPT)(lambda: None)
    named = await odd.options(queue="xss-parked").enqueue()
    await stack.wait_state(dead.id, "dead")  # failed with the text as its error message

    await login(page)
    await page.goto("/#/jobs?queue=images")
    row = page.get_by_test_id(f"job-row-{dead.id}")
    await expect(row.locator("td.tags")).to_have_text(SCRIPT + IMG)
    await expect(row.locator("td.error-cell")).to_have_text(f"ValueError: {text}")
    await assert_inert(page)

    await page.goto("/#/jobs?queue=xss-parked")
    await expect(page.get_by_test_id(f"job-row-{named.id}").locator("td").nth(2)).to_have_text(SCRIPT)
    await assert_inert(page)

    await page.goto(f"/#/jobs/{dead.id}")
    await expect(page.get_by_test_id("job-state")).to_have_text("dead")
    await expect(page.get_by_test_id("job-args")).to_have_text(json.dumps([text], indent=2))
    await expect(page.get_by_test_id("job-tags")).to_have_text(SCRIPT + IMG)
    await expect(page.get_by_test_id("job-errors")).to_contain_text(f"ValueError: {text}")
    await expect(page.get_by_test_id("job-errors").locator("pre.traceback")).to_contain_text(f"ValueError: {text}")
    await assert_inert(page)

    await page.goto(f"/#/jobs/{named.id}")
    await expect(page.get_by_test_id("job-state")).to_have_text("queued")
    await expect(page.locator("main h1")).to_contain_text(SCRIPT)
    await assert_inert(page)

    await page.goto("/#/dead")
    await expect(page.locator("main")).to_contain_text(f"{text}")
    await assert_inert(page)


async def settled(page: Page) -> None:
    """The page on screen has loaded its data."""
    await expect(page.locator("main")).not_to_have_attribute("aria-busy", "true")
    await expect(page.get_by_test_id("error-banner")).to_be_hidden()


async def test_every_page_loads_clean_and_screenshots(page: Page, stack: Stack, watch: Watch) -> None:
    # Something to look at: emails sent, images that failed, a report that failed once and was retried.
    t = stack.tasks
    await stack.app.enqueue_many(t.send_email.options(queue="emails", tags=["newsletter"]).call(f"user{i}@example.com")
                                 for i in range(40))
    await stack.app.enqueue_many(t.resize_image.options(queue="images").call(f"/uploads/photo-{i}.heic")
                                 for i in range(3))
    flag = os.path.join(tempfile.mkdtemp(prefix="fastjobs-browser-"), "sales-2026-12-05.csv")
    report = await t.build_report.options(queue="reports", tags=["daily", "sales"]).enqueue(flag)
    await stack.wait_state(report.id, "dead")
    Path(flag).touch()
    assert await stack.app.retry(report.id)
    await stack.wait_state(report.id, "succeeded")

    await login(page)
    pages = {"overview": "Overview", "queues": "Queues", "jobs": "Jobs", "dead": "Dead letters",
             "periodic": "Periodic", "workers": "Workers"}
    for name, heading in pages.items():
        await page.get_by_test_id(f"nav-{name}").click()
        await expect(page).to_have_url(re.compile(f"#/{name}$"))
        await expect(page.locator("main h1")).to_contain_text(heading)
        await settled(page)
        await watch.check(page)

    await expect(page.locator("table.workers")).to_contain_text("alive")  # the worker process
    await page.get_by_test_id("nav-periodic").click()
    await expect(page.get_by_test_id("periodic-row-reports.nightly")).to_contain_text("0 3 * * *")

    await page.get_by_test_id("nav-overview").click()
    await settled(page)
    await expect(page.get_by_test_id("stat-succeeded")).not_to_have_text("0")
    await expect(page.locator("main svg.chart")).to_be_visible()
    await expect(page.locator("main svg.chart rect").first).to_be_attached()
    await page.mouse.move(1279, 799)  # no hover highlight in the picture
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / "overview.png"))
    await watch.check(page)

    await page.goto(f"/#/jobs/{report.id}")
    await expect(page.get_by_test_id("job-state")).to_have_text("succeeded")
    await expect(page.get_by_test_id("job-errors")).to_contain_text("FileNotFoundError")
    await settled(page)
    await page.mouse.move(1279, 799)
    await page.screenshot(path=str(SCREENSHOTS / "job.png"))
    await watch.check(page)
