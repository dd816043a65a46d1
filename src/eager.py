"""An asyncio Task that runs its first step in its constructor: Python 3.12's ``eager_start``
for Python 3.10 and 3.11, where the worker starts every ``async def`` handler with it.

A no-op handler started as an ordinary Task costs a loop turn: the Task's first step is
scheduled with ``call_soon``, its done callback with another. On 3.11 that was the largest
single cost of a job on the memory backend: cachegrind counted 120,600 instructions per
enqueued-and-run no-op job with a plain Task, 95,500 with this one.

:class:`EagerTask` is a real Task, a subclass of asyncio's own pure-Python ``Task``:
``asyncio.current_task()`` is the job's Task during its first step and after; ``cancel()``,
``asyncio.timeout`` and ``wait_for`` act on it; a handler that awaits goes on as that same
Task, stepped by asyncio's own code. A handler that finishes without suspending never
touches the scheduler and is never registered in ``asyncio.all_tasks()`` (as on 3.12). One
difference from a C Task: ``isinstance(task, asyncio.Task)`` is False (``asyncio.isfuture``
is True), as for any pure-Python Task.

Its first step follows asyncio's ``Task.__step`` for a new Task line by line.
``tests/test_eager.py`` holds it to a plain Task's behaviour. The class is not compiled (a
Cython build of it measured no fewer instructions per job, 96,700 against 95,500: its
attributes live in an instance dict either way); the step itself is,
:func:`fastjobs._core.first_step`, with a pure-Python twin.

Example:
    >>> import asyncio
    >>> from fastjobs.eager import EagerTask
    >>> async def main() -> bool:
    ...     async def handler() -> int:
    ...         return 42
    ...     task = EagerTask(asyncio.get_running_loop(), handler())
    ...     return task.done() and task.result() == 42
    >>> asyncio.run(main())
    True
"""

from __future__ import annotations

import contextvars
import inspect
from asyncio import exceptions, futures, tasks
from typing import Any

from ._core import first_step

_PENDING = futures._PENDING  # type: ignore[attr-defined]
_CANCELLED = futures._CANCELLED  # type: ignore[attr-defined]
_FINISHED = futures._FINISHED  # type: ignore[attr-defined]
_PyFuture: Any = futures._PyFuture  # type: ignore[attr-defined]
_PyTask: Any = tasks._PyTask  # type: ignore[attr-defined]
_register_task = tasks._register_task


class EagerTask(_PyTask):  # type: ignore[misc]
    """A Task started eagerly: its first step runs before the constructor returns.

    Args:
        loop: the running event loop.
        coro: the coroutine to run.
        context: the contextvars context it runs in (None: a copy of the current one).
    """

    _name = "fastjobs-job"

    def __init__(self, loop: Any, coro: Any, context: contextvars.Context | None = None) -> None:
        # What Future.__init__ and Task.__init__ set, without scheduling the first step
        # (and without the debug-mode source traceback).
        self._loop = loop
        self._callbacks: list[Any] = []
        self._must_cancel = False
        self._fut_waiter = None
        self._coro = coro
        self._context = context = contextvars.copy_context() if context is None else context
        self._num_cancels_requested = 0
        # The first step, as Task.__step takes it (fastjobs._core.first_step: the job's Task is
        # current, not the worker's; compiled, a return raises no StopIteration).
        try:
            returned, result = first_step(self, loop, coro, context)
        except exceptions.CancelledError as exc:
            self._cancelled_exc = exc
            _PyFuture.cancel(self)
        except (KeyboardInterrupt, SystemExit) as exc:
            _PyFuture.set_exception(self, exc)
            raise
        except BaseException as exc:
            _PyFuture.set_exception(self, exc)
        else:
            if not returned:
                self._suspended(result)
            elif self._must_cancel:  # cancelled right before the coroutine returned
                self._must_cancel = False
                _PyFuture.cancel(self, msg=self._cancel_message)
            elif self._callbacks:
                _PyFuture.set_result(self, result)
            else:  # the common case: no callback to schedule
                self._result = result
                self._state = _FINISHED
        if self._state is _PENDING:
            _register_task(self)

    def _suspended(self, result: Any) -> None:
        """The first step yielded ``result``: wait on it as ``Task.__step`` does."""
        step = self._Task__step
        blocking = getattr(result, "_asyncio_future_blocking", None)
        if blocking is not None:
            if futures._get_loop(result) is not self._loop:  # type: ignore[attr-defined]
                self._loop.call_soon(step, RuntimeError(
                    f"Task {self!r} got Future {result!r} attached to a different loop"), context=self._context)
            elif blocking:
                if result is self:
                    self._loop.call_soon(step, RuntimeError(f"Task cannot await on itself: {self!r}"),
                                         context=self._context)
                else:
                    result._asyncio_future_blocking = False
                    result.add_done_callback(self._Task__wakeup, context=self._context)
                    self._fut_waiter = result
                    if self._must_cancel and result.cancel(msg=self._cancel_message):
                        self._must_cancel = False
            else:
                self._loop.call_soon(step, RuntimeError(
                    f"yield was used instead of yield from in task {self!r} with {result!r}"), context=self._context)
        elif result is None:  # a bare yield: one loop turn
            self._loop.call_soon(step, context=self._context)
        elif inspect.isgenerator(result):
            self._loop.call_soon(step, RuntimeError(
                f"yield was used instead of yield from for generator in task {self!r} with {result!r}"),
                context=self._context)
        else:
            self._loop.call_soon(step, RuntimeError(f"Task got bad yield: {result!r}"), context=self._context)

    # The worker reads these on every job: asyncio's own, with a cheaper state test.
    def done(self) -> bool:
        return self._state is not _PENDING

    def cancelled(self) -> bool:
        return self._state is _CANCELLED

    def __del__(self) -> None:
        # Task's and Future's finalizers only log (a pending Task destroyed, an exception never
        # retrieved): skipped, without their two frames, when neither can apply.
        if self._state is _PENDING or self._Future__log_traceback:
            _PyTask.__del__(self)
