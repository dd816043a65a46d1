"""The fault-injection suite (``python -m benchmarks --faults``) runs end to end: one cheap
scenario per backend, on its own throwaway servers, through a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]


def _suite(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "benchmarks", "--faults", "--quick", *args],
                          check=False, cwd=ROOT, capture_output=True, text=True, timeout=110)


@pytest.fixture(scope="module")
def servers() -> None:
    from benchmarks.faults.servers import _pgserver_bindir
    from tests.postgres.server import find_bindir
    from tests.redis.servers import find_redis_server

    if find_redis_server() is None or (find_bindir() or _pgserver_bindir()) is None:
        pytest.skip("the fault suite needs redis-server and PostgreSQL binaries")


def test_sigterm_scenario_on_both_backends_as_json(servers: None) -> None:
    done = _suite("--backend", "all", "--scenarios", "3", "--json")
    assert done.returncode in (0, 1), done.stderr
    report = json.loads(done.stdout)
    rows = {row["backend"]: row for row in report["rows"]}
    assert set(rows) == {"redis", "postgres"}, done.stderr
    for row in rows.values():
        assert row["error"] is None, row
        assert row["id"] == 3 and row["jobs"] > 0 and row["faults"] == 1
        # The ledger adds up: every job ran once, plus the duplicates, minus the lost.
        assert row["executions"] == row["jobs"] + row["duplicates"] - row["lost"], row
        assert row["explained"] <= row["duplicates"]
        assert row["status"] in ("pass", "FAIL") and row["checks"]
        assert (done.returncode == 0) == all(r["passed"] for r in report["rows"])


def test_table_and_known_gaps(servers: None) -> None:
    done = _suite("--backend", "redis", "--scenarios", "2", "--allow-known", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert any(line.split()[:3] == ["2", "crash", "points"] for line in lines), done.stdout
    assert max(len(line) for line in lines) <= 100
    assert "re-deliveries after-claim / in-handler / before-ack / after-ack" in done.stdout
