"""The dashboard as a Starlette app: routes from :data:`~fastjobs.web.openapi.ENDPOINTS`, auth,
security headers, the login pages, the static front end and the events WebSocket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from . import openapi
from .api import Api, ApiError, error_response, to_response
from .auth import COOKIE, SESSION_SECONDS, Denied, Guard, Session, check_origin, check_write
from .live import MAX_RATE, Hub

if TYPE_CHECKING:
    from ..app import App

log = logging.getLogger("fastjobs.web")

STATIC = os.path.join(os.path.dirname(__file__), "static")

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
LOGIN_BODY = 4096

NEXT_ROUTE = re.compile(r"#/[A-Za-z0-9\-._~!$&'()*+,;=:@/?%]{0,2000}")
"""What the login form's ``next`` field may name: a route of the page (a ``#/...`` fragment of
URL characters), never a URL or a path: the dashboard returns there after logging in."""


def next_route(value: str) -> str:
    """``value`` if it is a page route (``#/jobs/<id>``...), else '' (the overview): the login's
    redirect stays on the dashboard whatever the form says (no open redirect)."""
    return value if NEXT_ROUTE.fullmatch(value) else ""


class SecurityHeaders:
    """Adds the security headers (strict CSP...) to every HTTP response, and ``no-store`` to API ones."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        api = "/api/" in scope.get("path", "")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [h for h in SECURITY_HEADERS if h[0] not in present]
                if api and b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def root_of(conn: HTTPConnection) -> str:
    """The mount point's path, without a trailing slash ('' at the server's root)."""
    return str(conn.scope.get("root_path", "")).rstrip("/")


class Dashboard:
    """The handlers of one dashboard: an :class:`Api`, a :class:`Guard` (None: auth off) and a :class:`Hub`."""

    def __init__(self, app: App, guard: Guard | None, live: bool, static: str = STATIC) -> None:
        self.app, self.guard, self.static = app, guard, static
        self.api = Api(app)
        self.hub = Hub(app) if live else None
        self.known: list[Route] = []

    # -- auth ------------------------------------------------------------------------

    def session_of(self, conn: HTTPConnection) -> Session:
        check_origin(conn)
        if self.guard is None:
            return Session("admin")
        return self.guard.authenticate(conn)

    def endpoint(self, handler: Callable[[Request], Awaitable[Any]], write: bool) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            try:
                session = self.session_of(request)
                if write:
                    check_write(request, session)
                request.state.session = session
                data = await handler(request)
            except Exception as exc:
                response = to_response(exc)
                if response is None:
                    log.exception("dashboard: %s %s failed", request.method, request.url.path)
                    return error_response(500, "internal", f"internal error: {type(exc).__name__}")
                return response
            return JSONResponse(data)
        return run

    # -- API endpoints that are not about jobs ---------------------------------------

    async def session(self, request: Request) -> Any:
        session: Session = request.state.session
        return {"role": session.role, "csrf": session.csrf}

    async def events_http(self, request: Request) -> Any:
        raise ApiError(426, "upgrade_required", "api/events is a WebSocket: connect with an Upgrade request")

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(openapi.document())

    # -- pages -------------------------------------------------------------------------

    def _file(self, name: str) -> Response:
        path = os.path.join(self.static, name)
        if not os.path.isfile(path):
            return Response(f"{name} is missing from the fastjobs install\n", 404, media_type="text/plain")
        return FileResponse(path, media_type="text/html", headers={"Cache-Control": "no-store"})

    async def index(self, request: Request) -> Response:
        try:
            self.session_of(request)
        except Denied as exc:
            if exc.status == 401:
                return RedirectResponse(f"{root_of(request)}/login", 303)
            return error_response(exc.status, exc.code, exc.detail)
        return self._file("index.html")

    async def login_page(self, request: Request) -> Response:
        return self._file("login.html")

    async def login(self, request: Request) -> Response:
        html = "text/html" in request.headers.get("accept", "")
        root = root_of(request)
        route = ""
        try:
            check_origin(request)
            body = b""
            async for chunk in request.stream():
                body += chunk
                if len(body) > LOGIN_BODY:
                    raise Denied(413, "too_large", "the login form is too large")
            fields = parse_qs(body.decode("utf-8", "replace"))
            token = (fields.get("token") or [""])[0].strip()
            route = next_route((fields.get("next") or [""])[0])
            if self.guard is None:
                return RedirectResponse(f"{root}/{route}", 303)
            role = self.guard.login(request, token)
        except Denied as exc:
            if html:  # the form again, still knowing where to go after
                return RedirectResponse(f"{root}/login?error={exc.code}{route}", 303)
            headers = None if exc.retry_after is None else {"Retry-After": str(exc.retry_after)}
            return error_response(exc.status, exc.code, exc.detail, headers)
        response = RedirectResponse(f"{root}/{route}", 303)
        response.set_cookie(COOKIE, self.guard.new_cookie(role), max_age=SESSION_SECONDS, path=root or "/",
                            httponly=True, samesite="strict", secure=request.url.scheme == "https")
        return response

    async def logout(self, request: Request) -> Response:
        root = root_of(request)
        try:
            check_origin(request)
        except Denied as exc:
            return error_response(exc.status, exc.code, exc.detail)
        response = RedirectResponse(f"{root}/login", 303)
        response.delete_cookie(COOKIE, path=root or "/", httponly=True, samesite="strict",
                               secure=request.url.scheme == "https")
        return response

    async def not_found(self, request: Request) -> Response:
        path = request.scope["path"]
        allowed = sorted({m for route in self.known for m in route.methods or () if route.path_regex.match(path)})
        if allowed:
            return error_response(405, "method_not_allowed", f"{request.method} is not allowed here: use "
                                  f"{', '.join(allowed)}", {"Allow": ", ".join(allowed)})
        return error_response(404, "not_found", f"no such API path: {request.url.path}")

    # -- live events ---------------------------------------------------------------------

    async def events(self, websocket: WebSocket) -> None:
        try:
            self.session_of(websocket)
        except Denied as exc:
            await websocket.close(code=1008, reason=exc.code)
            return
        if self.hub is None:
            await websocket.close(code=1008, reason="live updates are off (create_app(live=False))")
            return
        await websocket.accept()
        client = self.hub.join()

        async def pump() -> None:
            while True:
                await websocket.send_json(await client.next_batch())
                await asyncio.sleep(1 / MAX_RATE)

        async def drain() -> None:
            with contextlib.suppress(WebSocketDisconnect):
                while True:
                    message = await websocket.receive()
                    if message["type"] == "websocket.disconnect":
                        return

        tasks = [asyncio.ensure_future(pump()), asyncio.ensure_future(drain())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await self.hub.leave(client)
            with contextlib.suppress(Exception):
                await websocket.close()

    async def close(self) -> None:
        """End the live-events subscription and wait until its connection is let go (shutdown)."""
        if self.hub is not None:
            await self.hub.close()

    # -- assembly ----------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        routes: list[BaseRoute] = []
        for e in openapi.ENDPOINTS:
            handler = getattr(self.api, e.handler, None) or getattr(self, e.handler)
            if e.tag == "pages" or e.handler == "openapi":
                routes.append(Route(e.path, handler, methods=[e.method]))
            else:
                routes.append(Route(e.path, self.endpoint(handler, e.write), methods=[e.method]))
        self.known = [r for r in routes if isinstance(r, Route)]
        routes.append(WebSocketRoute("/api/events", self.events))
        routes.append(Route("/api/{rest:path}", self.not_found, methods=["GET", "POST", "DELETE", "PUT", "PATCH"]))
        if os.path.isdir(self.static):
            routes.append(Mount("/", StaticFiles(directory=self.static)))
        return routes


async def http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    code = {404: "not_found", 405: "method_not_allowed"}.get(status, "http_error")
    detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
    headers = getattr(exc, "headers", None)
    return error_response(status, code, str(detail), dict(headers) if headers else None)


def build(app: App, guard: Guard | None, live: bool, static: str = STATIC) -> Starlette:
    """The Starlette app of a dashboard (see :func:`fastjobs.web.create_app`)."""
    dashboard = Dashboard(app, guard, live, static)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        await dashboard.close()

    web = Starlette(routes=dashboard.routes(), middleware=[Middleware(SecurityHeaders)],
                    exception_handlers={HTTPException: http_error}, lifespan=lifespan)
    web.state.dashboard = dashboard
    return web
