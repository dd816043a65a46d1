"""The PostgreSQL backend's connections: the pool, the one place where a statement's
connection failure is handled, reaching a server that is down, and the migrations at connect.

Every statement of :class:`~fastjobs.backends.postgres.PostgresBackend` runs
through :meth:`PostgresConnection._run`, so every operation behaves alike:

* **A connection lost mid-statement** (a restart, ``pg_terminate_backend``)
  raises :class:`~fastjobs.BackendUnavailableError` at
  once, with asyncpg's error as its ``__cause__``. The statement may have been
  applied, so it is not sent again; retrying is the caller's choice, and safe
  (see the error's docstring). The failed connection leaves the pool, and the
  pool's other connections are replaced on their next use: after a restart
  they are all dead, and each would otherwise fail one more statement.
* **A server that cannot be reached** (down, restarting, out of connection
  slots) is tried again, with backoff, until ``connect_timeout`` seconds
  (``App(connect_timeout=)``, :class:`~fastjobs.backends.BackendOptions`) have
  passed since the operation began; then BackendUnavailableError. A restart or
  a failover shorter than that is ridden out; a longer outage fails in bounded
  time, as on Redis.
* **Except the worker's claim and idle wait**, which give up at once: the
  worker retries them itself, after landing its own acknowledgements and
  renewing its leases. A claim that kept trying would land first as often as
  not when the server came back, and, after an outage longer than the lease,
  take back (and run again) jobs this worker had finished meanwhile.

Example:
    >>> backend = PostgresBackend("postgresql://127.0.0.1/app", BackendOptions(connect_timeout=2.0))  # doctest: +SKIP
    >>> await backend.enqueue_many(jobs)  # server down for 3 s  # doctest: +SKIP
    Traceback (most recent call last):
    fastjobs.errors.BackendUnavailableError: cannot connect to PostgreSQL (...), tried for 2 s (connect_timeout); ...
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg  # type: ignore[import-untyped]

from ...errors import BackendError, BackendUnavailableError, ConfigurationError, FastjobsError
from ..base import Backend, BackendOptions
from .listen import Wakeups
from .schema import require, upgrade
from .sql import QUERIES, render, validate_schema

T = TypeVar("T")

CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,  # a connect that timed out (an OSError itself only from Python 3.11)
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
    asyncpg.InternalClientError,  # e.g. "another operation is in progress" after a shutdown notice
)
"""asyncpg's errors that mean "the server or the connection went away", as opposed to a bad statement."""

_UNREACHABLE: tuple[type[BaseException], ...] = (BackendUnavailableError, *CONNECTION_ERRORS)

_RETRY_FIRST = 0.05
_RETRY_CAP = 0.5
"""Backoff between attempts to reach the server: short at first (a failover is quick),
at most half a second apart (the worker's own claim retry pace)."""

_CLOSED = "this PostgreSQL backend was closed; get a new one from the App"

