"""``python -m benchmarks.latency``: the latency stage alone, at a fixed rate, on a private Redis."""

from __future__ import annotations

import json

import pytest

from benchmarks import latency
from tests.redis.servers import RedisServer


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_the_latency_stage_runs_at_the_rate_asked_and_counts_the_servers_commands(
    backend: str, server: RedisServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FASTJOBS_REDIS_URL", server.url)  # it resets the server's command counts
    assert latency.main(["--backend", backend, "--rate", "200", "--samples", "300", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["backend"] == backend and out["samples"] == 300 and out["lost"] == 0
    assert 150 <= out["rate_reached"] <= 201  # paced, not back to back
    assert 0 < out["p50_ms"] <= out["p90_ms"] <= out["p99_ms"]
    if backend == "redis":
        calls = out["commands_per_job"]
        scripts = calls.get("fcall", 0) + calls.get("evalsha", 0)
        assert scripts >= 2, calls  # each job: its enqueue, and a claim or a share of one
        assert calls.get("blpop", 0) > 0, calls  # the worker waited between jobs
        assert "ping" not in calls, calls  # the bare round trips ran before the counts restarted
        assert 0 < out["round_trip_p50_ms"] <= out["round_trip_p99_ms"]
    else:
        assert "commands_per_job" not in out
        assert "round_trip_p50_ms" not in out  # memory:// has no round trip to time
