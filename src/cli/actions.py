"""Acting on jobs: ``retry``, ``cancel`` and ``delete`` (by id, or every job matching a filter),
``purge`` (finished jobs) and ``clear`` (a queue's waiting work).

A bulk action on more than 1,000 jobs asks for confirmation on a terminal and refuses without
one unless ``--yes``. Examples::

    fastjobs retry myproject.jobs:app 0193a1b2...7e 0193a1b2...7f
    fastjobs retry myproject.jobs:app 0193a1b2...7e --kwargs '{"to": "b@c.d"}' --to-queue emails-slow
    fastjobs retry myproject.jobs:app --state dead --queue emails --since 2026-12-06T00:00 --yes
    fastjobs cancel myproject.jobs:app --queue imports --task myproject.jobs.import_file
    fastjobs delete myproject.jobs:app --state cancelled --tag tenant:42
    fastjobs purge myproject.jobs:app --state dead --queue emails
    fastjobs clear myproject.jobs:app emails
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from .._core import STATE_NAMES
from ..app import App
from ..backends import BROKEN
from ._common import (
    Commands,
    NotDone,
    UsageError,
    add_command,
    add_filter,
    confirm,
    filter_of,
    has_filter,
    json_arg,
    load_app,
    point_app,
    print_json,
    run_with,
)

ACTS_ON = {
    "retry": ("dead", "cancelled"),
    "cancel": ("scheduled", "queued", "active", "retry_pending", "waiting"),
    "delete": tuple(s for s in STATE_NAMES if s != "active"),
}
"""The states each action changes (a filter may narrow them)."""

PAST = {"retry": "retried", "cancel": "cancelled", "delete": "deleted", "purge": "purged", "clear": "cleared"}
CLEARED = ("queued", "scheduled", "retry_pending")
"""What ``clear`` deletes: a queue's jobs that wait for a worker (not active, waiting or finished)."""


def add_parsers(sub: Commands) -> None:
    r = add_command(
        sub, "retry", cmd_retry,
        help="retry dead or cancelled jobs: by id (optionally edited), or all matching a filter",
        description="Put dead or cancelled jobs back in their queue with fresh attempts: the jobs named by "
        "id, or every job matching the filter options (--state dead when no --state is given). One job "
        "may be edited as it is retried (--args, --kwargs, --to-queue, --priority, --max-attempts), "
        "checked as at enqueue.",
    )
    _ids_and_filter(r, "retry", "only jobs in this state (repeatable, or comma-separated; default: dead)")
    edit = r.add_argument_group("edit one job as it is retried")
    edit.add_argument("--args", default=None, metavar="JSON", help="new positional arguments, a JSON array")
    edit.add_argument("--kwargs", default=None, metavar="JSON", help="new keyword arguments, a JSON object")
    edit.add_argument("--to-queue", default=None, metavar="Q", help="move it to this queue (same id)")
    edit.add_argument("--priority", type=int, default=None, metavar="N", help="its new priority")
    edit.add_argument("--max-attempts", type=int, default=None, metavar="N", help="its new max_attempts")

    c = add_command(
        sub, "cancel", cmd_cancel, help="cancel unfinished jobs: by id, or all matching a filter",
        description="Cancel jobs that have not finished (scheduled, queued, retry_pending, waiting, active: "
        "a running job's worker finds its lease voided). Their dependants are cancelled too.",
    )
    _ids_and_filter(c, "cancel", "only jobs in this state (repeatable, or comma-separated; default: any unfinished)")

    d = add_command(
        sub, "delete", cmd_delete, help="delete jobs that are not running: by id, or all matching a filter",
        description="Delete jobs (any state but active): gone, their unique keys freed, their waiting "
        "dependants treated as if they had been cancelled.",
    )
    _ids_and_filter(d, "delete", "only jobs in this state (repeatable, or comma-separated; default: any but active)")

    p = add_command(sub, "purge", cmd_purge, help="delete finished jobs of one state (and queue)",
                    description="Delete every dead, succeeded or cancelled job (of one queue, or all).")
    p.add_argument("--state", required=True, choices=["dead", "succeeded", "cancelled"], help="which jobs")
    p.add_argument("--queue", default=None, metavar="Q", help="only this queue (default: all)")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation above 1,000 jobs")

    cl = add_command(sub, "clear", cmd_clear, help="delete a queue's queued, scheduled and retry-pending jobs",
                     description="Delete the jobs of QUEUE that wait for a worker (queued, scheduled, "
                     "retry_pending); running, waiting and finished jobs stay.")
    cl.add_argument("queue", help="the queue to clear")
    cl.add_argument("--yes", action="store_true", help="do not ask for confirmation above 1,000 jobs")