_SESSION_SETTINGS = {
    "enable_seqscan": "off",
    "enable_bitmapscan": "off",
    "enable_hashjoin": "off",
    "enable_mergejoin": "off",
    "enable_sort": "off",
    "jit": "off",
}


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Pool release hook: our statements leave no session state behind.

    asyncpg's default reset runs ``RESET ALL; UNLISTEN *; ...``: one more round
    trip per statement, which would double the cost of every claim and ack.
    """


def _discard(conn: Any) -> None:
    """Close a connection whose statement failed, so that the pool opens a new one."""
    # One that got a server's shutdown notice while idle can be left in a state
    # where its next statement fails too, so it is closed rather than reused.
    # One that asyncpg saw die mid-statement was already given back to the pool
    # (which dropped it): our proxy to it is detached, and its terminate()
    # raises InterfaceError. That error once replaced the connection error,
    # escaping as an asyncpg error and skipping the pool's renewal.
    with contextlib.suppress(asyncpg.InterfaceError):
        conn.terminate()


class PostgresConnection(Backend):
    """The pool of a :class:`~fastjobs.backends.postgres.PostgresBackend` and the helpers its
    operations run statements through (its arguments are the backend's)."""

    def __init__(
        self,
        url: str,
        options: BackendOptions,
        *,
        min_connections: int = 0,
        max_connections: int = 10,
        migrate: bool = True,
        synchronous_commit: bool = True,
        vacuum: bool = True,
        poll_while_disconnected: float = 1.0,
        listen_safety_timeout: float = 30.0,
        connect_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(url, options)
        self.schema = validate_schema(options.prefix)
        self.channel = f"{self.schema}_wake"
        if not 0 <= min_connections <= max_connections or max_connections < 1:
            raise ConfigurationError(
                f"need 0 <= min_connections <= max_connections and max_connections >= 1, "
                f"got {min_connections} and {max_connections}"
            )
        self.min_connections = min_connections
        self.max_connections = max_connections
        self.auto_migrate = migrate
        self.synchronous_commit = synchronous_commit
        self.vacuum = vacuum
        self.connect_timeout = options.connect_timeout
        self.poll_while_disconnected = poll_while_disconnected
        self.listen_safety_timeout = listen_safety_timeout
        # Our own connections plan like the functions do (see the header of
        # sql/functions/claim.sql): every query here has an index
        # made for it, and a queue table's statistics are nearly always wrong.
        # No sort where an index walks in order (a penalty, not a ban: a sort
        # with no alternative stays): a search part of scheduled jobs was
        # planned on jobs_due_by_queue plus a sort of every scheduled job of
        # the queue, instead of a walk of jobs_search_queue from the position,
        # while the statistics said the queue was empty.
        # No JIT: it only ever slows these short statements.
        settings = dict(_SESSION_SETTINGS)
        if not synchronous_commit:
            settings["synchronous_commit"] = "off"
        extra = dict(connect_kwargs or {})
        settings.update(extra.pop("server_settings", None) or {})
        # One connection attempt may take the whole connect_timeout (a host that drops packets).
        self._connect_kwargs: dict[str, Any] = {"timeout": self.connect_timeout, **extra, "server_settings": settings}
        self._q = {name: render(sql, self.schema) for name, sql in QUERIES.items()}
        """The named queries of ``queries.sql``, for this schema."""
        self._keep_results = options.result_ttl > 0
        self._pool: asyncpg.Pool | None = None
        self._connecting: asyncio.Future[asyncpg.Pool] | None = None
        self._closed = False
        self.applied_migrations: list[str] = []
        """Migrations this backend applied (at connect or by :meth:`migrate`)."""
        self.applied_functions: list[str] = []
        """Hashes of the function files this backend (re-)applied, at connect or by :meth:`migrate`."""
        self._wakeups = Wakeups(
            self._connect_listener, self.channel, self.connect_timeout, poll_while_disconnected, listen_safety_timeout
        )
        self._background: set[asyncio.Task[Any]] = set()
        """Tasks the backend started on its own (maintenance): cancelled at close."""

    def __repr__(self) -> str:
        return f"<PostgresBackend schema={self.schema!r}>"

    @property
    def listener_pid(self) -> int | None:
        """Server process of the LISTEN connection while it is up (for monitoring and tests)."""
        return self._wakeups.pid

    # -- the pool -------------------------------------------------------------------

    async def connect(self) -> None:
        if self._pool is not None:
            return
        # A connection, not just a pool (which opens none with min_connections=0):
        # an App that connects learns now, within connect_timeout, whether the server is there.
        pool, conn = await self._acquire(patient=True)
        await pool.release(conn)

    async def _get_pool(self) -> asyncpg.Pool:
        pool = self._pool
        if pool is not None:
            return pool
        if self._closed:
            raise BackendUnavailableError(_CLOSED)
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._open())
        try:
            return await asyncio.shield(self._connecting)
        except BaseException:
            if self._connecting is not None and self._connecting.done():
                self._connecting = None
            raise

    async def _open(self) -> asyncpg.Pool:
        try:
            pool = await asyncpg.create_pool(
                self.url,
                min_size=self.min_connections,
                max_size=self.max_connections,
                max_queries=1_000_000,
                reset=_keep_session,
                **self._connect_kwargs,
            )
        except CONNECTION_ERRORS as exc:
            raise self._cannot_connect(exc) from exc
        assert pool is not None
        try:
            if self.auto_migrate:
                async with pool.acquire() as conn:
                    await self._upgrade(conn)
        except BaseException as exc:
            pool.terminate()
            if isinstance(exc, CONNECTION_ERRORS):
                raise self._cannot_connect(exc) from exc
            raise
        self._pool = pool
        return pool

    async def close(self) -> None:
        self._closed = True
        tasks = list(self._background)
        listener = self._wakeups.stop()
        if listener is not None:
            tasks.append(listener)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        self._wakeups.wake_all()
        connecting, self._connecting = self._connecting, None
        if connecting is not None and not connecting.done():
            connecting.cancel()
            with contextlib.suppress(BaseException):
                await connecting
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), 5.0)
            except CONNECTION_ERRORS:
                pool.terminate()

    async def _connect_listener(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.url, **self._connect_kwargs)

    # -- running statements: the one place connection failures are handled -----------

    async def _acquire(self, patient: bool) -> tuple[Any, Any]:
        """A connection from the pool, and the pool (see the module docstring).

        A server that cannot be reached is tried again with backoff until
        ``connect_timeout`` has passed if ``patient``, else given up on at once.
        """
        give_up = time.monotonic() + self.connect_timeout if patient else 0.0
        # The first try is bounded by each new connection's own timeout (connect_timeout);
        # later ones by what is left, so the whole stays within connect_timeout.
        timeout: float | None = None
        delay = _RETRY_FIRST
        while True:
            try:
                pool: Any = self._pool or await asyncio.wait_for(self._get_pool(), timeout)
                return pool, await pool.acquire(timeout=timeout)
            except _UNREACHABLE as exc:
                if self._closed:
                    if isinstance(exc, BackendUnavailableError):
                        raise
                    raise BackendUnavailableError(_CLOSED) from exc
                left = give_up - time.monotonic()
                # Less than a short try's worth left: give up now rather than just past the deadline.
                if left < _RETRY_FIRST:
                    cause = exc.__cause__ if isinstance(exc, BackendUnavailableError) and exc.__cause__ else exc
                    raise self._cannot_connect(cause, tried=patient) from cause
                await asyncio.sleep(min(delay, left / 2))
                delay = min(delay * 2, _RETRY_CAP)
                timeout = give_up - time.monotonic()

    async def _run(self, use: Callable[[Any], Awaitable[T]], patient: bool = True) -> T:
        """``await use(connection)`` on a pooled connection; a connection failure is
        BackendUnavailableError, and the connection leaves the pool (module docstring)."""
        pool, conn = await self._acquire(patient)
        try:
            try:
                return await use(conn)
            except CONNECTION_ERRORS:
                _discard(conn)
                raise
            finally:
                await pool.release(conn)
        except CONNECTION_ERRORS as exc:
            raise await self._lost(exc) from exc

    async def _fetch(self, query: str, *args: Any, patient: bool = True) -> list[Any]:
        return await self._run(lambda conn: conn.fetch(query, *args), patient)

    async def _fetchval(self, query: str, *args: Any, patient: bool = True) -> Any:
        return await self._run(lambda conn: conn.fetchval(query, *args), patient)

    async def _lost(self, exc: BaseException) -> BackendUnavailableError:
        pool = self._pool
        if pool is not None:
            # After a restart every idle connection is dead: replace them all
            # now rather than failing once per connection.
            await pool.expire_connections()
        return BackendUnavailableError(
            f"PostgreSQL connection lost ({type(exc).__name__}: {exc}); the operation may or may not have "
            "been applied. fastjobs reconnects on the next call"
        )

    def _cannot_connect(self, exc: BaseException, tried: bool = False) -> BackendUnavailableError:
        how_long = f", tried for {self.connect_timeout:g} s (connect_timeout)" if tried else ""
        return BackendUnavailableError(
            f"cannot connect to PostgreSQL ({type(exc).__name__}: {exc}){how_long}; check the URL and that "
            "the server is up"
        )

    def translate_error(self, exc: Exception) -> FastjobsError | None:
        # What gets past _run: errors of a caller's own connection= (an enqueue
        # in its transaction), credentials refused at connect, and statements
        # the server refused.
        if isinstance(exc, (*CONNECTION_ERRORS, asyncpg.InvalidAuthorizationSpecificationError)):
            return BackendUnavailableError(f"PostgreSQL connection failed ({type(exc).__name__}: {exc})")
        if isinstance(exc, asyncpg.PostgresError):
            return BackendError(f"PostgreSQL refused the operation ({type(exc).__name__}: {exc})")
        return None

    # -- migrations -------------------------------------------------------------------

    async def ready(self) -> None:
        await self._run(lambda conn: require(conn, self.schema))

    async def migrate(self) -> list[str]:
        """Apply pending migrations, and the functions if they are newer; return the
        names of all the migrations this backend applied.

        Safe to run from many processes at once (an advisory lock serializes
        them). ``fastjobs migrate module:app`` calls this. Raises
        :class:`ConfigurationError` if a newer fastjobs migrated the schema.
        """
        await self._run(self._upgrade)
        return list(self.applied_migrations)

    async def _upgrade(self, conn: Any) -> None:
        applied = await upgrade(conn, self.schema)
        self.applied_migrations += applied.migrations
        if applied.functions is not None:
            self.applied_functions.append(applied.functions)
