"""Queues as a whole: ``pause``/``resume``, the counts (``info``, ``stats`` with ``--watch``)
and the health probe (``check``).

Example::

    fastjobs pause myproject.jobs:app emails
    fastjobs stats myproject.jobs:app --watch          # a live table, refreshed every second
    fastjobs check myproject.jobs:app --queue emails --max-age 300   # exit 0 healthy, 1 not
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import math
import sys
import time
from collections.abc import Mapping
from typing import Any

from .._core import DEAD, STATE_NAMES
from ..app import App
from ..backends import BROKEN, QueueStats, redact_url
from ..errors import BackendError, ConfigurationError
from ..job import JobInfo
from ._common import (
    WIDTH,
    Commands,
    NotDone,
    UsageError,
    add_command,
    fit,
    load_app,
    open_app,
    point_app,
    print_json,
    run,
    run_with,
    when,
)

SHORT = {"retry_pending": "retry"}
"""Column labels of the ``stats`` table that are shorter than the state's name."""


def add_parsers(sub: Commands) -> None:
    for verb, text in (("pause", "stop workers from claiming a queue's jobs (enqueues still go in)"),
                       ("resume", "let workers claim a paused queue's jobs again")):
        p = add_command(sub, verb, cmd_pause_resume, help=text, description=text[0].upper() + text[1:] + ".")
        p.add_argument("queue", help="the queue")

    i = add_command(sub, "info", cmd_info, help="queues, counts by state, dead letters (read-only)",
                    description="Job counts per queue and state, and the oldest dead letters. See also "
                    "`fastjobs stats` (throughput and workers, live with --watch).")
    i.add_argument("--dead", type=int, default=20, help="how many dead letters to list")

    s = add_command(
        sub, "stats", cmd_stats, help="counts per queue and state, jobs/s, workers; live with --watch (read-only)",
        description="Job counts per queue and state, jobs run per second per queue over the last minute "
        "(from the history the workers record) and the workers alive. --watch redraws it every "
        "--interval seconds until Ctrl-C (on a terminal; elsewhere it prints one table per refresh, "
        "and with --json one JSON line per refresh).",
    )
    s.add_argument("--watch", action="store_true", help="refresh until interrupted")
    s.add_argument("--interval", type=float, default=1.0, metavar="S", help="seconds between refreshes")
    s.add_argument("--iterations", type=int, default=0, help=argparse.SUPPRESS)  # tests: stop after N

    c = add_command(
        sub, "check", cmd_check, help="health probe: exit 0 healthy, 1 unhealthy (reason on stderr), 2 bad usage",
        description="Exit 0 when the backend answers (and its schema is in place) and, with --queue and "
        "--max-age, the oldest ready job of the queue has waited less than --max-age seconds; else exit 1 "
        "with the reason on stderr. For Kubernetes liveness and readiness probes. Read-only.",
    )
    c.add_argument("--queue", default=None, metavar="Q", help="the queue whose oldest ready job to check")
    c.add_argument("--max-age", type=float, default=None, metavar="S",
                   help="unhealthy when the oldest ready job of --queue waited this long (seconds)")
    c.add_argument("--timeout", type=float, default=5.0, metavar="S",
                   help="unhealthy when the backend has not answered within this many seconds")


def cmd_pause_resume(args: argparse.Namespace) -> int:
    app = point_app(load_app(args.app), args.url, args.command)

    async def work() -> list[str]:
        await (app.pause if args.command == "pause" else app.resume)(args.queue)
        return await app.paused()

    paused = run_with(app, work())
    if args.json:
        print_json({"queue": args.queue, "paused": args.queue in paused, "paused_queues": paused})
    else:
        print(f"queue {args.queue} {'paused' if args.command == 'pause' else 'resumed'}; paused queues: "
              f"{', '.join(paused) or 'none'}")
    return 0


# -- info ----------------------------------------------------------------------------


def cmd_info(args: argparse.Namespace) -> int:
    app = point_app(load_app(args.app), args.url, "info")

    async def work() -> tuple[Mapping[str, QueueStats], list[JobInfo]]:
        backend = await app.backend()
        dead = await backend.list_jobs(DEAD, None, args.dead, 0)
        return await app.stats(), [JobInfo.from_stored(d, app.max_payload) for d in dead]

    stats, dead = run_with(app, work())
    if args.json:
        print_json({
            "url": redact_url(app.url), "tasks": sorted(app.tasks), "queues": stats,
            "dead": [{"id": d.id, "task": d.task, "queue": d.queue, "error": str(d.error)} for d in dead],
        })
        return 0
    print(fit(f"app: {args.app} ({redact_url(app.url)}), {len(app.tasks)} tasks", WIDTH))
    # Every state the JSON shows, waiting included; each column as wide as its name: 100 columns in all.
    states = STATE_NAMES
    print(f"{'queue':<20}" + "".join(f"{s:>{len(s) + 2}}" for s in states))
    for queue in sorted(stats):
        row = stats[queue]
        if BROKEN in row:  # no counts: its storage could not be read
            print(fit(f"{queue:<20}  damaged: {row[BROKEN]}", WIDTH))
        else:
            print(f"{fit(queue, 20):<20}" + "".join(f"{row.get(s, 0):>{len(s) + 2}}" for s in states))
    if dead:
        print(f"\ndead letters (oldest {len(dead)}):")
        for d in dead:
            print(fit(f"  {d.id}  {d.task}  [{d.queue}]  {d.error}", WIDTH))
    return 0


