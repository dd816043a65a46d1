"""The web app: ``uvicorn fastapi_app.main:api`` (from examples/)."""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Callable

import fastjobs.web
from fastapi import Depends, FastAPI, HTTPException
from pydantic import BaseModel
from starlette.requests import HTTPConnection
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocketClose

from .tasks import jobs, send_welcome_email

ADMIN_USER = os.environ.get("ADMIN_USER", "admin")
ADMIN_PASSWORD = os.environ.get("ADMIN_PASSWORD", "change-me")


def current_admin(conn: HTTPConnection) -> str:
    """The app's own authentication, a FastAPI dependency: HTTP Basic, one admin account.

    It takes an HTTPConnection (not a Request) so that it can guard WebSockets too.
    """
    scheme, _, encoded = conn.headers.get("authorization", "").partition(" ")
    try:
        user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        user = password = ""
    # Both compared, always: how long the check takes says nothing about which one was wrong.
    user_ok = secrets.compare_digest(user.encode(), ADMIN_USER.encode())
    password_ok = secrets.compare_digest(password.encode(), ADMIN_PASSWORD.encode())
    if scheme.lower() != "basic" or not (user_ok and password_ok):
        raise HTTPException(401, "admins only", headers={"WWW-Authenticate": 'Basic realm="admin"'})
    return user


class Guarded:
    """A mounted ASGI app behind a dependency: FastAPI's ``Depends`` does not reach into mounts,
    so this runs ``check`` on every request and WebSocket before the app sees it."""

    def __init__(self, app: ASGIApp, check: Callable[[HTTPConnection], object]) -> None:
        self.app, self.check = app, check

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            try:
                self.check(HTTPConnection(scope))
            except HTTPException as refused:
                if scope["type"] == "websocket":
                    await WebSocketClose(code=1008)(scope, receive, send)  # 1008: policy violation
                else:
                    await PlainTextResponse(refused.detail, refused.status_code, refused.headers)(scope, receive, send)
                return
        await self.app(scope, receive, send)


# auth=None: no token login of its own; Guarded lets only current_admin's admins through.
dashboard = fastjobs.web.create_app(jobs, auth=None)


@contextlib.asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    async with jobs:  # connects at start-up (a wrong FASTJOBS_URL fails it), closes at shutdown
        yield
        await fastjobs.web.close(dashboard)  # a mounted app's own lifespan never runs


api = FastAPI(lifespan=lifespan)
api.mount("/jobs", Guarded(dashboard, current_admin))


class Signup(BaseModel):
    email: str
    name: str


@api.post("/signups", status_code=202)
async def sign_up(signup: Signup) -> dict[str, str]:
    job = await send_welcome_email.enqueue(signup.email, signup.name)
    return {"job_id": job.id}


@api.get("/me")
def me(user: str = Depends(current_admin)) -> dict[str, str]:  # the same check on the app's own routes
    return {"user": user}
