"""``python -m benchmarks.latency`` on PostgreSQL: the jobs' figures and a bare round trip's."""

from __future__ import annotations

import json

import pytest

from benchmarks import latency


def test_the_latency_stage_times_jobs_and_a_bare_round_trip_at_the_same_pace(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FASTJOBS_DATABASE_URL", postgres_url)
    assert latency.main(["--backend", "postgres", "--rate", "200", "--samples", "200", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["backend"] == "postgres" and out["samples"] == 200 and out["lost"] == 0
    assert 150 <= out["rate_reached"] <= 201
    assert 0 < out["p50_ms"] <= out["p90_ms"] <= out["p99_ms"]
    assert 0 < out["round_trip_p50_ms"] <= out["round_trip_p99_ms"]
    assert "commands_per_job" not in out  # counted on Redis only


def test_the_text_output_names_the_round_trip(postgres_url: str, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FASTJOBS_DATABASE_URL", postgres_url)
    assert latency.main(["--backend", "postgres", "--rate", "400", "--samples", "100"]) == 0
    text = capsys.readouterr().out
    assert "enqueue to start p50" in text
    assert "a bare round trip at this pace: p50" in text
