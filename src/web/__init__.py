"""The fastjobs web dashboard: a live view of jobs, queues and workers, and a REST API.

``pip install "fastjobs[web]"``, then either run it::

    fastjobs web myproject.jobs:app --port 8080     # prints the URL and a generated token

or mount it in your own ASGI app (paths are relative to the mount point)::

    import contextlib, os
    from collections.abc import AsyncIterator
    from fastapi import FastAPI
    import fastjobs.web
    from myproject.jobs import app as jobs_app

    dashboard = fastjobs.web.create_app(jobs_app, token=os.environ["FASTJOBS_WEB_TOKEN"])

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await fastjobs.web.close(dashboard)  # a mounted app's own lifespan never runs

    api = FastAPI(lifespan=lifespan)
    api.mount("/jobs", dashboard)

Behind your own authentication, opt out of the dashboard's with ``auth=None`` (then
everyone who reaches it is an admin: put it behind something that checks)::

    from fastapi import Depends, FastAPI
    from starlette.middleware import Middleware

    admin_only = ...  # your middleware that refuses non-admins (sessions, OAuth, ...)
    api.mount("/jobs", Starlette(routes=[Mount("/", fastjobs.web.create_app(jobs_app, auth=None))],
                                 middleware=[Middleware(admin_only)]))

With the memory backend the dashboard sees the App's jobs only when it runs in the same
process as the App (mounted, not ``fastjobs web``).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Literal

try:
    import starlette  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError('the fastjobs dashboard needs Starlette: pip install "fastjobs[web]"') from exc

from ..errors import ConfigurationError
from .auth import Guard
from .server import Dashboard, build

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from ..app import App

TOKEN_ENV = "FASTJOBS_WEB_TOKEN"

__all__ = ["TOKEN_ENV", "close", "create_app"]


def create_app(app: App, *, token: str | None = None, read_only_token: str | None = None,
               auth: Literal["token"] | None = "token", live: bool = True) -> Starlette:
    """The dashboard of ``app`` as a Starlette (ASGI) app.

    Args:
        app: the :class:`fastjobs.App` to show and act on.
        token: the admin token (default: ``FASTJOBS_WEB_TOKEN``); required unless ``auth=None``.
        read_only_token: a token that sees everything and changes nothing.
        auth: ``"token"`` (default) or None: no authentication at all, for apps that put their
            own in front (the Origin check stays).
        live: push job events to open pages over a WebSocket (one backend subscription per process).

    Served as the server's app, the dashboard's lifespan closes its events subscription at
    shutdown. Mounted in another app (``Mount("/jobs", dashboard)``, FastAPI's ``api.mount``),
    its lifespan never runs (Starlette runs only the outer app's): call :func:`close` from the
    outer app's lifespan, after its ``yield``, or the subscription (a Redis / PostgreSQL
    connection) may outlive the server, for one whose WebSockets were cut short by a graceful
    shutdown timeout or a forced exit.

    Example:
        >>> import fastjobs, fastjobs.web
        >>> web = fastjobs.web.create_app(fastjobs.App("memory://"), token="s3cret")
        >>> type(web).__name__
        'Starlette'
    """
    if auth not in ("token", None):
        raise ConfigurationError(f'auth must be "token" or None, not {auth!r}')
    guard = None
    if auth == "token":
        token = token or os.environ.get(TOKEN_ENV) or None
        if not token:
            raise ConfigurationError(
                f"the dashboard needs a token: create_app(app, token=...) or {TOKEN_ENV}; "
                "or auth=None to put your own authentication in front"
            )
        try:
            guard = Guard(token, read_only_token or None)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
    return build(app, guard, live)


async def close(dashboard: Starlette) -> None:
    """End the live-events subscription of a dashboard made by :func:`create_app`, and wait until
    it has let go of its backend connection: for a mounted dashboard, from the outer app's lifespan
    (see :func:`create_app`). Harmless to call twice, or with ``live=False``.

    Example:
        >>> import asyncio, fastjobs, fastjobs.web
        >>> web = fastjobs.web.create_app(fastjobs.App("memory://"), token="s3cret")
        >>> asyncio.run(fastjobs.web.close(web))
    """
    handlers = getattr(dashboard.state, "dashboard", None)
    if not isinstance(handlers, Dashboard):
        raise TypeError("close() takes the app fastjobs.web.create_app returned (not a wrapper around it)")
    await handlers.close()
