"""Dashboard security: tokens, the read-only role, the login cookie, CSRF, Origin, rate limits,
security headers, mounting under a path. Auth does not depend on the backend: memory only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

import fastjobs
from fastjobs.web import create_app
from fastjobs.web.auth import COOKIE
from fastjobs.web.server import CSP, build
from fastjobs.web.auth import Guard
from tests.web.conftest import BASE, READ_TOKEN, TOKEN, client_for


@pytest.fixture
def mem_app() -> fastjobs.App:
    return fastjobs.App("memory://")


@pytest.fixture
def site(mem_app: fastjobs.App) -> Starlette:
    return create_app(mem_app, token=TOKEN, read_only_token=READ_TOKEN)


@pytest.fixture
async def browser(site: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(site, None) as c:
        yield c


async def login(c: httpx.AsyncClient, token: str = TOKEN, **headers: str) -> httpx.Response:
    return await c.post("/login", data={"token": token}, headers=headers)


async def test_api_needs_a_valid_bearer_token(site: Starlette) -> None:
    async with client_for(site, None) as c:
        r = await c.get("/api/stats")
        assert r.status_code == 401 and r.json()["error"] == "unauthorized"
    async with client_for(site, "wrong") as c:
        assert (await c.get("/api/stats")).status_code == 401
    async with client_for(site, None) as c:
        assert (await c.get("/api/stats", headers={"Authorization": f"Basic {TOKEN}"})).status_code == 401
    async with client_for(site) as c:
        assert (await c.get("/api/stats")).status_code == 200


async def test_read_only_token_reads_and_cannot_write(site: Starlette, mem_app: fastjobs.App) -> None:
    async with client_for(site, READ_TOKEN) as c:
        assert (await c.get("/api/session")).json() == {"role": "read", "csrf": None}
        assert (await c.get("/api/jobs")).status_code == 200
        for r in (await c.post("/api/queues/q/pause"), await c.delete("/api/jobs/abc"),
                  await c.post("/api/jobs/actions", json={"action": "delete", "filter": {}}),
                  await c.post("/api/dead/groups/delete", json={"type": "a", "message": "b"})):
            assert r.status_code == 403 and r.json()["error"] == "read_only"
    assert await mem_app.paused() == []


async def test_login_sets_a_strict_httponly_cookie_and_writes_need_csrf(browser: httpx.AsyncClient) -> None:
    assert (await browser.get("/", follow_redirects=False)).headers["location"] == "/login"
    r = await login(browser)
    assert r.status_code == 303 and r.headers["location"] == "/"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Path=/" in cookie and "Secure" not in cookie and TOKEN not in cookie
    session = (await browser.get("/api/session")).json()
    assert session["role"] == "admin" and session["csrf"]
    r = await browser.post("/api/queues/q/pause")
    assert r.status_code == 403 and r.json()["error"] == "csrf"
    r = await browser.post("/api/queues/q/pause", headers={"X-CSRF-Token": "wrong"})
    assert r.status_code == 403 and r.json()["error"] == "csrf"
    r = await browser.post("/api/queues/q/pause", headers={"X-CSRF-Token": session["csrf"]})
    assert r.status_code == 200
    r = await browser.post("/logout")
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert (await browser.get("/api/session")).status_code == 401


async def test_read_only_login_cannot_write_even_with_csrf(browser: httpx.AsyncClient) -> None:
    await login(browser, READ_TOKEN)
    session = (await browser.get("/api/session")).json()
    assert session["role"] == "read"
    r = await browser.post("/api/queues/q/pause", headers={"X-CSRF-Token": session["csrf"]})
    assert r.status_code == 403 and r.json()["error"] == "read_only"


async def test_forged_or_tampered_cookies_are_refused(site: Starlette, browser: httpx.AsyncClient) -> None:
    await login(browser)
    value = browser.cookies[COOKIE]
    payload, _, signature = value.partition(".")
    async with client_for(site, None) as other:
        for forged in (payload + ".0" * 32, "x." + signature, "garbage", payload[:-2] + "." + signature):
            other.cookies.set(COOKIE, forged)
            assert (await other.get("/api/session")).status_code == 401
    # Another dashboard (another process secret) does not accept this one's cookie.
    async with client_for(create_app(fastjobs.App("memory://"), token=TOKEN), None) as other:
        other.cookies.set(COOKIE, value)
        assert (await other.get("/api/session")).status_code == 401


async def test_https_cookie_is_secure(site: Starlette) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=site), base_url="https://testserver") as c:
        assert "Secure" in (await login(c)).headers["set-cookie"]


async def test_cross_origin_requests_are_refused(browser: httpx.AsyncClient) -> None:
    await login(browser)
    csrf = (await browser.get("/api/session")).json()["csrf"]
    r = await browser.post("/api/queues/q/pause", headers={"X-CSRF-Token": csrf, "Origin": "http://evil.example"})
    assert r.status_code == 403 and r.json()["error"] == "forbidden"
    r = await browser.post("/api/queues/q/pause", headers={"X-CSRF-Token": csrf, "Origin": BASE})
    assert r.status_code == 200
    assert (await login(browser, Origin="http://evil.example")).status_code == 403


async def test_failed_logins_are_rate_limited(browser: httpx.AsyncClient) -> None:
    for _ in range(5):
        r = await login(browser, "wrong")
        assert r.status_code == 401 and r.json()["error"] == "unauthorized"
    r = await login(browser, "wrong")
    assert r.status_code == 429 and r.json()["error"] == "rate_limited" and int(r.headers["retry-after"]) >= 1
    assert (await login(browser)).status_code == 429  # even the right token, until the minute is over
    r = await browser.get("/api/stats", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 429


async def test_wrong_bearer_tokens_count_as_failures(site: Starlette) -> None:
    async with client_for(site, "wrong") as c:
        codes = [(await c.get("/api/stats")).status_code for _ in range(6)]
    assert codes == [401] * 5 + [429]


async def test_a_browser_form_with_a_wrong_token_goes_back_to_the_form(browser: httpx.AsyncClient) -> None:
    r = await login(browser, "wrong", accept="text/html,application/xhtml+xml")
    assert r.status_code == 303 and r.headers["location"] == "/login?error=unauthorized"
    assert COOKIE not in browser.cookies


async def test_login_returns_to_the_page_route_it_was_given(browser: httpx.AsyncClient) -> None:
    r = await browser.post("/login", data={"token": TOKEN, "next": "#/jobs/01abc?tab=errors"})
    assert r.status_code == 303 and r.headers["location"] == "/#/jobs/01abc?tab=errors"
    html = {"accept": "text/html"}
    r = await browser.post("/login", data={"token": "wrong", "next": "#/dead"}, headers=html)
    assert r.headers["location"] == "/login?error=unauthorized#/dead"  # the form keeps it for the next try


@pytest.mark.parametrize("target", [
    "https://evil.example/", "//evil.example", "/\\evil.example", "\\\\evil.example", "javascript:alert(1)",
    "/api/stats", "#//evil.example\r\nSet-Cookie: x=1", "#/jobs/<script>", "#jobs", " #/jobs", "#/" + "a" * 3000,
])
async def test_a_foreign_or_absolute_next_is_ignored(browser: httpx.AsyncClient, target: str) -> None:
    r = await browser.post("/login", data={"token": TOKEN, "next": target})
    assert r.status_code == 303 and r.headers["location"] == "/"
    r = await browser.post("/login", data={"token": "wrong", "next": target}, headers={"accept": "text/html"})
    assert r.headers["location"] == "/login?error=unauthorized"


async def test_every_response_carries_the_security_headers(site: Starlette, browser: httpx.AsyncClient) -> None:
    async with client_for(site) as c:
        responses = [await c.get("/api/stats"), await c.get("/api/jobs/nope%20x"), await c.get("/api/openapi.json")]
    responses += [await browser.get("/api/stats"), await browser.get("/"), await browser.get("/login"),
                  await login(browser, "wrong")]
    for r in responses:
        assert r.headers["content-security-policy"] == CSP
        assert "script-src 'self'" in CSP and "unsafe-inline" not in CSP and "default-src 'none'" in CSP
        assert r.headers["x-content-type-options"] == "nosniff" and r.headers["referrer-policy"] == "no-referrer"


async def test_pages_and_static_files_under_a_mount_point(tmp_path: Path, mem_app: fastjobs.App) -> None:
    (tmp_path / "index.html").write_text("<!doctype html><title>index</title>")
    (tmp_path / "login.html").write_text("<!doctype html><title>login</title>")
    (tmp_path / "app.js").write_text("console.log(1)")
    dashboard = build(mem_app, Guard(TOKEN, None), live=False, static=str(tmp_path))
    outer = Starlette(routes=[Mount("/jobs", dashboard)])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=outer), base_url=BASE) as c:
        r = await c.get("/jobs/")
        assert r.status_code == 303 and r.headers["location"] == "/jobs/login"
        assert "login" in (await c.get("/jobs/login")).text
        assert (await c.get("/jobs/app.js")).text == "console.log(1)"
        r = await c.post("/jobs/login", data={"token": TOKEN, "next": "https://evil.example/"})
        assert r.headers["location"] == "/jobs/" and "Path=/jobs" in r.headers["set-cookie"]
        r = await c.post("/jobs/login", data={"token": TOKEN, "next": "#/jobs/abc"})
        assert r.headers["location"] == "/jobs/#/jobs/abc"
        r = await c.get("/jobs/")
        assert r.status_code == 200 and "index" in r.text and r.headers["content-security-policy"] == CSP
        assert (await c.get("/jobs/api/session")).json()["role"] == "admin"


async def test_auth_none_is_an_explicit_opt_out(mem_app: fastjobs.App) -> None:
    async with client_for(create_app(mem_app, auth=None), None) as c:
        assert (await c.get("/api/session")).json() == {"role": "admin", "csrf": None}
        assert (await c.post("/api/queues/q/pause")).status_code == 200
        assert (await c.post("/api/queues/q/resume", headers={"Origin": "http://evil.example"})).status_code == 403


def test_a_token_is_required(mem_app: fastjobs.App, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FASTJOBS_WEB_TOKEN", raising=False)
    with pytest.raises(fastjobs.ConfigurationError, match="needs a token"):
        create_app(mem_app)
    with pytest.raises(fastjobs.ConfigurationError):
        create_app(mem_app, token=TOKEN, read_only_token=TOKEN)
    monkeypatch.setenv("FASTJOBS_WEB_TOKEN", "from-env")
    assert create_app(mem_app) is not None
