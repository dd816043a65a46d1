"""What crosses between the PostgreSQL backend and its SQL, besides plain values:
job rows, read by column name, and the lease-expired error record the SQL fills in.

Example:
    >>> head, mid, tail = LEASE_ERROR
    >>> b"LeaseExpiredError" in mid
    True
"""

from __future__ import annotations

import struct
from typing import Any

from ...job import lease_expired_error
from ..base import StoredJob


def stored_job(row: Any) -> StoredJob:
    """A ``get`` / ``list_live`` / ``list_finished`` / search row (columns named as StoredJob's fields)."""
    # Keyword arguments: a field added to StoredJob out of order cannot shift the others.
    return StoredJob(
        id=row["id"], queue=row["queue"], state=row["state"], priority=row["priority"], attempt=row["attempt"],
        max_attempts=row["max_attempts"], token=row["token"], body=row["body"], result=row["result"],
        errors=list(row["errors"] or ()), enqueued_at=row["enqueued_at"], run_at=row["run_at"],
        started_at=row["started_at"], finished_at=row["finished_at"], lease_until=row["lease_until"],
        unique_key=row["unique_key"], progress=row["progress"], parents=tuple(row["parents"] or ()),
        pending_parents=row["pending_parents"], failed_parents=row["failed_parents"], limit_key=row["limit_key"],
        task=row["task"], tags=tuple(row["tags"] or ()),
    )


def _lease_error_parts() -> tuple[bytes, bytes, bytes]:
    """The lease-expired error record cut around its attempt and its time.

    The SQL rebuilds each job's record as ``head || int4send(attempt) || mid ||
    float8send(epoch) || tail``: msgpack's uint32 (0xce) and float64 (0xcb)
    encodings are fixed-width, so marker values that force them locate the cuts.
    The record, hence its message (``fastjobs.job.LEASE_EXPIRED_MESSAGE``), is
    the job module's; the SQL only ever receives it as parameters.
    """
    attempt_mark = 0xFEDCBA98
    at_mark = struct.unpack(">d", b"\x7f\xe1\x23\x45\x67\x89\xab\xcd")[0]
    record = lease_expired_error(attempt_mark, at_mark)
    attempt_bytes = b"\xce" + attempt_mark.to_bytes(4, "big")
    at_bytes = b"\xcb" + struct.pack(">d", at_mark)
    i, j = record.index(attempt_bytes), record.index(at_bytes)
    if record.count(attempt_bytes) != 1 or record.count(at_bytes) != 1 or not i < j:
        raise RuntimeError("cannot build the lease-expired error template")
    return record[: i + 1], record[i + 5 : j + 1], record[j + 9 :]


LEASE_ERROR = _lease_error_parts()