# -- stats ---------------------------------------------------------------------------


@dataclasses.dataclass
class Snapshot:
    """One refresh of ``fastjobs stats``."""

    now: float
    queues: Mapping[str, QueueStats]
    paused: list[str]
    rates: dict[str, float]
    """Jobs run per second per queue, over the minute before ``now`` (and the current one)."""
    alive: int
    gone: int

    def to_json(self, url: str) -> dict[str, Any]:
        return {"url": url, "now": self.now, "queues": self.queues, "paused": self.paused,
                "jobs_per_second": self.rates, "workers": {"alive": self.alive, "gone": self.gone}}


async def snapshot(app: App) -> Snapshot:
    """Counts, paused queues, throughput and workers, read in one go."""
    backend = await app.backend()
    now = await backend.now()
    # The minute series: the last full minute and the current one, so the rate is never
    # taken over a few seconds only.
    since = math.floor(now / 60) * 60 - 60
    queues, paused, workers, history = await asyncio.gather(
        app.stats(), app.paused(), app.workers(), app.history(since=since, step="1m"),
    )
    runs: dict[str, int] = {}
    for point in history:
        runs[point.queue] = runs.get(point.queue, 0) + point.runs
    elapsed = max(now - since, 1.0)
    rates = {queue: runs.get(queue, 0) / elapsed for queue in sorted({*queues, *runs})}
    alive = sum(w.alive for w in workers)
    return Snapshot(now, queues, paused, rates, alive, len(workers) - alive)


def rate(per_second: float) -> str:
    """A jobs/s figure in at most 9 columns, with the digits that matter (0.04, 12.5, 48,210)."""
    if per_second < 10:
        return f"{per_second:.2f}"
    return f"{per_second:.1f}" if per_second < 1000 else f"{per_second:,.0f}"


def _rows(snap: Snapshot) -> list[tuple[str, QueueStats, float]]:
    """Each queue with jobs or runs: its counts (or ``{BROKEN: reason}``) and its jobs/s."""
    queues = sorted(set(snap.queues) | {q for q, r in snap.rates.items() if r})
    return [(queue, snap.queues.get(queue, {}), snap.rates.get(queue, 0.0)) for queue in queues]


def _totals(snap: Snapshot) -> list[int]:
    rows = [row for row in snap.queues.values() if BROKEN not in row]
    return [sum(int(row.get(s, 0)) for row in rows) for s in STATE_NAMES]


def _footer(snap: Snapshot) -> list[str]:
    paused = ["* paused: " + fit(", ".join(snap.paused), WIDTH - 10)] if snap.paused else []
    return [f"workers: {snap.alive} alive, {snap.gone} gone", *paused]


def format_stats(snap: Snapshot, title: str) -> list[str]:
    """The ``stats`` table in 100 columns: one row per queue (``*`` marks a paused one), the
    totals, then the workers and the paused queues."""
    widths = [len(SHORT.get(s, s)) + 2 for s in STATE_NAMES]

    def line(name: str, counts: list[Any], per_second: str) -> str:
        return f"{name:<20}" + "".join(f"{c:>{w}}" for c, w in zip(counts, widths)) + f"{per_second:>9}"

    lines = [fit(f"{title} at {when(snap.now)}", WIDTH), line("queue", [SHORT.get(s, s) for s in STATE_NAMES], "jobs/s")]
    for queue, row, per_second in _rows(snap):
        name = fit(queue, 18) + ("*" if queue in snap.paused else "")
        if BROKEN in row:  # no counts: its storage could not be read
            lines.append(fit(f"{name:<20}  damaged: {row[BROKEN]}", WIDTH))
        else:
            lines.append(line(name, [row.get(s, 0) for s in STATE_NAMES], rate(per_second)))
    if len(snap.queues) > 1:
        lines.append(line("(all)", _totals(snap), rate(sum(snap.rates.values()))))
    return lines + _footer(snap)


