"""Record decoding: a job's record string and its companion keys, read into a StoredJob.

A record has two layouts, documented once, in ``lua/_common.lua``: layout 1
(binary: the struct format ``V1.format`` there, which :data:`LUA_FORMAT`
repeats and a test compares), which every script writes, and the text layout
of fastjobs before it (fields separated by ``|``, the unique key last), which
records stored by an older version still hold until a script rewrites them.
Both read into the same :class:`Record`, whose fields are the text layout's
(the scripts' ``R_*`` position constants follow its order: a test checks), so
a job reads the same whichever layout holds it. Only inspection calls
(``get``, ``list_jobs``) decode records in Python; the hot paths stay in the
scripts.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

import msgpack  # type: ignore[import-untyped, unused-ignore]

from ..._core import ACTIVE, CANCELLED, DEAD, QUEUED, RETRY_PENDING, SCHEDULED, STATE_NAMES, SUCCEEDED
from ..base import StoredJob


class Record(NamedTuple):
    """The fields of a job record string, in their stored order (raw bytes)."""

    state: bytes
    attempt: bytes
    max_attempts: bytes
    token: bytes
    score: bytes
    """-priority: the job's score in the ready structures."""
    seq: bytes
    enqueued_at: bytes
    run_at: bytes
    """Empty: the same as enqueued_at."""
    started_at: bytes
    finished_at: bytes
    nonce: bytes
    ack_nonce: bytes
    lease_until: bytes
    lease_batch: bytes
    flags: bytes
    unique_key: bytes

    @classmethod
    def parse(cls, record: bytes) -> Record:
        """The fields of ``record`` (either layout), as the text layout holds them; an
        unreadable one reads as dead, as claim would make it."""
        if record[:1] == _V1:
            return _parse_v1(record)
        fields = record.split(b"|", len(cls._fields) - 1)
        if len(fields) != len(cls._fields):
            return _UNREADABLE
        return cls._make(fields)


_UNREADABLE = Record._make([str(DEAD).encode()] + [b""] * (len(Record._fields) - 1))

LUA_FORMAT = ">BBBBBI4i4i4ddI8di4i4ddc0c0c0I8"
"""Layout 1 as ``V1.format`` in ``lua/_common.lua`` spells it (Redis' Lua struct, which packs a
``c0`` string whole): the fixed part, :data:`_V1_FIXED` here, then ack_nonce, nonce and
unique_key (their lengths are in the fixed part), then seq."""

_V1 = b"\x01"
_V1_FIXED = struct.Struct(">BBBBBIiiddQdiidd")
_SEQ = struct.Struct(">Q")
_FLAG_CHARS = b"1pwdl"
_NONCE_HEX, _ACK_NONCE_HEX = 32, 64


def _time(t: float) -> bytes:
    return b"%.6f" % t if t != 0 else b""


def _nonce(raw: bytes, packed: bool) -> bytes:
    return raw.hex().encode() if packed else raw


def _parse_v1(record: bytes) -> Record:
    if len(record) < _V1_FIXED.size + _SEQ.size:
        return _UNREADABLE
    (_, state, mask, al, nl, ul, attempt, token, started_at, lease_until, lease_batch, finished_at, max_attempts,
     score, enqueued_at, run_at) = _V1_FIXED.unpack_from(record)
    a = _V1_FIXED.size
    if len(record) != a + al + nl + ul + _SEQ.size:
        return _UNREADABLE
    (seq,) = _SEQ.unpack_from(record, len(record) - _SEQ.size)
    return Record(
        str(state).encode(), str(attempt).encode(), str(max_attempts).encode(), str(token).encode(),
        str(score).encode(), b"%016d" % seq if seq else b"", _time(enqueued_at), _time(run_at), _time(started_at),
        _time(finished_at), _nonce(record[a + al:a + al + nl], bool(mask & _NONCE_HEX)),
        _nonce(record[a:a + al], bool(mask & _ACK_NONCE_HEX)), _time(lease_until),
        str(lease_batch).encode() if lease_batch else b"",
        bytes(c for i, c in enumerate(_FLAG_CHARS) if mask & (1 << i)), record[a + al + nl:a + al + nl + ul],
    )


def _int(value: bytes | None, default: int = 0) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        try:
            return int(float(value))  # type: ignore[arg-type]
        except ValueError:
            return default


def _float(value: bytes | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _dependency_counts(deps: bytes | None) -> tuple[int, int]:
    """(pending, failed) from a dependant's ``d:<id>`` value, "mode|pending|failed|delay"."""
    if deps:
        parts = deps.split(b"|", 3)
        if len(parts) == 4:
            return max(0, _int(parts[1])), _int(parts[2])
    return 0, 0


def _parent_ids(packed: bytes | None) -> tuple[str, ...]:
    """The parent ids of ``dp:<id>`` (a msgpack array); () if absent or unreadable."""
    if not packed:
        return ()
    try:
        return tuple(
            p.decode("utf-8", "replace") if isinstance(p, bytes) else str(p)
            for p in msgpack.unpackb(packed, raw=True)
        )
    except Exception:
        return ()


def task_and_tags(meta: bytes | None) -> tuple[str, tuple[str, ...]]:
    """The task and tags of a job's ``t:<id>`` value (task, then tags, tab-separated)."""
    if not meta:
        return "", ()
    task, *tags = meta.decode("utf-8", "replace").split("\t")
    return task, tuple(tags)


def stored_job(
    job_id: str, queue: str, record: bytes, body: bytes | None, result: bytes | None,
    errors: list[bytes] | None, now: float, progress: bytes | None = None,
    deps: bytes | None = None, limit_key: bytes | None = None, parent_ids: bytes | None = None,
    meta: bytes | None = None,
) -> StoredJob:
    """A StoredJob from the job record string (see lua/_common.lua) and its companions."""
    rec = Record.parse(record)
    state = _int(rec.state, DEAD)
    if not 0 <= state < len(STATE_NAMES):
        state = DEAD
    enqueued_at = _float(rec.enqueued_at) or 0.0
    run_at = _float(rec.run_at) or enqueued_at
    if state in (SCHEDULED, RETRY_PENDING) and run_at <= now:
        state = QUEUED
    pending, failed = _dependency_counts(deps)
    task, tags = task_and_tags(meta)
    return StoredJob(
        id=job_id,
        queue=queue,
        state=state,
        priority=-_int(rec.score),
        attempt=_int(rec.attempt),
        max_attempts=_int(rec.max_attempts),
        token=_int(rec.token),
        body=body or b"",
        result=result,
        errors=list(errors or ()),
        enqueued_at=enqueued_at,
        run_at=run_at,
        started_at=_float(rec.started_at),
        finished_at=_float(rec.finished_at) if state in (SUCCEEDED, DEAD, CANCELLED) else None,
        lease_until=_float(rec.lease_until) if state == ACTIVE else None,
        unique_key=rec.unique_key.decode("utf-8", "replace") if rec.unique_key else None,
        progress=progress,
        parents=_parent_ids(parent_ids),
        pending_parents=pending,
        failed_parents=failed,
        limit_key=limit_key.decode("utf-8", "replace") if limit_key else None,
        task=task,
        tags=tags,
    )


__all__ = ["LUA_FORMAT", "Record", "stored_job", "task_and_tags"]
