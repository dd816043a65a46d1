"""A coroutine's first step as a Task takes it (pure-Python twin of ``_step_c``).

:class:`fastjobs.eager.EagerTask` runs a handler's first step in its constructor: with the
Task current on its loop (in place of the Task that started it, put back after) and in the
Task's contextvars context. The compiled twin does the same with CPython's ``PyIter_Send``
and ``PyContext_Enter``: a coroutine that returns raises no StopIteration there, which was
most of what the step cost a no-op job (cachegrind: 78,900 -> 76,000 instructions per
enqueued-and-run job on the memory backend).

Example:
    >>> import asyncio
    >>> import contextvars
    >>> from fastjobs._core._step_py import first_step
    >>> async def main() -> tuple[bool, int]:
    ...     async def handler() -> int:
    ...         return 42
    ...     loop = asyncio.get_running_loop()
    ...     job = loop.create_future()  # stands for the job's Task
    ...     return first_step(job, loop, handler(), contextvars.copy_context())
    >>> asyncio.run(main())
    (True, 42)
"""

from __future__ import annotations

import contextvars
from asyncio import tasks
from collections.abc import Coroutine
from typing import Any

_current_tasks: dict[Any, Any] = tasks._current_tasks  # type: ignore[attr-defined]
_enter_task = tasks._enter_task
_leave_task = tasks._leave_task


def first_step(task: Any, loop: Any, coro: Coroutine[Any, Any, Any], context: contextvars.Context) -> tuple[bool, Any]:
    """Send ``None`` into ``coro`` with ``task`` current on ``loop``, inside ``context``.

    Returns ``(True, value)`` if the coroutine returned ``value``, ``(False, yielded)`` if it
    suspended on ``yielded``; raises what the coroutine raised. The Task current before is
    current again after, whatever happened.
    """
    prev = _current_tasks.get(loop)
    if prev is not None:
        _leave_task(loop, prev)
    _enter_task(loop, task)
    try:
        yielded = context.run(coro.send, None)
    except StopIteration as exc:
        return True, exc.value
    finally:
        _leave_task(loop, task)
        if prev is not None:
            _enter_task(loop, prev)
    return False, yielded