def _ids_and_filter(p: argparse.ArgumentParser, action: str, state_help: str) -> None:
    p.add_argument("ids", nargs="*", metavar="ID", help=f"the ids of the jobs to {action}")
    group = p.add_argument_group(f"or {action} every job matching (instead of ids)")
    add_filter(group, state_help=state_help)
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation above 1,000 jobs")


def _ids(args: argparse.Namespace, action: str) -> list[str]:
    ids = list(dict.fromkeys(args.ids))
    if ids and has_filter(args):
        raise UsageError(f"{action} takes job ids or filter options (--state, --queue...), not both")
    if not ids and not has_filter(args):
        raise UsageError(f"{action} what? give job ids, or filter options (--state, --queue, --task, --tag...)")
    return ids


async def count_matching(app: App, action: str, where: dict[str, Any]) -> int:
    """How many jobs a filter matches among those ``action`` changes. A filter on states and a
    queue only is counted from ``stats`` (one cheap call); others page through a search."""
    if any(where.get(k) is not None for k in ("task", "tag", "since", "until")):
        counted: int = await app.count_matching(**where)
        return counted
    return await _count_from_stats(app, where.get("state"), where.get("queue"), ACTS_ON.get(action, STATE_NAMES))


async def _count_from_stats(app: App, state: Any, queue: str | None, acts_on: Iterable[str]) -> int:
    wanted = set(acts_on)
    if state is not None:
        named = {state} if isinstance(state, str) else set(state)
        wanted &= {"retry_pending" if s == "retry" else s for s in named}
    stats = await app.stats()
    return sum(
        int(count) for name, row in stats.items() if (queue is None or name == queue) and BROKEN not in row
        for s, count in row.items() if s in wanted
    )


def _jobs(count: int) -> str:
    return f"{count:,} job" if count == 1 else f"{count:,} jobs"


def _report(args: argparse.Namespace, action: str, done: int, asked: int | None, what: str = "") -> int:
    """Print what an action did (``what`` follows the count of jobs); exit status 1 when some
    named job could not be acted on."""
    if args.json:
        print_json({"action": action, PAST[action]: done, **({} if asked is None else {"asked": asked})})
    elif asked is None:
        print(f"{PAST[action]} {_jobs(done)}{what}")
    else:
        print(f"{PAST[action]} {done:,} of {_jobs(asked)}")
    if asked is not None and done < asked:
        raise NotDone(f"{asked - done:,} of the jobs named were not {PAST[action]}: unknown, or in a state "
                       f"that does not allow it (see `fastjobs job {args.app} ID`)")
    return 0


def _run_bulk(args: argparse.Namespace, app: App, action: str, where: dict[str, Any],
              act: Callable[..., Coroutine[Any, Any, int]]) -> int:
    async def work() -> int:
        if not args.yes:
            confirm(action, await count_matching(app, action, where), args.yes)
        return await act(**where)

    return _report(args, action, run_with(app, work()), None, " matching the filter")


async def _single_state(app: App, job_id: str, action: str) -> str:
    """Why ``action`` did nothing to one named job (raises UsageError for an unknown id)."""
    info = await app.get_job(job_id)
    if info is None:
        raise UsageError(f"no job with id {job_id!r} (unknown, or its result_ttl / dead_ttl ran out)")
    allowed = ", ".join(ACTS_ON[action])
    return f"job {job_id} is {info.state}: {action} applies to {allowed} jobs; nothing changed"


