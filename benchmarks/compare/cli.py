"""``python -m benchmarks --compare``: the CLI, the medians over rounds, and the table."""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from .. import print_table
from . import servers, venvs
from .harness import RunResult, run_one
from .peers import PEERS, install_hint

BACKENDS = ("redis", "postgres")
METRICS = ("enqueue_per_s", "drain_per_s", "end_to_end_per_s", "worker_start_s")


def median_of(rounds: list[RunResult]) -> dict[str, object]:
    """One row from a library's rounds: each figure the median of the rounds that passed,
    with their min and max; the check fails if any round failed."""
    first = rounds[0]
    passed = [r for r in rounds if r.ok] or rounds
    row: dict[str, object] = {"library": first.library, "version": first.version, "backend": first.backend,
                              "configuration": first.configuration, "jobs": first.jobs, "rounds": len(rounds)}
    for metric in METRICS:
        values = [getattr(r, metric) for r in passed if not math.isnan(getattr(r, metric))]
        row[metric] = statistics.median(values) if values else float("nan")
        row[metric + "_range"] = [min(values), max(values)] if values else []
    failed = [r for r in rounds if not r.ok]
    row["exactly_once"] = not failed
    row["check"] = "ok" if not failed else f"{len(failed)} of {len(rounds)} rounds " + failed[0].check_text()
    row["runs"] = [asdict(r) for r in rounds]
    return row


def add_ratios(rows: list[dict[str, object]]) -> None:
    """fastjobs' drain and end-to-end rates over each library's, per backend."""
    ours = {r["backend"]: r for r in rows if r["library"] == "fastjobs"}
    for row in rows:
        base = ours.get(row["backend"])  # type: ignore[arg-type]
        for metric in ("drain_per_s", "end_to_end_per_s"):
            mine, theirs = (float(base[metric]) if base else math.nan), float(row[metric])  # type: ignore[arg-type]
            row[f"fastjobs_x_{metric[:-6]}"] = mine / theirs if theirs and not math.isnan(theirs) else math.nan


