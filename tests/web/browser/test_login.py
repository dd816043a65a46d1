"""Logging in to the dashboard in a real browser: the token through the form gives an HttpOnly,
SameSite=Strict session; a wrong token is refused with the error shown and no session; a deep link
opened logged out is where the login lands; logging out ends the session; the read-only token sees the pages without their buttons."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

from tests.web.browser.conftest import (
    READ_TOKEN,
    TOKEN,
    Stack,
    login,
    playwright_expect,
)

if TYPE_CHECKING:
    from playwright.async_api import Page

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]
expect = playwright_expect()


async def session_cookies(page: Page) -> list[dict[str, object]]:
    return [dict(c) for c in await page.context.cookies() if c["name"] == "fastjobs_session"]


async def test_login_with_the_token(page: Page, stack: Stack) -> None:
    await login(page)
    assert TOKEN not in page.url
    (cookie,) = await session_cookies(page)
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict" and cookie["path"] == "/"
    assert "fastjobs_session" not in await page.evaluate("document.cookie")  # out of scripts' reach
    await expect(page.get_by_test_id("stat-queued")).to_have_text(re.compile(r"^[\d,]+$"))
    assert (await page.request.get("api/session")).ok


async def test_a_wrong_token_is_refused(page: Page, stack: Stack) -> None:
    await page.goto("/login")
    await page.get_by_test_id("login-token").fill(TOKEN + "-wrong")
    await page.get_by_test_id("login-submit").click()
    await expect(page).to_have_url(re.compile(r"/login\?error=unauthorized$"))
    await expect(page.get_by_test_id("login-error")).to_be_visible()
    await expect(page.get_by_test_id("login-error")).to_have_text("That token is not valid.")
    assert await session_cookies(page) == []
    response = await page.request.get("api/stats")
    assert response.status == 401 and (await response.json())["error"] == "unauthorized"
    await page.goto("/#/jobs")
    await expect(page).to_have_url(re.compile(r"/login(#/jobs)?$"))  # the browser keeps the fragment


async def test_a_deep_link_survives_the_login(page: Page, stack: Stack) -> None:
    job = await stack.tasks.send_email.options(queue="parked").enqueue("deep@example.com")
    await page.goto(f"/#/jobs/{job.id}")
    await expect(page).to_have_url(re.compile(rf"/login#/jobs/{job.id}$"))
    await page.get_by_test_id("login-token").fill(TOKEN + "-wrong")  # a typo first: the route is kept
    await page.get_by_test_id("login-submit").click()
    await expect(page.get_by_test_id("login-error")).to_be_visible()
    await page.get_by_test_id("login-token").fill(TOKEN)
    await page.get_by_test_id("login-submit").click()
    await expect(page).to_have_url(re.compile(rf"127\.0\.0\.1:{stack.port}/#/jobs/{job.id}$"))
    await expect(page.get_by_test_id("job-state")).to_have_text("queued")
    await expect(page.locator("nav.main-nav a[aria-current=page]")).to_have_attribute("data-page", "jobs")


async def test_logout_ends_the_session(page: Page, stack: Stack) -> None:
    await login(page)
    await page.get_by_test_id("logout").click()
    await expect(page).to_have_url(re.compile(r"/login$"))
    await expect(page.get_by_test_id("login-token")).to_be_visible()
    assert await session_cookies(page) == []
    assert (await page.request.get("api/stats")).status == 401


async def test_the_read_only_token_sees_no_buttons(page: Page, stack: Stack) -> None:
    job = await stack.tasks.send_email.options(queue="parked").enqueue("reader@example.com")
    await login(page, READ_TOKEN)
    await expect(page.locator("#role")).to_have_text("read-only")
    await page.goto(f"/#/jobs/{job.id}")
    await expect(page.get_by_test_id("job-state")).to_have_text("queued")
    await expect(page.get_by_test_id("job-cancel")).to_be_hidden()
    await page.goto("/#/queues")
    await expect(page.get_by_test_id("queue-row-parked")).to_contain_text("read-only")
    await expect(page.get_by_test_id("queue-pause-parked")).to_have_count(0)
    # The API refuses a change even if asked directly (with the session's CSRF token).
    csrf = (await (await page.request.get("api/session")).json())["csrf"]
    refused = await page.request.post("api/queues/parked/pause", headers={"X-CSRF-Token": csrf})
    assert refused.status == 403 and (await refused.json())["error"] == "read_only"
