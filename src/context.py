"""What a handler registered with ``context=True`` gets: :class:`Context`.

Example:
    >>> import fastjobs
    >>> app = fastjobs.App("memory://")
    >>> @app.task(context=True)
    ... async def resize(ctx: fastjobs.Context, path: str) -> int:
    ...     await ctx.progress(0.5, "resizing")
    ...     return ctx.attempt
    >>> resize.context
    True
"""

from __future__ import annotations

import asyncio
import time

from ._core import ContextFields, encode_value
from .errors import InvalidOptionError


class Context(ContextFields):
    """What a handler registered with ``context=True`` gets as its first argument.

    Attributes:
        job_id, task, queue, attempt, max_attempts: the job being run
            (``attempt`` is 1 on the first run).
        batch_id: in a batch's callback, the batch id (see :meth:`App.get_batch`); else None.
        cancelled: True once the job was cancelled or its lease was lost while
            it ran (seen at the next lease renewal, every lease/3 seconds). Async
            handlers are also cancelled at their next ``await``; plain ``def``
            handlers cannot be interrupted and should check this flag.
        args, kwargs, meta: the job's arguments and its meta (``options(meta=)``, what
            ``before_enqueue`` hooks added, and fastjobs' own ``fastjobs.`` keys).
        state: the worker's :class:`~fastjobs.WorkerState` (what its start hooks opened).
        worker_id: the id of the worker running it.
        lease_until: when the lease runs out unless renewed (the worker's clock, epoch
            seconds); renewed while the job runs.

    Its fields are stored in the compiled core (:mod:`fastjobs._core`, ``ContextFields``):
    the Context a worker makes for a job (``fastjobs._core.job_context``) is built in C and reads the
    job's fields from its claim and record when asked; there they are read-only, except
    ``job_id``, ``meta``, ``cancelled`` and ``lease_until``. Compared by identity.

    Example:
        >>> @app.task(context=True)  # doctest: +SKIP
        ... async def resize(ctx: fastjobs.Context, path: str) -> None:
        ...     await ctx.progress(0.5, "resizing")
        >>> @app.task(context=True)  # doctest: +SKIP
        ... def crunch(ctx: fastjobs.Context, rows: list[int]) -> None:
        ...     for i, row in enumerate(rows):
        ...         if ctx.cancelled:
        ...             return
        ...         ctx.progress_sync(i / len(rows))
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Context(job_id={self.job_id!r}, task={self.task!r}, attempt={self.attempt})"

    async def progress(self, fraction: float, message: str = "") -> bool:
        """Store how far the job got (one round trip); False if the job is no longer this worker's."""
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 <= fraction <= 1.0:
            raise InvalidOptionError(f"progress must be a number from 0.0 to 1.0, not {fraction!r}")
        payload = encode_value({"fraction": float(fraction), "message": str(message)[:1000], "at": time.time()})
        applied: bool = await self._backend.set_progress(self.job_id, self._token, payload)
        return applied

    def progress_sync(self, fraction: float, message: str = "") -> bool:
        """:meth:`progress` from a plain ``def`` handler (blocks its thread until stored)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError("progress_sync() is for plain def handlers; use await ctx.progress(...) in async ones")
        if not self._loop.is_running():  # the worker is gone (a thread that outlived shutdown)
            return False
        future = asyncio.run_coroutine_threadsafe(self.progress(fraction, message), self._loop)
        return future.result(timeout=60)

