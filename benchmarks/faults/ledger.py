"""The ledger: every handler execution, recorded outside the job store.

Each worker process appends fixed-size records to one file opened with
``O_APPEND``; a record is one ``os.write`` of :data:`RECORD.size` bytes, which
the kernel appends atomically, so records of concurrent processes never
interleave and a process killed mid-job leaves whole records only (a start
without its end). Times are the machine's real clock (``CLOCK_REALTIME``, read
through :func:`true_time`, never the clock a skewed worker sees), so records of
every process compare.

The analysis pairs starts with ends into :class:`Execution` s and counts, per
job: lost (acknowledged at enqueue, never ended), duplicate runs (starts beyond
the first), the duplicates a fault explains (an earlier run of the job was in
progress in a process, or on a server, when a fault hit it), and overlaps (two
runs of one job at the same time).
"""

from __future__ import annotations

import os
import struct
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

RECORD = struct.Struct("<c32sIId?14x")
"""kind (S start, E end), job id, pid, attempt, true wall time, ok; padded to 64 bytes."""
assert RECORD.size == 64

START, END = b"S", b"E"
ACK_WINDOW = 0.5
"""A run that ended this soon before its process died may not have had its ack sent yet:
a kill or a crash explains its duplicate too (the worker flushes acks every 2 ms, plus a round trip)."""


def true_time() -> float:
    """The real wall clock, whatever ``time.time`` was patched to in this process."""
    return time.clock_gettime(time.CLOCK_REALTIME)


class LedgerWriter:
    """Appends records to the ledger file (one per worker process)."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.pid = os.getpid()

    def write(self, kind: bytes, job_id: str, attempt: int, ok: bool = True) -> None:
        os.write(self.fd, RECORD.pack(kind, job_id.encode(), self.pid, attempt, true_time(), ok))


@dataclass
class Execution:
    job: str
    pid: int
    attempt: int
    start: float
    end: float | None = None
    ok: bool = False
    """It ran to its end (not cancelled)."""


@dataclass
class Fault:
    """One injected fault: a process (``pid``) or the server (``pid`` 0) hit at ``at``.

    ``until``: when a stall or an outage ended, or when a signalled process exited.
    """

    kind: str
    at: float
    pid: int = 0
    until: float | None = None


@dataclass
class Tally:
    jobs: int = 0
    lost: list[str] = field(default_factory=list)
    duplicates: int = 0
    explained: int = 0
    overlaps: int = 0
    executions: int = 0
    """Runs of the acked jobs."""
    torn: int = 0
    """Bytes at the end of the file that do not make a whole record (must be 0)."""


def read(path: str) -> tuple[list[Execution], int]:
    """The executions in the file, in start order, and the count of torn trailing bytes."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return [], 0
    whole = len(data) - len(data) % RECORD.size
    open_runs: dict[tuple[str, int, int], Execution] = {}
    runs: list[Execution] = []
    for kind, raw_id, pid, attempt, at, ok in RECORD.iter_unpack(data[:whole]):
        job = raw_id.rstrip(b"\0").decode()
        key = (job, pid, attempt)
        if kind == START:
            run = Execution(job, pid, attempt, at)
            open_runs[key] = run
            runs.append(run)
        elif kind == END and key in open_runs:
            run = open_runs.pop(key)
            run.end, run.ok = at, ok
    runs.sort(key=lambda r: r.start)
    return runs, len(data) - whole


def by_job(runs: Iterable[Execution]) -> dict[str, list[Execution]]:
    jobs: dict[str, list[Execution]] = defaultdict(list)
    for run in runs:
        jobs[run.job].append(run)
    return jobs


def _hit(run: Execution, faults: list[Fault]) -> float | None:
    """When a fault hit this run while it was in progress (its process, or the server), else None."""
    for fault in faults:
        if fault.pid:
            # A process fault (kill, crash, stall) explains the runs in progress in
            # that process when it hit (they could not end, or renew their lease),
            # and those that had just ended (their ack may not have left yet).
            if fault.pid == run.pid and run.start <= fault.at and (
                    run.end is None or run.end >= fault.at - ACK_WINDOW):
                return fault.at
        else:
            # A server outage explains the runs still going when the server came
            # back: their leases ran out with no way to renew them. A run that ended
            # during the outage had its outcome ready: acknowledging it before
            # claiming again avoids the duplicate (issue 12, gap 2).
            until = fault.until if fault.until is not None else fault.at
            if run.start <= until and (run.end is None or run.end >= until):
                return fault.at
    return None


def tally(path: str, acked: Iterable[str], faults: list[Fault], horizon: float | None = None) -> Tally:
    """Count lost, duplicate, explained and overlapping runs of the jobs ``acked`` at enqueue.

    Args:
        path: the ledger file.
        acked: ids whose enqueue returned (the jobs that must run).
        faults: what was injected, for explaining duplicates.
        horizon: where a run that never ended is taken to stop, for overlaps
            (default: the kill of its process, else now).
    """
    runs, torn = read(path)
    jobs = by_job(runs)
    acked = list(acked)
    result = Tally(jobs=len(acked), executions=sum(len(jobs.get(j, ())) for j in acked), torn=torn)
    result.lost = [j for j in acked if not any(r.ok for r in jobs.get(j, ()))]
    stop = horizon if horizon is not None else true_time()
    for job in acked:
        job_runs = jobs.get(job, [])
        if len(job_runs) < 2:
            continue
        result.duplicates += len(job_runs) - 1
        for i, later in enumerate(job_runs[1:], 1):
            if any(_hit(earlier, faults) is not None for earlier in job_runs[:i]):
                result.explained += 1
        spans = []
        for r in job_runs:
            end = r.end
            if end is None:  # it stopped when its process was killed or exited, if it was
                hits = [f.until or f.at for f in faults if f.pid == r.pid and f.at >= r.start]
                end = min(hits) if hits else stop
            spans.append((r.start, end))
        for i, (s1, e1) in enumerate(spans):
            result.overlaps += sum(1 for s2, e2 in spans[i + 1:] if s2 < e1 and s1 < e2)
    return result
