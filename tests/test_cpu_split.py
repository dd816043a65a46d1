"""``python -m benchmarks.cpu_split``: CPU per job in this process and in the server, on real servers."""

from __future__ import annotations

import json

import pytest

from benchmarks import cpu_split


def test_the_split_counts_the_servers_cpu_apart_from_this_process(
    redis_url: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FASTJOBS_REDIS_URL", redis_url)
    monkeypatch.setenv("FASTJOBS_DATABASE_URL", postgres_url)
    assert cpu_split.main(["--backend", "all", "--jobs", "5000", "--json"]) == 0
    rows = {(r["backend"], r["stage"]): r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == {(b, s) for b in ("memory", "redis", "postgres") for s in ("enqueue", "drain", "end to end")}
    for (backend, _), row in rows.items():
        assert row["jobs"] == 5000 and row["jobs_per_s"] > 0 and row["worker_us"] > 0
        # memory:// has no server; Redis and PostgreSQL do work for every job they store or lease
        assert (row["server_us"] > 0) == (backend != "memory"), row
        assert (row["server_busy"] > 0) == (backend != "memory"), row
