"""A worker's place in the backend's registry of live workers (``app.workers()``).

The worker registers when it starts, beats with every lease renewal (the beat
rides in the same round trip) and deregisters when it stops; a worker whose beats
stop is listed as gone once its ttl passed.

Example:
    >>> from fastjobs.registry import Membership
    >>> member = Membership(queues=["emails"], concurrency=10, leases=[30.0])
    >>> member.beat_period, member.beat_ttl
    (10.0, 30.0)
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections.abc import Iterable, Sequence

from ._version import __version__
from .backends.base import Backend, Beat, WorkerInfo

log = logging.getLogger("fastjobs.worker")


class Membership:
    """This worker's id and record in the registry, and whether the backend has it.

    Args:
        queues: the queues it serves.
        concurrency: its slots.
        leases: the lease durations its jobs use (the App's and the tasks' own):
            it beats every third of the shortest.
    """

    def __init__(self, queues: Sequence[str], concurrency: int, leases: Iterable[float]) -> None:
        hostname = socket.gethostname()
        # A random part: pids are reused, and containers on one host share hostnames and pids.
        self.id = f"{hostname}:{os.getpid()}:{secrets.token_hex(3)}"
        self.info = WorkerInfo(self.id, hostname, os.getpid(), tuple(queues), concurrency, __version__, 0.0, 0.0)
        self.beat_period = max(0.05, min(leases) / 3)
        """Seconds between renewals, each carrying a beat: a third of the shortest lease."""
        # Three periods: one late or lost beat must not make a busy worker look dead.
        self.beat_ttl = 3 * self.beat_period
        self.registered = False

    async def register(self, backend: Backend) -> None:
        """Enter the registry; on failure the next beat tries again (a worker runs its
        jobs whether or not it is listed)."""
        try:
            await backend.register_worker(self.info, self.beat_ttl)
        except Exception as exc:
            log.warning("could not register this worker (%s: %s); trying again at the next beat", type(exc).__name__, exc)
        else:
            self.registered = True

    async def deregister(self, backend: Backend) -> None:
        """Leave the registry at once: a worker that stopped cleanly is not listed as gone."""
        try:
            await backend.deregister_worker(self.id)
        except Exception as exc:
            log.warning("could not deregister this worker (%s: %s); it is listed as gone after %.0f s",
                        type(exc).__name__, exc, self.beat_ttl)

    def beat(self, running: Iterable[str]) -> Beat | None:
        """The beat for the next renewal, with the ids of the jobs running; None until registered."""
        return Beat(self.id, tuple(running), self.beat_ttl) if self.registered else None