def _no_nan(value: object) -> object:
    """NaN (a phase that did not finish) as null: json.dumps would write NaN, which is not JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_no_nan(v) for v in value]
    return value


def _fmt(value: object, digits: int = 0) -> str:
    v = float(value)  # type: ignore[arg-type]
    return "-" if math.isnan(v) else f"{v:,.{digits}f}"


def render(rows: list[dict[str, object]], machine: dict[str, object], skipped: list[str]) -> None:
    from rich import box
    from rich.table import Table

    rounds = max((int(r["rounds"]) for r in rows), default=1)  # type: ignore[call-overload]
    # No vertical rules and one space between columns, the configuration wrapped at 26
    # characters: the nine columns fit 100 columns.
    table = Table(title=f"{machine['jobs']:,} no-op jobs, one worker process, jobs/s"
                        f"{f' (median of {rounds} rounds)' if rounds > 1 else ' (one run)'}; "
                        f"Python {machine['python']}, {machine['cpus']} CPUs, Redis {machine['redis']}, "
                        f"PostgreSQL {machine['postgres']}",
                  box=box.SIMPLE_HEAD, padding=0, show_edge=False)
    for col, justify, width in (("library", "left", 13), ("version", "left", 7), ("backend", "left", 8),
                                ("configuration", "left", 26), ("enqueue", "right", 7), ("drain", "right", 7),
                                ("end to end", "right", 7), ("fastjobs x drain/e2e", "right", 10),
                                ("exactly once", "left", 10)):
        table.add_column(col, justify=justify, max_width=width)  # type: ignore[arg-type]
    for r in rows:
        ok = bool(r["exactly_once"])
        ratio = ("" if r["library"] == "fastjobs" else
                 f"{_fmt(r['fastjobs_x_drain'], 1)}/{_fmt(r['fastjobs_x_end_to_end'], 1)}")
        table.add_row(str(r["library"]), str(r["version"]), str(r["backend"]), str(r["configuration"]),
                      _fmt(r["enqueue_per_s"]), _fmt(r["drain_per_s"]), _fmt(r["end_to_end_per_s"]), ratio,
                      f"[{'green' if ok else 'red'}]{r['check']}[/]")
    print_table(table)
    for line in skipped:
        print(line)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks --compare",
        description="Run the same no-op workload through fastjobs and its peers (each peer in a virtualenv of its "
                    "own, created on first use), one worker process each, and compare enqueue, drain and end-to-end "
                    "rates; every job's completion is checked exactly once.")
    parser.add_argument("--backend", choices=[*BACKENDS, "all"], default="all")
    parser.add_argument("--peers", default=",".join(p for p in PEERS if p != "fastjobs"),
                        help="comma-separated peers (fastjobs always runs): " + ", ".join(p for p in PEERS if p != "fastjobs"))
    parser.add_argument("--jobs", type=int, default=20_000, help="jobs per phase (default: 20,000)")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each library; the median is shown")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds a phase may take before it fails")
    parser.add_argument("--venv-dir", type=Path, default=venvs.default_root(),
                        help="where the peers' virtualenvs live (default: %(default)s)")
    parser.add_argument("--no-install", dest="install", action="store_false",
                        help="skip peers not yet installed instead of installing them")
    parser.add_argument("--redis-db", type=int, default=15, help="the Redis database used and flushed (must start empty)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    wanted = [p.strip() for p in args.peers.split(",") if p.strip() and p.strip() != "fastjobs"]
    unknown = [p for p in wanted if p not in PEERS]
    if unknown:
        parser.error(f"unknown peers {', '.join(unknown)}; known: {', '.join(PEERS)}")
    if args.jobs < 2:
        parser.error("--jobs must be at least 2")
    backends = list(BACKENDS) if args.backend == "all" else [args.backend]
    # One line per library and round on stderr, --json or not: a long run shows where it is.
    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    redis_url = servers.redis_url(args.redis_db)
    if "redis" in backends:
        held = servers.redis_keys(redis_url)
        if held:
            print(f"Redis database {args.redis_db} holds {held:,} keys that are not this run's: pick an empty one "
                  f"with --redis-db N (it is flushed after each library).", file=sys.stderr)
            return 2

    skipped: list[str] = []
    chosen: list[tuple[str, Path, str]] = []
    for name in ["fastjobs", *wanted]:
        peer = PEERS[name]
        if not set(peer.backends) & set(backends):
            continue
        python, why = venvs.interpreter(peer, args.venv_dir, args.install, say)
        if python is None:
            skipped.append(install_hint(peer, args.venv_dir / name, why))
            say(skipped[-1])
            continue
        chosen.append((name, python, venvs.version(peer, python)))

    runs: dict[tuple[str, str], list[RunResult]] = {}
    with tempfile.TemporaryDirectory(prefix="fastjobs-compare-") as tmp:
        workdir = Path(tmp)
        for r in range(args.rounds):
            for backend in backends:
                for name, python, version in chosen:
                    peer = PEERS[name]
                    if backend not in peer.backends:
                        continue
                    url = redis_url if backend == "redis" else servers.postgres_url()
                    try:
                        if backend == "redis":
                            servers.flush_redis(url)
                        else:
                            servers.recreate_postgres()
                        result = run_one(peer, python, version, backend, url, args.jobs, args.timeout, workdir)
                    finally:
                        if backend == "redis":
                            servers.flush_redis(url)
                        else:
                            servers.drop_postgres()
                    if result.error:
                        tail = Path(result.log).read_text(errors="replace")[-1500:] if Path(result.log).exists() else ""
                        say(f"{name} on {backend} failed: {result.error}\n{tail}")
                    say(f"round {r + 1}/{args.rounds} {backend} {name} {version}: enqueue {result.enqueue_per_s:,.0f}, "
                        f"drain {result.drain_per_s:,.0f}, end to end {result.end_to_end_per_s:,.0f} jobs/s, "
                        f"{result.check_text()}, stop {result.stopped}" + (f" ({result.note})" if result.note else ""))
                    runs.setdefault((name, backend), []).append(result)

    rows = [median_of(rounds) for rounds in runs.values()]
    rows.sort(key=lambda row: (backends.index(str(row["backend"])), [c[0] for c in chosen].index(str(row["library"]))))
    add_ratios(rows)
    found = servers.versions(args.redis_db)
    machine: dict[str, object] = {"jobs": args.jobs, "python": platform.python_version(), "cpus": os.cpu_count(),
                                  "redis": found["redis"], "postgres": found["postgres"],
                                  "platform": platform.platform()}
    if args.json:
        print(json.dumps(_no_nan({"machine": machine, "results": rows, "skipped": skipped}), indent=2, default=str))
    else:
        render(rows, machine, skipped)
    return 0 if all(row["exactly_once"] for row in rows) else 1
