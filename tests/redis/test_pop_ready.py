"""claim-12.lua takes its ready entries through pop_ready (_common.lua): one reply handed over
as it is, several replies (lists of several priorities, the `ready` ZSET merged with a list of
the same priority) joined in order; nothing popped is lost or served twice."""

from __future__ import annotations

import asyncio

from fastjobs.backends import Ack, AckKind, NewJob
from fastjobs.backends.redis import RedisBackend
from fastjobs.job import new_job_id
from tests.redis.servers import RedisServer


def new(priority: int) -> NewJob:
    return NewJob(new_job_id(), "q", priority, 0.0, 3, b"x", None)


async def test_a_claim_joins_lists_of_several_priorities_and_the_ready_zset_in_order(
    server: RedisServer, open_backend  # type: ignore[no-untyped-def]
) -> None:
    backend: RedisBackend = await open_backend(server.url)
    a, b = new(1), new(1)
    await backend.enqueue_many([a, b])
    (ca,) = await backend.claim(["q"], 1, 30.0)
    assert ca.id == a.id
    # Retried after a delay: back through the `ready` ZSET, behind b (a new position).
    assert await backend.ack_many([Ack(a.id, ca.token, AckKind.RETRY, b"e", 0.05)]) == [True]
    await asyncio.sleep(0.2)
    c, low, high = new(1), new(0), new(2)
    await backend.enqueue_many([c, low, high])
    got = await backend.claim(["q"], 10, 30.0)
    assert [x.id for x in got] == [high.id, b.id, a.id, c.id, low.id]
    assert await backend.claim(["q"], 10, 30.0) == []
    # One reply: a list alone, handed over as it is.
    more = [new(0) for _ in range(5)]
    await backend.enqueue_many(more)
    assert [x.id for x in await backend.claim(["q"], 3, 30.0)] == [j.id for j in more[:3]]
    assert [x.id for x in await backend.claim(["q"], 3, 30.0)] == [j.id for j in more[3:]]
