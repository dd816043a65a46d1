"""``fastjobs jobs`` (find jobs, a page at a time) and ``fastjobs job`` (everything about one).

Example::

    fastjobs jobs myproject.jobs:app --state dead --queue emails --since 2026-12-06 --limit 20
    fastjobs jobs myproject.jobs:app --state dead --cursor <the cursor the last page printed>
    fastjobs job myproject.jobs:app 0193a1b2c3d4e5f60718293a4b5c6d7e
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..job import JobInfo
from ._common import (
    WIDTH,
    Commands,
    UsageError,
    add_command,
    add_filter,
    filter_of,
    fit,
    job_json,
    load_app,
    point_app,
    print_json,
    run_with,
    when,
    wrap,
)

FINISHED = ("succeeded", "dead", "cancelled")

VALUE_LINES = 20
"""Most lines one value (arguments, meta, result) takes in the text of ``fastjobs job``."""


def add_parsers(sub: Commands) -> None:
    j = add_command(
        sub, "jobs", cmd_jobs, help="find jobs: newest first, a page at a time (read-only)",
        description="List the jobs matching the filters, newest first (by when they finished, or were "
        "enqueued if they have not), a page at a time: the last line gives the --cursor of the next page. "
        "States: queued, scheduled, waiting, active, retry_pending (or retry), succeeded, dead, cancelled. "
        "A job that changes state between two pages may show twice or not at all. Never creates or "
        "migrates a schema.",
    )
    add_filter(j)
    j.add_argument("--limit", type=int, default=50, metavar="N", help="jobs per page (1-1000)")
    j.add_argument("--cursor", default=None, metavar="C", help="where the previous page ended (it printed it)")

    one = add_command(
        sub, "job", cmd_job, help="everything about one job: arguments, state, each attempt's error (read-only)",
        description="Show one job: task, arguments (decoded, never run), tags, meta, state, attempts, each "
        "attempt's error with its traceback and worker, progress, result, times, dependencies and batch.",
    )
    one.add_argument("id", help="the job's id")


def cmd_jobs(args: argparse.Namespace) -> int:
    app = point_app(load_app(args.app), args.url, "jobs")
    where = filter_of(args)

    async def page() -> Any:
        return await app.jobs(**where, limit=args.limit, cursor=args.cursor)

    found = run_with(app, page())
    if args.json:
        print_json({"jobs": [job_json(info) for info in found.jobs], "cursor": found.cursor})
        return 0
    print(format_jobs(found.jobs))
    if found.cursor is not None:
        # On a line of its own, never cut: it is copied as it is.
        print(f"{len(found.jobs)} jobs; the next page's --cursor:\n{found.cursor}")
    else:
        print(f"{len(found.jobs)} jobs; no more pages")
    return 0


def _job_time(info: JobInfo) -> float:
    return (info.finished_at or 0.0) if info.state in FINISHED else info.enqueued_at


def format_jobs(jobs: list[JobInfo]) -> str:
    """The ``fastjobs jobs`` table, in 100 columns: the time is when the job finished, or
    when it was enqueued if it has not (the order of the list)."""
    lines = [f"{'id':<32} {'state':<13} {'queue':<12} {'task':<19} {'tries':>5} {'time (UTC)':>14}"]
    for info in jobs:
        lines.append(f"{fit(info.id, 32):<32} {info.state:<13} {fit(info.queue, 12):<12} {fit(info.task, 19):<19} "
                     f"{f'{info.attempt}/{info.max_attempts}':>5} {when(_job_time(info), short=True):>14}")
    return "\n".join(lines)


def cmd_job(args: argparse.Namespace) -> int:
    app = point_app(load_app(args.app), args.url, "job")
    info = run_with(app, app.get_job(args.id))
    if info is None:
        raise UsageError(f"no job with id {args.id!r} (unknown, or its result_ttl / dead_ttl ran out)")
    if args.json:
        print_json(job_json(info))
    else:
        print("\n".join(format_job(info)))
    return 0


def _value(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def format_job(info: JobInfo) -> list[str]:
    """Every field of a :class:`JobInfo` as lines of at most 100 columns (long values wrapped)."""
    out: list[str] = []

    def field(name: str, value: str) -> None:
        first, *rest = wrap(value, width=WIDTH - 14) or [""]
        if len(rest) > VALUE_LINES:  # a large argument or result: the start says what it is
            rest = [*rest[: VALUE_LINES - 1], f"... ({len(rest) - VALUE_LINES + 1} more lines: --json shows all)"]
        out.append(f"  {name + ':':<12}{first}".rstrip())
        out.extend(" " * 14 + line for line in rest)

    out.append(f"job {info.id}")
    field("task", info.task)
    field("state", f"{info.state}, attempt {info.attempt} of {info.max_attempts}")
    field("queue", f"{info.queue}, priority {info.priority}")
    field("tags", ", ".join(info.tags) if info.tags else "-")
    field("args", _value(list(info.args)))
    field("kwargs", _value(info.kwargs))
    field("meta", _value(info.meta) if info.meta else "-")
    field("enqueued", when(info.enqueued_at))
    if info.run_at and info.run_at != info.enqueued_at:
        field("run at", when(info.run_at))
    field("started", when(info.started_at))
    field("finished", when(info.finished_at))
    if info.progress is not None:
        p = info.progress
        field("progress", f"{p.fraction:.0%} {p.message} ({when(p.at)})".rstrip())
    if info.state == "succeeded" or info.result is not None:
        field("result", _value(info.result))
    if info.depends_on:
        field("depends on", f"{', '.join(info.depends_on)} ({info.pending_parents} pending, "
                            f"{info.failed_parents} failed)")
    if info.batch_id:
        field("batch", info.batch_id)
    if info.unique_key is not None:
        field("unique key", info.unique_key)
    if info.limit_key is not None:
        field("limit key", info.limit_key)
    if info.errors:
        out.append(f"errors ({len(info.errors)}):")
    for error in info.errors:
        span = f"{when(error.started_at)} to {when(error.at)}" if error.started_at else f"at {when(error.at)}"
        out.extend(wrap(f"attempt {error.attempt}: {error.type}: {error.message}", "  "))
        out.extend(wrap(span + (f", worker {error.worker}" if error.worker else ""), "    "))
        if error.traceback:
            out.extend(wrap(error.traceback.rstrip("\n"), "    "))
    return out