def cmd_retry(args: argparse.Namespace) -> int:
    app = point_app(load_app(args.app), args.url, "retry")
    ids = _ids(args, "retry")
    edits: dict[str, Any] = {}
    if args.args is not None:
        edits["args"] = json_arg("args", args.args, list)
    if args.kwargs is not None:
        edits["kwargs"] = json_arg("kwargs", args.kwargs, dict)
    for name, value in (("queue", args.to_queue), ("priority", args.priority), ("max_attempts", args.max_attempts)):
        if value is not None:
            edits[name] = value
    if edits and len(ids) != 1:
        raise UsageError("the edit options (--args, --kwargs, --to-queue, --priority, --max-attempts) apply to "
                         "exactly one job id")
    if not ids:
        where = filter_of(args)
        if where["state"] is None:
            where["state"] = "dead"
        return _run_bulk(args, app, "retry", where, app.retry_matching)
    if len(ids) == 1:
        async def one() -> int:
            # app.retry raises, saying why, for an unknown id or a state retry does not apply to.
            if await app.retry(ids[0], **edits):
                return 1
            raise NotDone(f"job {ids[0]} was not retried: a live job of its queue holds its unique key, "
                           "or it changed state meanwhile")
        return _report(args, "retry", run_with(app, one()), 1)
    return _report(args, "retry", run_with(app, app.retry_many(ids)), len(ids))


def _by_ids(args: argparse.Namespace, app: App, action: str, ids: list[str],
            many: Callable[[list[str]], Coroutine[Any, Any, int]],
            single: Callable[[str], Coroutine[Any, Any, bool]]) -> int:
    async def work() -> int:
        if len(ids) > 1:
            return await many(ids)
        if await single(ids[0]):
            return 1
        raise UsageError(await _single_state(app, ids[0], action))

    return _report(args, action, run_with(app, work()), len(ids))


_Methods = tuple[
    Callable[..., Coroutine[Any, Any, int]],  # by filter: app.<action>_matching
    Callable[[list[str]], Coroutine[Any, Any, int]],  # by ids: app.<action>_many
    Callable[[str], Coroutine[Any, Any, bool]],  # by one id: app.<action>
]


def _act_by_ids_or_filter(args: argparse.Namespace, action: str, methods: Callable[[App], _Methods]) -> int:
    """An action without edits (cancel, delete): on the ids given, or on every job matching the filter."""
    app = point_app(load_app(args.app), args.url, action)
    ids = _ids(args, action)
    matching, many, single = methods(app)
    if not ids:
        return _run_bulk(args, app, action, filter_of(args), matching)
    return _by_ids(args, app, action, ids, many, single)


def cmd_cancel(args: argparse.Namespace) -> int:
    return _act_by_ids_or_filter(args, "cancel", lambda app: (app.cancel_matching, app.cancel_many, app.cancel))


def cmd_delete(args: argparse.Namespace) -> int:
    return _act_by_ids_or_filter(args, "delete", lambda app: (app.delete_matching, app.delete_many, app.delete))


def cmd_purge(args: argparse.Namespace) -> int:
    app = point_app(load_app(args.app), args.url, "purge")

    async def work() -> int:
        if not args.yes:
            confirm(f"purge {args.state}", await _count_from_stats(app, args.state, args.queue, STATE_NAMES), False)
        return await app.purge(args.state, args.queue)

    where = f" ({args.state}" + (f", queue {args.queue})" if args.queue else ", every queue)")
    return _report(args, "purge", run_with(app, work()), None, where)


def cmd_clear(args: argparse.Namespace) -> int:
    app = point_app(load_app(args.app), args.url, "clear")

    async def work() -> int:
        if not args.yes:
            confirm(f"clear {args.queue}", await _count_from_stats(app, None, args.queue, CLEARED), False)
        return await app.clear(args.queue)

    return _report(args, "clear", run_with(app, work()), None,
                   f" of queue {args.queue} (queued, scheduled, retry_pending)")

