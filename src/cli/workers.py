"""``fastjobs workers``: the live worker registry (read-only).

Example::

    fastjobs workers myproject.jobs:app --json   # live workers and the jobs they run
"""

from __future__ import annotations

import argparse
import dataclasses
import textwrap
from collections.abc import Sequence
from typing import Any

from ..app import App
from ..backends import WorkerInfo, redact_url
from ._common import (
    WIDTH,
    Commands,
    Formatter,
    add_common,
    duration,
    fit,
    load_app,
    point_app,
    print_json,
    run_with,
)


def add_parser(sub: Commands) -> None:
    ws = sub.add_parser(
        "workers", help="live worker processes and the jobs they run (read-only)", formatter_class=Formatter,
        description="List the worker processes of the App's backend: alive ones with the ids of the jobs "
        "they run, and ones gone within the last hour (no heartbeat: killed or stalled). A worker "
        "stopped by SIGTERM leaves the list at once. Never creates or migrates a schema.",
    )
    add_common(ws)
    ws.set_defaults(func=cmd_workers)


async def fetch_workers(app: App) -> tuple[float, list[WorkerInfo]]:
    """The backend's clock and its workers."""
    backend = await app.backend()
    return await backend.now(), await app.workers()


def workers_json(workers: Sequence[WorkerInfo]) -> list[dict[str, Any]]:
    return [{**dataclasses.asdict(w), "queues": list(w.queues), "running": list(w.running)} for w in workers]


def cmd_workers(args: argparse.Namespace) -> int:
    app = point_app(load_app(args.app), args.url, "workers")
    now, workers = run_with(app, fetch_workers(app))
    if args.json:
        print_json({"url": redact_url(app.url), "now": now, "workers": workers_json(workers)})
        return 0
    alive = sum(w.alive for w in workers)
    print(fit(f"workers: {alive} alive, {len(workers) - alive} gone; app {args.app} at {redact_url(app.url)}", WIDTH))
    if workers:
        print(format_workers(workers, now))
    return 0


def format_workers(workers: Sequence[WorkerInfo], now: float) -> str:
    """The ``fastjobs workers`` table: one line per worker, then the ids of the jobs it runs.

    Example:
        >>> w = WorkerInfo("web-1:42:a1b2c3", "web-1", 42, ("emails",), 100, "0.1.0", 100.0, 130.0, ("j1",))
        >>> print(format_workers([w], now=131.0))  # doctest: +NORMALIZE_WHITESPACE
        worker                           state     pid  conc  running  last beat     up  queues
        web-1:42:a1b2c3                  alive      42   100        1      1.0 s   31 s  emails
          running: j1
    """
    head = f"{'worker':<32} {'state':<5} {'pid':>7} {'conc':>5} {'running':>8} {'last beat':>10} {'up':>6}  "
    lines = [head + "queues"]
    for w in workers:
        row = (f"{fit(w.id, 32):<32} {'alive' if w.alive else 'gone':<5} {w.pid:>7} {w.concurrency:>5} "
               f"{len(w.running):>8} {now - w.last_seen:>8.1f} s {duration(now - w.started_at):>6}  ")
        lines.append(row + fit(",".join(w.queues), WIDTH - len(row)))
        if w.running:
            lines += textwrap.wrap(", ".join(w.running), WIDTH, initial_indent="  running: ",
                                   subsequent_indent=" " * 11, max_lines=3, placeholder=" ...")
    return "\n".join(lines)
