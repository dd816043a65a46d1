"""How every library's job body reports that it ran, and how the harness counts and checks it.

The job body of every library calls :func:`append_record` with the job's index: one
:data:`RECORD_SIZE`-byte record, written with a single ``os.write`` on a descriptor opened
with ``O_APPEND``. On a local file such a write lands whole and at the end, whichever thread
or process makes it, so the file's size divided by the record size is the number of jobs
that ran, and its content says which: the same completion signal for every library.

This module is imported by the peers' worker processes, in their own virtualenvs: standard
library only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

RECORD_SIZE = 32
RECORDS_ENV = "FASTJOBS_COMPARE_RECORDS"
"""The environment variable naming the records file (set by the harness for the worker)."""

_fd: list[int] = []


def record_line(index: int) -> bytes:
    """The record of job ``index``: zero-padded decimal and a newline, :data:`RECORD_SIZE` bytes."""
    return b"%0*d\n" % (RECORD_SIZE - 1, index)


def append_record(index: int) -> None:
    """Record, in one atomic append, that job ``index`` ran (the job body of every library)."""
    if not _fd:
        # Opened once per process; a race between two threads opening it at once only
        # costs a second descriptor on the same file, and either appends whole records.
        _fd.append(os.open(os.environ[RECORDS_ENV], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644))
    os.write(_fd[0], record_line(index))


def count_records(path: str) -> int:
    """How many jobs have recorded so far (a partial record, if the writer is mid-write, is not counted)."""
    try:
        return os.stat(path).st_size // RECORD_SIZE
    except FileNotFoundError:
        return 0


@dataclass
class Check:
    """What the records file says about exactly-once: every expected index once, nothing else."""

    expected: int
    recorded: int
    duplicates: int
    """Records beyond the first of an index that ran more than once."""
    missing: int
    """Indexes in ``range(expected)`` with no record."""
    malformed: int
    """Records that are not an index in range (a torn write would show here)."""

    @property
    def ok(self) -> bool:
        return self.duplicates == 0 and self.missing == 0 and self.malformed == 0 and self.recorded == self.expected

    def summary(self) -> str:
        if self.ok:
            return "ok"
        parts = [f"{n:,} {what}" for n, what in ((self.duplicates, "duplicate"), (self.missing, "missing"),
                                                  (self.malformed, "malformed")) if n]
        return "FAILED: " + (", ".join(parts) or f"{self.recorded:,} of {self.expected:,} recorded")


def check_exactly_once(path: str, expected: int) -> Check:
    """Read the records file: each index in ``range(expected)`` must appear exactly once."""
    with open(path, "rb") as f:
        data = f.read()
    seen = bytearray(expected)
    duplicates = malformed = 0
    usable = len(data) - len(data) % RECORD_SIZE
    malformed += 1 if usable != len(data) else 0
    for start in range(0, usable, RECORD_SIZE):
        record = data[start:start + RECORD_SIZE]
        if record[-1:] != b"\n" or not record[:-1].isdigit():
            malformed += 1
            continue
        index = int(record[:-1])
        if index >= expected:
            malformed += 1
        elif seen[index]:
            duplicates += 1
        else:
            seen[index] = 1
    missing = expected - sum(seen)
    return Check(expected, usable // RECORD_SIZE, duplicates, missing, malformed)
