"""Fixtures of the real-browser tests: Chromium driven by Playwright against a real ``fastjobs web``
process and a real worker process, both on a fresh prefix of the test Redis.

Run them with Debian's Chromium and the ``playwright`` package (``playwright install`` is not
needed: the tests launch ``/usr/bin/chromium``, or ``FASTJOBS_CHROMIUM``)::

    apt-get install -y chromium && pip install playwright
    python -m pytest tests/web/browser

Without either they are skipped, saying so; with ``FASTJOBS_REQUIRE_BROWSER=1`` (CI sets it)
a missing browser fails them instead.

One dashboard, one worker and one browser serve the whole session (a session-scoped event loop);
each test gets a fresh browser context (no cookies) and its own queues. Every page a test opens
is watched: a console error, an uncaught exception or a Content-Security-Policy violation fails
the test when it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fastjobs
import pytest
import pytest_asyncio

from tests.backends import unique_prefix, wipe_namespace
from tests.web.browser.tasks import Tasks, register

if TYPE_CHECKING:
    from playwright.async_api import (
        Browser,
        BrowserContext,
        ConsoleMessage,
        Error,
        Page,
        Playwright,
    )

ROOT = Path(__file__).resolve().parents[3]
SCREENSHOTS = (
    ROOT / "docs" / "screenshots" if os.environ.get("FASTJOBS_SCREENSHOTS") == "1"
    else Path(tempfile.gettempdir()) / "fastjobs-screenshots"
)
"""Where the README's screenshots go: docs/screenshots with FASTJOBS_SCREENSHOTS=1 (to update them),
else a temporary folder (the pictures are still taken, the checkout stays clean)."""
APP = "tests.web.browser.tasks:app"
TOKEN = "browser-test-admin-token"
READ_TOKEN = "browser-test-read-only-token"
WORKER_QUEUES = ("default", "emails", "reports", "images", "live", "pausable")
"""What the worker process serves ("parked" is left alone: its jobs stay queued)."""

CHROMIUM = os.environ.get("FASTJOBS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
REQUIRED = os.environ.get("FASTJOBS_REQUIRE_BROWSER") == "1"
HOW = ("run them with Chromium and Playwright: apt-get install -y chromium && pip install playwright "
       "(FASTJOBS_CHROMIUM names another Chromium binary; FASTJOBS_REQUIRE_BROWSER=1 makes a missing one fail)")
TIMEOUT_MS = 20_000
"""How long an explicit wait (expect, wait_for_*) may take: generous, for a loaded CI machine."""

pytestmark = pytest.mark.slow


def playwright_installed() -> bool:
    try:
        return importlib.util.find_spec("playwright") is not None
    except (ImportError, ValueError):
        return False


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None if they can."""
    if not playwright_installed():
        return "the playwright package is not installed"
    if not os.access(CHROMIUM, os.X_OK):
        return f"no Chromium at {CHROMIUM}"
    return None


def playwright_expect() -> Any:
    """Playwright's ``expect``, for a test module to import at its top: skips the module (fails it
    with FASTJOBS_REQUIRE_BROWSER=1) when Playwright is not installed."""
    missing = browser_missing()
    if missing is not None and not playwright_installed():
        if REQUIRED:
            pytest.fail(f"FASTJOBS_REQUIRE_BROWSER=1 but {missing}: {HOW}", pytrace=False)
        pytest.skip(f"browser tests skipped, {missing}: {HOW}", allow_module_level=True)
    from playwright.async_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    return expect


