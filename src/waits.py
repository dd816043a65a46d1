"""How the worker waits for the first of several things without a Task per thing.

The claim loop waits, many times a second, for the first of: a free slot, the backend's wake-up,
the claim in flight, a stop request. Waiting with ``asyncio.wait`` on ``Event.wait()``
coroutines and ``asyncio.shield``-ed futures cost a Task per coroutine and a loop turn per
hop (future -> shield -> wait -> the waiting coroutine), about ten turns between an enqueue and
the start of its job on an idle worker. :func:`wait_any` instead hangs one callback on each
thing and wakes its caller on the first: no Task, one hop. A :class:`Flag` is the
``asyncio.Event`` API with callbacks, so a flag costs no Task to wait on either.

Example:
    >>> import asyncio
    >>> from fastjobs.waits import Flag, wait_any
    >>> async def main() -> bool:
    ...     flag = Flag()
    ...     asyncio.get_running_loop().call_later(0.01, flag.set)
    ...     await wait_any(flag, timeout=5)
    ...     return flag.is_set()
    >>> asyncio.run(main())
    True
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("fastjobs.worker")


class Flag:
    """A set/clear flag on one event loop: ``asyncio.Event``'s ``set``, ``clear``, ``is_set``
    and ``wait``, plus :meth:`on_set` callbacks (what :func:`wait_any` waits with)."""

    __slots__ = ("_set", "_callbacks")

    def __init__(self) -> None:
        self._set = False
        self._callbacks: list[Callable[[], object]] = []

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        if self._set:
            return
        self._set = True
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        """Return once the flag is set (at once if it is)."""
        if not self._set:
            await wait_any(self)
        return True

    def on_set(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` (once) when the flag is next set; the caller checks :meth:`is_set` first."""
        self._callbacks.append(callback)

    def discard(self, callback: Callable[[], object]) -> None:
        """Forget a callback registered with :meth:`on_set` that has not been called."""
        try:
            self._callbacks.remove(callback)
        except ValueError:
            pass


async def wait_any(*things: Flag | asyncio.Future[Any], timeout: float | None = None) -> None:
    """Return when the first of ``things`` is set (a :class:`Flag`) or done (a Future or Task),
    or after ``timeout`` seconds. Nothing is cancelled: a Future still pending stays as it is.

    A Future that ended with an exception is logged here, as a failed wait.
    """
    loop = asyncio.get_running_loop()
    woken = loop.create_future()

    def wake(*_: object) -> None:
        if not woken.done():
            woken.set_result(None)

    flags: list[Flag] = []
    futures: list[asyncio.Future[Any]] = []
    for thing in things:
        if isinstance(thing, Flag):
            if thing.is_set():
                wake()
                break
            thing.on_set(wake)
            flags.append(thing)
        else:
            if thing.done():
                wake()
                break
            thing.add_done_callback(wake)
            futures.append(thing)
    timer = None if timeout is None or woken.done() else loop.call_later(timeout, wake)
    try:
        await woken
    finally:
        for flag in flags:
            flag.discard(wake)
        for future in futures:
            future.remove_done_callback(wake)
        if timer is not None:
            timer.cancel()
        for thing in things:
            if not isinstance(thing, Flag) and thing.done() and not thing.cancelled() and thing.exception() is not None:
                log.warning("wait failed: %s", thing.exception())