def rich_stats(snap: Snapshot, title: str) -> Any:
    """The ``stats`` table as a rich renderable (``--watch`` on a terminal): the rows of
    :func:`format_stats`, paused queues in yellow, damaged ones in red."""
    from rich.table import Table

    table = Table(title=fit(f"{title} at {when(snap.now)}", WIDTH), title_justify="left", caption_justify="left",
                  caption="\n".join([*_footer(snap), "Ctrl-C to stop"]), pad_edge=False)
    table.add_column("queue", max_width=20, no_wrap=True, overflow="ellipsis")
    for s in STATE_NAMES:
        table.add_column(SHORT.get(s, s), justify="right")
    table.add_column("jobs/s", justify="right")
    for queue, row, per_second in _rows(snap):
        paused = queue in snap.paused
        if BROKEN in row:
            table.add_row(queue, f"damaged: {row[BROKEN]}", style="red")
        else:
            table.add_row(queue + ("*" if paused else ""), *(f"{row.get(s, 0):,}" for s in STATE_NAMES),
                          rate(per_second), style="yellow" if paused else None)
    if len(snap.queues) > 1:
        table.add_row("(all)", *(f"{n:,}" for n in _totals(snap)), rate(sum(snap.rates.values())), style="bold")
    return table


def cmd_stats(args: argparse.Namespace) -> int:
    if args.interval <= 0:
        raise UsageError(f"--interval must be more than 0 seconds, not {args.interval}")
    app = point_app(load_app(args.app), args.url, "stats")
    title = f"fastjobs stats: {args.app} ({redact_url(app.url)})"
    if not args.watch:
        snap = run_with(app, snapshot(app))
        if args.json:
            print_json(snap.to_json(redact_url(app.url)))
        else:
            print("\n".join(format_stats(snap, title)))
        return 0
    try:
        run_with(app, _watch(app, args, title))
    except KeyboardInterrupt:
        pass
    return 0


async def _watch(app: App, args: argparse.Namespace, title: str) -> None:
    """Refresh every ``--interval`` seconds: a live table on a terminal, frames elsewhere."""
    live: Any = None
    if sys.stdout.isatty() and not args.json:
        try:
            from rich.console import Console
            from rich.live import Live
        except ImportError:  # rich is optional: redraw by hand
            pass
        else:
            live = Live(console=Console(width=WIDTH), auto_refresh=False)
            live.start()
    frames = 0
    try:
        while True:
            started = time.monotonic()
            snap = await snapshot(app)
            if args.json:
                print_json(snap.to_json(redact_url(app.url)), compact=True)
            elif live is not None:
                live.update(rich_stats(snap, title), refresh=True)
            elif sys.stdout.isatty():
                print("\x1b[H\x1b[2J" + "\n".join(format_stats(snap, title)), flush=True)
            else:
                print("\n".join(format_stats(snap, title)) + "\n", flush=True)
            sys.stdout.flush()
            frames += 1
            if args.iterations and frames >= args.iterations:
                return
            await asyncio.sleep(max(args.interval - (time.monotonic() - started), 0.0))
    finally:
        if live is not None:
            live.stop()


# -- check ---------------------------------------------------------------------------


def cmd_check(args: argparse.Namespace) -> int:
    if (args.queue is None) != (args.max_age is None):
        raise UsageError("--queue and --max-age go together: the oldest ready job of QUEUE waited less than S seconds")
    if args.max_age is not None and args.max_age <= 0:
        raise UsageError(f"--max-age must be more than 0 seconds, not {args.max_age}")
    if args.timeout <= 0:
        raise UsageError(f"--timeout must be more than 0 seconds, not {args.timeout}")
    app = point_app(load_app(args.app), args.url, "check")
    # A probe must answer within its own timeout: connecting gives up sooner than the App would.
    app.options = dataclasses.replace(app.options, connect_timeout=args.timeout)

    async def connect_and_check() -> Any:
        await open_app(app)
        return await app.check(queue=args.queue, max_age=args.max_age)

    async def probe() -> Any:
        # Connecting inside the deadline too: a server that accepts and then hangs would
        # otherwise hold the probe for the client's socket timeout.
        try:
            return await asyncio.wait_for(connect_and_check(), args.timeout)
        finally:
            await app.close()

    try:
        health = run(probe())
        ok, reason, oldest = bool(health.ok), str(health.reason), health.oldest_age
    except (BackendError, ConfigurationError) as exc:  # down, or no schema: unhealthy, not bad usage
        ok, reason, oldest = False, str(exc), None
    except asyncio.TimeoutError:  # the builtin TimeoutError only from Python 3.11 on
        ok, reason, oldest = False, f"the backend did not answer within {args.timeout} s", None
    if args.json:
        print_json({"ok": ok, "reason": reason, "oldest_age": oldest})
    elif ok:
        print(f"ok: {reason}" if reason else "ok")
    if not ok:
        raise NotDone(f"unhealthy: {reason}")
    return 0
