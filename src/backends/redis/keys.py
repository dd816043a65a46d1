"""The key layout: every key of a queue, pre-encoded and grouped as each script takes them.

The full layout, with what each key holds, is documented once, in
``lua/_common.lua``. Every key of a queue is ``<prefix>:{<queue>}:...``: the
hash tag puts a queue in one Cluster slot, so each script touches one slot.
"""

from __future__ import annotations

from operator import attrgetter

from ..._core import CANCELLED, DEAD, SUCCEEDED


class QueueKeys:
    """The keys of one queue, pre-encoded, grouped as each script takes them (see lua/_common.lua)."""

    __slots__ = (
        "queue", "base", "ready", "prio", "sched", "retry", "leases", "enqueue", "claim", "ack", "renew",
        "peek", "wake", "paused", "resume", "recover", "promote", "shift", "stats", "cleanup",
        "finished", "waiting", "limitwait", "live", "act",
    )

    def __init__(self, prefix: str, queue: str) -> None:
        self.queue = queue
        base = f"{prefix}:{{{queue}}}:"
        self.base = base.encode()

        def k(name: str) -> bytes:
            return (base + name).encode()

        ready, prio, sched, retry = k("ready"), k("prio"), k("sched"), k("retry")
        leases, leasecount, ghosts = k("leases"), k("leasecount"), k("ghosts")
        succeeded, cancelled, dead = k("done"), k("cancelled"), k("dead")
        unique, seq, wake, paused = k("unique"), k("seq"), k("wake"), k("paused")
        held = k("uniqueheld")
        self.ready, self.prio, self.sched, self.retry, self.leases = ready, prio, sched, retry, leases
        self.enqueue = (prio, sched, unique, seq, wake, held)
        self.claim = (ready, prio, sched, retry, leases, leasecount, dead, unique, seq, wake, ghosts, paused)
        self.ack = (leases, leasecount, prio, retry, succeeded, dead, unique, seq, wake, held)
        self.renew = (leases, leasecount, seq)
        self.peek = (ready, prio, sched, retry, leases, wake, paused)
        self.wake = wake
        self.paused = paused
        self.resume = (paused, wake)
        self.recover = (prio, leases, leasecount, dead, unique, seq, wake)
        self.promote = (ready, sched, retry, wake)
        self.shift = (sched, retry, wake)
        self.stats = (ready, prio, sched, retry, leasecount, succeeded, dead, cancelled, ghosts)
        self.cleanup = (succeeded, cancelled, dead, unique, held)
        self.finished = {SUCCEEDED: succeeded, DEAD: dead, CANCELLED: cancelled}
        self.waiting, self.limitwait = k("waiting"), k("limitwait")
        self.live = k("live")
        self.act = (self.live,)

    def job(self, job_id: str) -> tuple[bytes, bytes, bytes, bytes, bytes]:
        """The job's record, body, result, error-list and progress keys."""
        jid = job_id.encode()
        base = self.base
        return base + b"j:" + jid, base + b"b:" + jid, base + b"r:" + jid, base + b"e:" + jid, base + b"p:" + jid

    def lookup(self, job_id: str) -> tuple[bytes, ...]:
        """The keys the get script reads: record, body, result, errors, progress, dependency counts,
        parents, limit key, task and tags."""
        jid = job_id.encode()
        base = self.base
        return (
            base + b"j:" + jid, base + b"b:" + jid, base + b"r:" + jid, base + b"e:" + jid, base + b"p:" + jid,
            base + b"d:" + jid, base + b"dp:" + jid, base + b"l:" + jid, base + b"t:" + jid,
        )

    def parked(self, key: bytes) -> bytes:
        """The ZSET of the queued jobs a limit key parked (see lua/_common.lua)."""
        return self.base + b"lq:" + key

    def ready_list(self, score: bytes) -> bytes:
        """The ready LIST of one priority score (a member of ``prio``)."""
        return self.base + b"rl:" + score

    def lease_batch(self, batch: bytes) -> bytes:
        """The LIST of the job ids one lease batch holds (a member of ``leases``)."""
        return self.base + b"lease:" + batch

    def progress(self, job_id: str) -> tuple[bytes, bytes]:
        """The keys set_progress takes: the job's record and progress."""
        jid = job_id.encode()
        return self.base + b"j:" + jid, self.base + b"p:" + jid


class HistoryKeys:
    """The history's keys (see lua/_history.lua): a hash tag of their own, ``{~history}``."""

    __slots__ = ("base", "minutes", "hours", "lead")

    def __init__(self, prefix: str) -> None:
        self.base = f"{prefix}:{{~history}}:".encode()
        self.minutes, self.hours = self.base + b"m", self.base + b"h"
        self.lead = (self.minutes, self.hours)

    def index(self, step: int) -> bytes:
        """The index ZSET of the minute (60) or hour (3600) points."""
        return self.minutes if step == 60 else self.hours


class WorkerKeys:
    """The live worker registry's keys (see lua/_common.lua): a hash tag of their own,
    ``{~workers}``, which no queue name can take (queue names start with a letter or digit)."""

    __slots__ = ("base", "beats")

    def __init__(self, prefix: str) -> None:
        self.base = f"{prefix}:{{~workers}}:".encode()
        self.beats = self.base + b"beats"

    def worker(self, worker_id: str) -> tuple[bytes, bytes]:
        """The keys the per-worker scripts take: the beats ZSET and the worker's hash."""
        return self.beats, self.base + b"w:" + worker_id.encode()


# The key group of each per-queue script, as the fan-out helpers take them.
ack_keys = attrgetter("ack")
renew_keys = attrgetter("renew")
recover_keys = attrgetter("recover")
promote_keys = attrgetter("promote")
shift_keys = attrgetter("shift")
cleanup_keys = attrgetter("cleanup")
act_keys = attrgetter("act")
stats_keys = attrgetter("stats")
