"""Micro-benchmarks of the msgpack job codec, compiled against pure side by side.

Every enqueue encodes a job and every claim decodes one, so these time both on
1,000 typical jobs per round (a 32-hex-char id, ``app.tasks.send_email``, two
positional arguments, one keyword, every other field at its default). The
baseline is the naive codec the compiled one must beat: a dict of the 16
fields through ``msgpack.packb`` and ``msgpack.unpackb``.

    python -m pytest benchmarks/test_micro_codec.py --benchmark-enable -q
"""

from __future__ import annotations

import types
from typing import TYPE_CHECKING, Any

import msgpack

if TYPE_CHECKING:
    from pytest_benchmark.fixture import BenchmarkFixture

JOBS = 1_000


def _fields(i: int) -> dict[str, Any]:
    return {
        "id": f"{i:032x}",
        "task": "app.tasks.send_email",
        "queue": "default",
        "args": ("a@b.c", 42),
        "kwargs": {"subject": "hi"},
    }


def _jobs(codec: types.ModuleType) -> list[Any]:
    return [codec.JobRecord(**_fields(i)) for i in range(JOBS)]


def test_encode_decode(benchmark: BenchmarkFixture, core: types.SimpleNamespace) -> None:
    benchmark.group = "codec encode+decode"
    benchmark.extra_info["implementation"] = core.kind
    benchmark.extra_info["jobs"] = JOBS
    jobs = _jobs(core.codec)
    encode, decode = core.codec.encode_job, core.codec.decode_job

    def round_trip() -> int:
        attempts = 0
        for job in jobs:
            attempts += decode(encode(job)).max_attempts
        return attempts

    assert benchmark(round_trip) == JOBS


def test_encode_decode_baseline(benchmark: BenchmarkFixture) -> None:
    """The bar to clear: the 16 fields as a msgpack map, no checks, no record built."""
    benchmark.group = "codec encode+decode"
    benchmark.extra_info["implementation"] = "baseline dict+packb"
    benchmark.extra_info["jobs"] = JOBS
    defaults: dict[str, Any] = {"priority": 0, "attempt": 0, "max_attempts": 1, "run_at": 0.0,
                "enqueued_at": 0.0, "timeout": None, "backoff": None, "unique_key": None,
                "parents": (), "meta": {}}  # fmt: skip
    jobs = [types.SimpleNamespace(**_fields(i), **defaults) for i in range(JOBS)]
    packb, unpackb = msgpack.packb, msgpack.unpackb

    def round_trip() -> int:
        attempts = 0
        for job in jobs:
            record = {
                "schema_version": 1, "id": job.id, "task": job.task, "queue": job.queue,
                "args": job.args, "kwargs": job.kwargs, "priority": job.priority,
                "attempt": job.attempt, "max_attempts": job.max_attempts,
                "run_at": job.run_at, "enqueued_at": job.enqueued_at, "timeout": job.timeout,
                "backoff": job.backoff, "unique_key": job.unique_key, "parents": job.parents,
                "meta": job.meta,
            }  # fmt: skip
            attempts += unpackb(packb(record))["max_attempts"]
        return attempts

    assert benchmark(round_trip) == JOBS


def test_encode(benchmark: BenchmarkFixture, core: types.SimpleNamespace) -> None:
    benchmark.group = "codec encode"
    benchmark.extra_info["implementation"] = core.kind
    jobs = _jobs(core.codec)
    encode = core.codec.encode_job

    def encode_all() -> int:
        return sum(len(encode(job)) for job in jobs)

    assert benchmark(encode_all) > 100 * JOBS


def test_decode(benchmark: BenchmarkFixture, core: types.SimpleNamespace) -> None:
    benchmark.group = "codec decode"
    benchmark.extra_info["implementation"] = core.kind
    encoded = [core.codec.encode_job(job) for job in _jobs(core.codec)]
    decode = core.codec.decode_job

    def decode_all() -> int:
        return sum(decode(data).max_attempts for data in encoded)

    assert benchmark(decode_all) == JOBS


def test_result_value(benchmark: BenchmarkFixture, core: types.SimpleNamespace) -> None:
    """What a worker does with each return value: encode it, and the caller decodes it."""
    benchmark.group = "codec result encode+decode"
    benchmark.extra_info["implementation"] = core.kind
    results = [{"sent": True, "message_id": f"<{i}@mail>", "recipients": ["a@b.c"]} for i in range(JOBS)]
    encode, decode = core.codec.encode_value, core.codec.decode_value

    def round_trip() -> int:
        return sum(len(decode(encode(result))) for result in results)

    assert benchmark(round_trip) == 3 * JOBS
