"""Who may use the dashboard: tokens, the session cookie, CSRF, the Origin check, login rate limits.

- API clients send ``Authorization: Bearer <token>``: the admin token (``token=``) may do
  everything, the read-only one (``read_only_token=``) only read.
- Browsers post the token to ``POST /login`` (form field ``token``) and get the cookie
  :data:`COOKIE`: ``<payload>.<signature>``, the payload (base64url JSON) holding the role,
  the expiry (:data:`SESSION_SECONDS`) and the session's CSRF value, the signature an
  HMAC-SHA256 under a key made of a random per-process secret and the tokens (a restart
  or a changed token ends every session). HttpOnly, SameSite=Strict, Path = the mount
  root, Secure over https.
- A cookie session's POST/DELETE must carry ``X-CSRF-Token`` equal to its CSRF value (the
  page reads it from ``GET /api/session``); Bearer requests need none. Any request with an
  ``Origin`` header must come from the same host (WebSocket included).
- Failed logins and wrong Bearer tokens: at most :data:`MAX_FAILURES` per
  :data:`FAILURE_WINDOW` seconds per client address; then 429 with ``Retry-After``.
- Tokens are compared with :func:`hmac.compare_digest`.

Behind a reverse proxy, the proxy must pass the browser's ``Host`` on (nginx:
``proxy_set_header Host $host;``), or every write fails the Origin check; and the client
address the rate limit counts is the proxy's unless the server is told to trust
``X-Forwarded-For`` (uvicorn ``--proxy-headers``; ``fastjobs web`` does not).

Example:
    >>> guard = Guard("s3cret", None)
    >>> guard.role_of_token("s3cret"), guard.role_of_token("nope")
    ('admin', None)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from collections import deque
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from starlette.requests import HTTPConnection

Role = Literal["admin", "read"]

COOKIE = "fastjobs_session"
CSRF_HEADER = "x-csrf-token"
SESSION_SECONDS = 12 * 3600
MAX_FAILURES = 5
FAILURE_WINDOW = 60.0
MAX_TRACKED = 10_000
"""Client addresses whose failures are remembered at most (the oldest are forgotten first)."""


@dataclass(frozen=True, slots=True)
class Session:
    """Who a request is: its role, and the CSRF value a cookie session's writes must carry (None: Bearer)."""

    role: Role
    csrf: str | None = None
    via_cookie: bool = False


class Denied(Exception):
    """A request refused: HTTP ``status``, error ``code`` and ``detail`` for the JSON body."""

    def __init__(self, status: int, code: str, detail: str, retry_after: int | None = None) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.retry_after = status, code, detail, retry_after


class RateLimiter:
    """Failures per client address in a sliding window."""

    def __init__(self, limit: int = MAX_FAILURES, window: float = FAILURE_WINDOW) -> None:
        self.limit, self.window = limit, window
        self.failures: dict[str, deque[float]] = {}

    def _recent(self, address: str, now: float) -> deque[float]:
        times = self.failures.get(address)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self.failures[address]
        return times

    def retry_after(self, address: str) -> int | None:
        """Seconds until ``address`` may try again, or None if it may now."""
        now = time.monotonic()
        times = self._recent(address, now)
        if len(times) < self.limit:
            return None
        return max(1, int(times[0] + self.window - now) + 1)

    def fail(self, address: str) -> None:
        if address not in self.failures and len(self.failures) >= MAX_TRACKED:
            del self.failures[next(iter(self.failures))]
        self.failures.setdefault(address, deque()).append(time.monotonic())


def client_address(conn: HTTPConnection) -> str:
    return conn.client.host if conn.client else "unknown"


def check_origin(conn: HTTPConnection) -> None:
    """Refuse a request whose ``Origin`` header names another host than its ``Host``."""
    origin = conn.headers.get("origin")
    if origin is None:
        return
    host = conn.headers.get("host", "")
    if origin == "null" or urlsplit(origin).netloc.lower() != host.lower():
        raise Denied(403, "forbidden", "cross-origin request refused: the Origin header does not match the host")


