"""The shared contract suite, unchanged, on a local Redis Cluster of three masters.

The contract modules are imported whole; only the fixtures that pick the
backend are overridden here, so every test runs against ``redis://`` pointed
at a Cluster node (the backend detects Cluster mode and spreads queues over
the masters by their hash tags). Skipped, with the reason, where no
redis-server binary is installed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

import fastjobs
from tests.backends import unique_prefix
from tests.contract.conftest import backend, make_app, make_backend  # noqa: F401  (fixtures)
from tests.contract.test_backend_contract import *  # noqa: F403
from tests.contract.test_worker_contract import *  # noqa: F403
from tests.contract.test_workers_contract import *  # noqa: F403
from tests.contract.test_search_contract import *  # noqa: F403
from tests.contract.test_actions_contract import *  # noqa: F403
from tests.contract.test_history_contract import *  # noqa: F403
from tests.contract.test_events_contract import *  # noqa: F403

pytestmark = pytest.mark.slow


@pytest.fixture
def redis_url(cluster_url: str) -> str:
    return cluster_url


@pytest.fixture(params=["redis"])
def backend_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def app(cluster_url: str) -> AsyncIterator[fastjobs.App]:  # noqa: F811  (replaces the contract's)
    application = fastjobs.App(cluster_url, prefix=unique_prefix(), lease=5.0)
    yield application
    await application.close()


async def test_the_backend_runs_in_cluster_mode(backend: fastjobs.backends.Backend) -> None:  # noqa: F811
    assert getattr(backend, "cluster", False) is True


async def test_a_wait_on_queues_of_several_nodes(cluster_url: str) -> None:
    """One BLPOP per queue (their keys live on different nodes); the first wake-up ends them all."""
    import asyncio
    import time

    from fastjobs.backends import BackendOptions, NewJob, create_backend
    from fastjobs.job import new_job_id

    b = create_backend(cluster_url, BackendOptions(prefix=unique_prefix()))
    await b.connect()
    try:
        queues = [f"q{i}" for i in range(6)]  # spread over the three masters
        started = time.monotonic()
        await b.wait(queues, 0.3)
        assert 0.2 < time.monotonic() - started < 2.0

        async def enqueue_soon() -> None:
            await asyncio.sleep(0.1)
            await b.enqueue_many([NewJob(new_job_id(), "q4", 0, 0.0, 3, b"x")])

        for _ in range(3):  # the blockers are reused, and still work
            producer = asyncio.ensure_future(enqueue_soon())
            started = time.monotonic()
            await b.wait(queues, 10.0)
            assert time.monotonic() - started < 2.0
            await producer
            assert len(await b.claim(["q4"], 10, 30.0)) == 1
    finally:
        await b.close()