@pytest.fixture(scope="session", autouse=True)
def browser_available() -> None:
    missing = browser_missing()
    if missing is None:
        return
    if REQUIRED:
        pytest.fail(f"FASTJOBS_REQUIRE_BROWSER=1 but {missing}: {HOW}", pytrace=False)
    pytest.skip(f"browser tests skipped, {missing}: {HOW}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Stack:
    """The processes under test and the test's own App on the same backend and prefix."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.prefix = unique_prefix()
        self.app = fastjobs.App(url, prefix=self.prefix)
        self.tasks: Tasks = register(self.app)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.logs = Path(tempfile.mkdtemp(prefix="fastjobs-browser-"))
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
        self.env = dict(os.environ, PYTHONPATH=path, FASTJOBS_TEST_URL=url, FASTJOBS_TEST_PREFIX=self.prefix)
        self.env.pop("FASTJOBS_WEB_TOKEN", None)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *args: str) -> None:
        with open(self.logs / f"{name}.log", "wb") as log:
            self.procs[name] = subprocess.Popen([sys.executable, "-m", "fastjobs", *args], cwd=ROOT, env=self.env,
                                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def check_running(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited with {proc.returncode}:\n{self.log(name)}")

    def wait_for_server(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.check_running()
            try:
                with urllib.request.urlopen(f"{self.base}/login", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"fastjobs web did not answer in {timeout} s:\n{self.log('web')}")
            time.sleep(0.05)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    async def wait_state(self, job_id: str, state: str, timeout: float = 30.0) -> fastjobs.JobInfo:
        """The job once it is in ``state`` (the backend polled; an AssertionError after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while True:
            info = await self.app.get_job(job_id)
            if info is not None and info.state == state:
                return info
            if time.monotonic() > deadline:
                self.check_running()
                raise AssertionError(f"job {job_id} is {info and info.state}, not {state}, after {timeout} s")
            await asyncio.sleep(0.05)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def stack(browser_available: None, redis_url: str) -> AsyncIterator[Stack]:
    """``fastjobs web`` and ``fastjobs worker`` processes on a fresh Redis prefix, and the test's App."""
    s = Stack(redis_url)
    s.start("web", "web", APP, "--port", str(s.port), "--token", TOKEN, "--read-only-token", READ_TOKEN,
            "--log-level", "WARNING")
    s.start("worker", "worker", APP, "--queues", ",".join(WORKER_QUEUES), "--concurrency", "20",
            "--log-level", "WARNING")
    try:
        await asyncio.to_thread(s.wait_for_server)
        yield s
    finally:
        await asyncio.to_thread(s.stop)
        await s.app.close()
        await wipe_namespace(redis_url, s.prefix)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser(browser_available: None) -> AsyncIterator[Browser]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        yield await launch(pw)


async def launch(pw: Playwright) -> Browser:
    try:
        return await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=60_000)
    except Exception as exc:
        if REQUIRED:
            raise
        pytest.skip(f"browser tests skipped, Chromium at {CHROMIUM} did not start ({exc}): {HOW}")


class Watch:
    """What went wrong on a page: console errors, uncaught exceptions, CSP violations."""

    # Runs in every document before its own scripts (added through the DevTools protocol,
    # so the page's CSP does not apply to it): records Content-Security-Policy violations.
    INIT = """
        window.__cspViolations = [];
        document.addEventListener("securitypolicyviolation", (e) => {
            window.__cspViolations.push(e.violatedDirective + " " + e.blockedURI);
        });
    """

    def __init__(self) -> None:
        self.problems: list[str] = []

    def console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.problems.append(f"console error: {message.text} ({message.location.get('url')})")

    def page_error(self, error: Error) -> None:
        self.problems.append(f"uncaught: {error}")

    async def check(self, page: Page) -> None:
        """Fail on anything seen so far, CSP violations of the current document included."""
        violations: Any = []
        with contextlib.suppress(Exception):  # the page may be mid-navigation or closed
            violations = await page.evaluate("window.__cspViolations || []")
        problems = self.problems + [f"CSP violation: {v}" for v in violations]
        assert not problems, "\n".join(problems)


@pytest_asyncio.fixture(loop_scope="session")
async def context(browser: Browser, stack: Stack) -> AsyncIterator[BrowserContext]:
    ctx = await browser.new_context(base_url=stack.base, viewport={"width": 1280, "height": 800})
    ctx.set_default_timeout(TIMEOUT_MS)
    try:
        yield ctx
    finally:
        await ctx.close()


@pytest_asyncio.fixture(loop_scope="session")
async def watch(context: BrowserContext) -> AsyncIterator[Watch]:
    """Watches every page of the test's context; fails the test on a console error or CSP violation."""
    w = Watch()
    await context.add_init_script(Watch.INIT)
    context.on("console", w.console)
    context.on("weberror", lambda e: w.page_error(e.error))
    yield w
    for page in context.pages:
        await w.check(page)


@pytest_asyncio.fixture(loop_scope="session")
async def page(context: BrowserContext, watch: Watch) -> Page:
    return await context.new_page()


async def login(page: Page, token: str = TOKEN) -> None:
    """Log in through the form, as a person does, and wait for the live dashboard."""
    expect = playwright_expect()
    await page.goto("/")
    await expect(page).to_have_url(re.compile(r"/login$"))  # the dashboard sends a stranger to the form
    await page.get_by_test_id("login-token").fill(token)
    await page.get_by_test_id("login-submit").click()
    await expect(page.get_by_test_id("nav-overview")).to_be_visible()
    await expect(page.get_by_test_id("live-toggle")).to_have_attribute("data-status", "live")


@pytest_asyncio.fixture(loop_scope="session")
async def dashboard(page: Page) -> Page:
    """A page logged in to the dashboard, live updates on."""
    await login(page)
    return page
