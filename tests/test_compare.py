"""The peer comparison's own logic (benchmarks/compare), without any peer installed: the records
every job body appends, the exactly-once check, the line for a peer that is not installed, and
the table's width."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from benchmarks.compare import cli, records, venvs
from benchmarks.compare.harness import RunResult
from benchmarks.compare.peers import PEERS, install_hint


def _write(path: Path, indexes: list[int], tail: bytes = b"") -> None:
    path.write_bytes(b"".join(records.record_line(i) for i in indexes) + tail)


def test_a_record_is_fixed_size_and_names_its_index() -> None:
    assert records.record_line(7) == b"0" * 30 + b"7\n"
    assert len(records.record_line(10**30)) == records.RECORD_SIZE


def test_append_record_writes_one_whole_record_per_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "records"
    monkeypatch.setenv(records.RECORDS_ENV, str(path))
    monkeypatch.setattr(records, "_fd", [])
    try:
        for i in (2, 0, 1):
            records.append_record(i)
    finally:
        os.close(records._fd[0])
    assert records.count_records(str(path)) == 3
    assert records.check_exactly_once(str(path), 3).ok


def test_counting_ignores_a_record_still_being_written(tmp_path: Path) -> None:
    path = tmp_path / "records"
    assert records.count_records(str(path)) == 0  # not there yet: no job ran
    _write(path, [0, 1], tail=b"0000")
    assert records.count_records(str(path)) == 2


def test_exactly_once_passes_each_index_once_in_any_order(tmp_path: Path) -> None:
    path = tmp_path / "records"
    _write(path, [3, 1, 4, 0, 2])
    check = records.check_exactly_once(str(path), 5)
    assert check.ok and check.summary() == "ok"
    assert (check.recorded, check.duplicates, check.missing, check.malformed) == (5, 0, 0, 0)


def test_exactly_once_reports_duplicates_and_missing(tmp_path: Path) -> None:
    path = tmp_path / "records"
    _write(path, [0, 1, 1, 1, 3])  # 1 ran three times, 2 and 4 never
    check = records.check_exactly_once(str(path), 5)
    assert not check.ok
    assert (check.duplicates, check.missing, check.malformed) == (2, 2, 0)
    assert check.summary() == "FAILED: 2 duplicate, 2 missing"


def test_exactly_once_reports_torn_and_foreign_records(tmp_path: Path) -> None:
    path = tmp_path / "records"
    _write(path, [0, 1, 9], tail=b"x" * 31 + b"\n" + b"12")  # 9 is out of range, one record garbled, one cut
    check = records.check_exactly_once(str(path), 2)
    assert (check.duplicates, check.missing, check.malformed) == (0, 0, 3)
    assert not check.ok


def test_a_failed_round_marks_the_row_failed() -> None:
    good = RunResult("rq", "2.12.0", "redis", "cfg", 10, 100.0, 50.0, 40.0, exactly_once=True)
    bad = RunResult("rq", "2.12.0", "redis", "cfg", 10, 120.0, 60.0, 45.0, duplicates=1, exactly_once=False)
    row = cli.median_of([good, bad])
    assert row["exactly_once"] is False
    assert row["check"] == "1 of 2 rounds FAILED: 1 duplicate"
    assert row["drain_per_s"] == 50.0  # the figures come from the rounds that passed


def test_a_missing_peer_is_skipped_with_one_line_saying_how_to_install_it(tmp_path: Path) -> None:
    peer = PEERS["dramatiq"]
    python, why = venvs.interpreter(peer, tmp_path, install=False, say=lambda line: None)
    assert python is None and why == "not installed"
    line = install_hint(peer, tmp_path / peer.name)
    assert "\n" not in line
    assert line.startswith("skipped dramatiq: not installed")
    assert "--compare --peers dramatiq" in line and "'dramatiq[redis]==2.2.1'" in line


def test_fastjobs_runs_in_this_interpreter() -> None:
    python, why = venvs.interpreter(PEERS["fastjobs"], Path("/nonexistent"), install=False, say=lambda line: None)
    assert python is not None and why == ""


def test_the_table_fits_100_columns(capsys: pytest.CaptureFixture[str]) -> None:
    rows = [cli.median_of([RunResult(name, "10.10.10", backend, peer.configuration, 20_000, 123_456.0, 98_765.0,
                                     54_321.0, exactly_once=True)])
            for name, peer in PEERS.items() for backend in peer.backends]
    cli.add_ratios(rows)
    machine = {"jobs": 20_000, "python": "3.11.7", "cpus": 2, "redis": "7.0.15", "postgres": "15.20"}
    cli.render(rows, machine, ["skipped huey: not installed"])
    out = capsys.readouterr().out
    assert "procrastinate" in out and "skipped huey" in out
    assert max(len(line) for line in out.splitlines()) <= 100


def test_json_has_null_where_a_phase_did_not_finish() -> None:
    row = cli.median_of([RunResult("rq", "2.12.0", "redis", "cfg", 10, error="timed out with 3 of 10 records")])
    cleaned = cli._no_nan(row)
    assert cleaned["drain_per_s"] is None  # type: ignore[index]
    assert "NaN" not in json.dumps(cleaned)


def test_a_failed_install_is_one_line_too(tmp_path: Path) -> None:
    line = install_hint(PEERS["rq"], tmp_path / "rq", "pip install failed: ERROR: No matching distribution\nfound for rq==2.12.0")
    assert "\n" not in line and line.startswith("skipped rq: pip install failed: ERROR: No matching distribution found")