class Guard:
    """The tokens of one dashboard and the sessions signed for them."""

    def __init__(self, token: str, read_only_token: str | None) -> None:
        if not token:
            raise ValueError("the dashboard token must be a non-empty string")
        if read_only_token is not None and (not read_only_token or read_only_token == token):
            raise ValueError("the read-only token must be a non-empty string other than the admin token")
        self.token, self.read_only_token = token, read_only_token
        secret = secrets.token_bytes(32)
        self.key = hashlib.sha256(secret + token.encode() + b"\0" + (read_only_token or "").encode()).digest()
        self.limiter = RateLimiter()

    def role_of_token(self, candidate: str) -> Role | None:
        """The role ``candidate`` grants, compared in constant time; None: neither token."""
        given = candidate.encode()
        admin = hmac.compare_digest(given, self.token.encode())
        read = self.read_only_token is not None and hmac.compare_digest(given, self.read_only_token.encode())
        return "admin" if admin else "read" if read else None

    # -- cookie sessions ---------------------------------------------------------------

    def _sign(self, payload: bytes) -> str:
        return hmac.new(self.key, payload, hashlib.sha256).hexdigest()

    def new_cookie(self, role: Role) -> str:
        """A signed session cookie value for ``role``, valid :data:`SESSION_SECONDS`."""
        payload = json.dumps({"r": role, "e": int(time.time()) + SESSION_SECONDS,
                              "c": secrets.token_urlsafe(24)}, separators=(",", ":")).encode()
        text = base64.urlsafe_b64encode(payload).decode().rstrip("=")
        return f"{text}.{self._sign(text.encode())}"

    def read_cookie(self, value: str) -> Session | None:
        """The session a cookie value holds, or None if it is forged, mangled or expired."""
        text, _, signature = value.partition(".")
        if not text or not hmac.compare_digest(signature.encode(), self._sign(text.encode()).encode()):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            role, expires, csrf = data["r"], data["e"], data["c"]
        except (binascii.Error, ValueError, KeyError, TypeError):
            return None
        if role not in ("admin", "read") or not isinstance(expires, int) or expires < time.time():
            return None
        return Session(role, str(csrf), via_cookie=True)

    # -- requests ----------------------------------------------------------------------

    def authenticate(self, conn: HTTPConnection) -> Session:
        """The session of a request (Bearer header first, else the cookie); :class:`Denied` 401/429 if none."""
        header = conn.headers.get("authorization")
        if header is not None:
            scheme, _, candidate = header.partition(" ")
            address = client_address(conn)
            wait = self.limiter.retry_after(address)
            if wait is not None:
                raise Denied(429, "rate_limited", f"too many failed attempts: try again in {wait} s", wait)
            role = self.role_of_token(candidate.strip()) if scheme.lower() == "bearer" else None
            if role is None:
                self.limiter.fail(address)
                raise Denied(401, "unauthorized", "the Bearer token is not valid")
            return Session(role)
        cookie = conn.cookies.get(COOKIE)
        session = None if cookie is None else self.read_cookie(cookie)
        if session is None:
            raise Denied(401, "unauthorized", "log in first: send Authorization: Bearer <token>, or log in at ./login")
        return session

    def login(self, conn: HTTPConnection, candidate: str) -> Role:
        """The role a login with ``candidate`` grants; :class:`Denied` 401 (wrong) or 429 (too many failures)."""
        address = client_address(conn)
        wait = self.limiter.retry_after(address)
        if wait is not None:
            raise Denied(429, "rate_limited", f"too many failed logins: try again in {wait} s", wait)
        role = self.role_of_token(candidate)
        if role is None:
            self.limiter.fail(address)
            raise Denied(401, "unauthorized", "wrong token")
        return role


def check_write(conn: HTTPConnection, session: Session) -> None:
    """A state-changing request: refuse the read-only role, and a cookie session without its CSRF header."""
    if session.role != "admin":
        raise Denied(403, "read_only", "this token is read-only: it can see everything and change nothing")
    if session.via_cookie:
        sent = conn.headers.get(CSRF_HEADER, "")
        if not session.csrf or not hmac.compare_digest(sent.encode(), session.csrf.encode()):
            raise Denied(403, "csrf", "missing or wrong X-CSRF-Token header (read it from GET api/session)")
