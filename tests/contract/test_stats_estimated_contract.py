"""Backend.stats_estimated on a small store: the same counts as stats, none estimated."""

from __future__ import annotations

from fastjobs.backends import Ack, AckKind, Backend, NewJob
from fastjobs.job import error_record, new_job_id

LEASE = 30.0


def job(queue: str = "q", delay: float = 0.0) -> NewJob:
    jid = new_job_id()
    return NewJob(jid, queue, 0, delay, 3, jid.encode(), None, 0.0)


async def test_stats_estimated_is_stats_without_estimates_on_a_small_store(backend: Backend) -> None:
    assert await backend.stats_estimated() == (await backend.stats(), {})
    await backend.enqueue_many([job("a"), job("a"), job("a"), job("a", delay=60), job("b"), job("b"), job("c")])
    a1, a2 = await backend.claim(["a"], 2, LEASE)
    await backend.ack_many([Ack(a1.id, a1.token, AckKind.SUCCEED),
                            Ack(a2.id, a2.token, AckKind.DEAD, error_record(1, "E", "x"))])
    await backend.claim(["b"], 1, LEASE)
    await backend.cancel_jobs([(await backend.claim(["c"], 1, LEASE))[0].id])
    counts, estimated = await backend.stats_estimated()
    assert estimated == {}
    assert counts == await backend.stats()
    assert {k: v for k, v in counts["a"].items() if v} == {"queued": 1, "scheduled": 1, "succeeded": 1, "dead": 1}
    assert {k: v for k, v in counts["b"].items() if v} == {"queued": 1, "active": 1}
    assert {k: v for k, v in counts["c"].items() if v} == {"cancelled": 1}
