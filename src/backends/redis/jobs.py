"""The operations layer on Redis: search, acting on jobs by id, history and events.

**Search** (``search-1.lua``, one call per queue, concurrent; merged here by
``(at, id)``). Every queue keeps ordered indexes kept up to date by the scripts
that move jobs (layout in ``lua/_common.lua``): ``done``, ``dead`` and
``cancelled`` (ZSETs scored by finish time) and ``live`` (every job not
finished, scored by enqueue time; one ZADD at enqueue and one ZREM when the job
finishes or is deleted, a batch at a time). A page seeks each index to the
position in O(log N) (ZREVRANK of the position's member, or its score by
ZCOUNT and a binary search by rank inside a group of equal scores: thousands
of jobs of one enqueue or ack batch share one time), so its cost does not
depend on how many jobs are stored. The states ``succeeded``, ``dead`` and
``cancelled``, ``since``/``until`` and the queue are sought; **the state of a
live job (queued, scheduled, active, retry-pending, waiting), the task and the
tag are not**: candidates are checked one by one, at most ``SEARCH_SCAN`` per
queue and call, and the page may come back short with a position to go on
from. A search over every queue asks each queue of the registry and keeps the
matches down to the highest position where a queue stopped early, so the
merged page is exact. A job that moves between two pages may be seen twice or
missed (it changed index); one that stays put is never skipped or repeated.

**Acting by id** (``act-1.lua``): one script call per call outside Cluster
(one per queue in Cluster), ids grouped by queue as acks are (the queue this
instance claimed a job from, else a lookup of the id in every registered
queue: one pipelined round trip). A retry with an edit that names another
queue is two calls: ``adopt-1.lua`` stores the job in the new queue (same
id), then ``act-1.lua`` ('moved') removes it from the old one only if it is
still dead or cancelled (else the new copy is deleted again and the retry
reports False). Written new first, so a crash in between leaves the job in
both queues rather than in none; two scripts rather than one because in
Cluster the queues are two slots.

**History** is written by the ack script itself outside Cluster (its keys lead
the call's keys) and by ``history-2.lua`` beside the ack calls in Cluster: one
round trip either way (an ack call retried after a lost reply adds its rows
again: history is a statistic, not a ledger). **Events** are published by the
scripts (one PUBLISH per call and queue, and only when someone subscribed on
that server: PUBSUB NUMSUB/NUMPAT; always in Cluster) and read here through
redis-py's PubSub on a connection of its own.

Upgrading a store written before issue 13: its succeeded jobs are moved from
the old LIST into ``done`` by :meth:`cleanup`, a chunk per call; jobs that
were live then are not in ``live`` (search finds them once they finish), and
have no ``t:<id>`` (no task or tags).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from typing import Any, Sequence

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..._core import ACTIVE, CANCELLED, DEAD, QUEUED, RETRY_PENDING, SCHEDULED, SUCCEEDED, WAITING
from ..base import MAX_IDS, SEARCH_SCAN, Event, check_search_limit, HistoryPoint, HistoryRow, JobEdit, JobFilter, Position, StoredJob
from ..values import HISTOGRAM_BOUNDS
from .connection import RedisConnection
from .keys import act_keys
from .records import stored_job
from .scripts import SCRIPTS, pack, unpack

_FINISHED_INDEX = {SUCCEEDED: "done", DEAD: "dead", CANCELLED: "cancelled"}
_LIVE = (SCHEDULED, QUEUED, ACTIVE, RETRY_PENDING, WAITING)
_BUCKETS = len(HISTOGRAM_BOUNDS) + 1
_GLOB = re.compile(r"([*?\[\]\\])")


def _position(score: bytes, job_id: bytes) -> Position:
    return round(float(score) * 1_000_000), job_id.decode()


def _seconds(value: float | None) -> str:
    return "" if value is None else repr(float(value))


class JobOperations(RedisConnection):
    """Search, act by id, history and events (see the module docstring)."""

    # -- search -------------------------------------------------------------------

    async def search(
        self, where: JobFilter, limit: int, after: Position | None = None
    ) -> tuple[list[StoredJob], Position | None]:
        check_search_limit(limit)
        states = set(where.states)
        sources: list[str] = []
        live_states: list[str] = []
        if not states:
            sources = ["done", "dead", "cancelled", "live"]
        else:
            sources = [_FINISHED_INDEX[s] for s in (SUCCEEDED, DEAD, CANCELLED) if s in states]
            live = [s for s in _LIVE if s in states]
            if live:
                sources.append("live")
                if len(live) < len(_LIVE):
                    live_states = [str(s) for s in live]
        queues = [where.queue] if where.queue is not None else await self._queues()
        if not queues or not sources:
            return [], None
        request = pack([
            sources, live_states,
            "" if after is None else repr(after[0] / 1_000_000), "" if after is None else after[1],
            _seconds(where.since), _seconds(where.until), where.task or "", where.tag or "", limit, SEARCH_SCAN,
        ])
        script = SCRIPTS["search"]
        replies = await asyncio.gather(*(self._eval(script, (self._queue(q).live,), (request,)) for q in queues))
        found: list[tuple[Position, StoredJob]] = []
        frontier: Position | None = None
        for queue, reply in zip(queues, replies):
            now = float(reply[3])
            for m in reply[4:]:
                job_id, score, record, body, result, errors, progress, deps, parents, limit_key, meta = m
                job = stored_job(
                    job_id.decode(), queue, record, body, result, errors, now, progress, deps, limit_key, parents, meta
                )
                found.append((_position(score, job_id), job))
            if int(reply[0]) and reply[2]:
                stop = _position(reply[1], reply[2])
                if frontier is None or stop > frontier:
                    frontier = stop
        if frontier is not None:
            # Below where a queue stopped early, another queue's matches may
            # be missing some of its own: they come with the next page.
            found = [f for f in found if f[0] >= frontier]
        found.sort(key=lambda f: f[0], reverse=True)
        if len(found) > limit:
            del found[limit:]
            return [job for _, job in found], found[-1][0]
        return [job for _, job in found], frontier

    # -- acting on jobs by id -------------------------------------------------------

    async def _act(self, op: str, job_ids: Sequence[str], edit: bytes = b"") -> list[bool]:
        if len(job_ids) > MAX_IDS:
            raise ValueError(f"at most {MAX_IDS} job ids per call, not {len(job_ids)}")
        if not job_ids:
            return []
        ids = list(job_ids)
        groups, _ = await self._by_queue(ids)
        head = (op, self._result_ttl, self._events_arg, edit)
        return await self._batched(SCRIPTS["act"], act_keys, head, groups, ids)

    async def cancel_jobs(self, job_ids: Sequence[str]) -> list[bool]:
        return await self._act("cancel", job_ids)

    async def delete_jobs(self, job_ids: Sequence[str]) -> list[bool]:
        return await self._act("delete", job_ids)

    async def retry_jobs(self, job_ids: Sequence[str], edit: JobEdit | None = None) -> list[bool]:
        if edit is None:
            return await self._act("retry", job_ids)
        if len(job_ids) != 1:
            raise ValueError("retry_jobs(edit=) takes exactly one job id")
        job_id = job_ids[0]
        found = await self._find(job_id)
        if found is None:
            return [False]
        queue, reply = found
        if edit.queue == queue:
            return await self._act("retry", job_ids, pack([edit.body, edit.priority, edit.max_attempts]))
        return [await self._move(job_id, queue, reply, edit)]

    async def _move(self, job_id: str, queue: str, reply: list[Any], edit: JobEdit) -> bool:
        """Retry a dead or cancelled job into another queue: stored there first, then removed here."""
        _, now, record, body, result, errors = reply[:6]
        progress, deps, parents, limit_key, meta = (list(reply[6:11]) + [None] * 5)[:5]
        job = stored_job(job_id, queue, record, body, result, errors, float(now), progress, deps, limit_key, parents, meta)
        if job.state not in (DEAD, CANCELLED):
            return False
        client = await self._redis()
        if self.cluster:
            await self._register(client, [edit.queue])
        else:
            await client.sadd(self._registry, edit.queue)
        data = pack([
            edit.body, edit.priority, edit.max_attempts, meta or b"", list(job.errors), job.progress or b"",
            job.unique_key or "", job.enqueued_at, job.token,
        ])
        target = self._queue(edit.queue).live
        if int(await self._eval(SCRIPTS["adopt"], (target,), (job_id, data, self._events_arg))) != 1:
            return False
        head = (self._result_ttl, self._events_arg, b"", pack([job_id]))
        moved = await self._eval(SCRIPTS["act"], (self._queue(queue).live,), ("moved", *head))
        if int(moved[0]) != 1:
            # It left dead/cancelled meanwhile (retried, deleted): the copy goes.
            await self._eval(SCRIPTS["act"], (target,), ("delete", *head))
            return False
        return True

    # -- history ----------------------------------------------------------------------

    async def history(
        self, since: float, until: float, step: int = 60, queue: str | None = None, task: str | None = None
    ) -> list[HistoryPoint]:
        if step not in (60, 3600):
            raise ValueError(f"step must be 60 (minutes) or 3600 (hours), not {step!r}")
        client = await self._redis()
        index = self._history.index(step)
        starts = await client.zrangebyscore(index, repr(float(since)), f"({float(until)!r}")
        if not starts:
            return []
        pipe = client.pipeline(transaction=False)
        for start in starts:
            pipe.hgetall(index + b":" + start)
        points: dict[tuple[float, str, str, int], list[Any]] = {}
        for start, fields in zip(starts, await pipe.execute()):
            at = float(start)
            for name, value in fields.items():
                parts = name.decode("utf-8", "replace").split("\t")
                if len(parts) != 4:
                    continue
                q, t, outcome, what = parts
                if (queue is not None and q != queue) or (task is not None and t != task):
                    continue
                point = points.setdefault((at, q, t, int(outcome)), [0, 0.0, [0] * _BUCKETS])
                if what == "n":
                    point[0] += int(value)
                elif what == "s":
                    point[1] += float(value)
                elif what.startswith("b") and what[1:].isdigit() and int(what[1:]) < _BUCKETS:
                    point[2][int(what[1:])] += int(value)
        return [
            HistoryPoint(at, HistoryRow(q, t, outcome, runs, total, tuple(buckets)))
            for (at, q, t, outcome), (runs, total, buckets) in sorted(points.items(), key=lambda p: p[0])
        ]

    # -- events -----------------------------------------------------------------------

    async def events(self, queues: Sequence[str] | None = None) -> AsyncIterator[Event]:
        prefix = self.prefix
        channels = None if queues is None else [f"{prefix}:events:{q}" for q in queues]
        pattern = _GLOB.sub(r"\\\1", prefix) + ":events:*"
        if channels is not None and not channels:
            await asyncio.Event().wait()  # no queue: nothing ever comes
        pubsub: Any = None
        lost_since: float | None = None
        try:
            while True:
                try:
                    if pubsub is None:
                        pubsub = (await self._redis()).pubsub()
                        if channels is not None:
                            await pubsub.subscribe(*channels)
                        else:
                            await pubsub.psubscribe(pattern)
                        lost_since = None
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                    # Subscribe again until connect_timeout, as every operation rides out an outage.
                    now = time.monotonic()
                    lost_since = now if lost_since is None else lost_since
                    if pubsub is not None:
                        await _close_quietly(pubsub)
                        pubsub = None
                    if now - lost_since >= self.options.connect_timeout:
                        raise (self.translate_error(exc) or exc) from exc
                    await asyncio.sleep(0.1)
                    continue
                if message is None or message.get("type") not in ("message", "pmessage"):
                    continue
                try:
                    # {queue, at, kind, id, task, kind, id, task, ...} (see lua/_events.lua)
                    name, at, *flat = unpack(message["data"])
                    when, queue = float(at), str(name)
                except Exception:
                    continue  # not ours: best effort
                for k in range(0, len(flat) - 2, 3):
                    yield Event(str(flat[k]), str(flat[k + 1]), str(flat[k + 2]), queue, when)
        finally:
            if pubsub is not None:
                await _close_quietly(pubsub)


async def _close_quietly(pubsub: Any) -> None:
    try:
        await pubsub.aclose()
    except Exception:
        pass


__all__ = ["JobOperations"]
