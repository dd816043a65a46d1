"""The stop signals a worker answers: SIGTERM and SIGINT, handled on its event loop.

Example:
    >>> import asyncio
    >>> from fastjobs.signals import install_stop_signals, remove_stop_signals
    >>> async def main() -> int:
    ...     loop = asyncio.get_running_loop()
    ...     installed = install_stop_signals(loop, lambda sig: None)
    ...     remove_stop_signals(loop, installed)
    ...     return len(installed)
    >>> asyncio.run(main())
    2
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def install_stop_signals(loop: asyncio.AbstractEventLoop, handler: Callable[[int], None]) -> list[signal.Signals]:
    """Call ``handler(signum)`` on the loop for each stop signal; returns those installed.

    None where they cannot be installed: outside the main thread, or on Windows.
    """
    if threading.current_thread() is not threading.main_thread():
        return []
    installed: list[signal.Signals] = []
    for sig in STOP_SIGNALS:
        try:
            loop.add_signal_handler(sig, handler, sig)
        except (NotImplementedError, RuntimeError):  # Windows, or a non-main thread
            continue
        installed.append(sig)
    return installed


def remove_stop_signals(loop: asyncio.AbstractEventLoop, installed: list[signal.Signals]) -> None:
    for sig in installed:
        loop.remove_signal_handler(sig)
