"""``fastjobs enqueue`` (one job from the command line) and ``fastjobs migrate`` (the schema).

Example::

    fastjobs enqueue myproject.jobs:app myproject.jobs.send_email --args '["a@b.c"]' --tag import
    fastjobs migrate myproject.jobs:app     # PostgreSQL: create or upgrade the schema
"""

from __future__ import annotations

import argparse
from typing import Any

from ..backends import backend_class
from ._common import (
    Commands,
    UsageError,
    add_command,
    json_arg,
    load_app,
    point_app,
    print_json,
    run,
)


def add_parsers(sub: Commands) -> None:
    e = add_command(sub, "enqueue", cmd_enqueue, help="enqueue one job and print its id",
                    description="Enqueue one job of a registered task and print its id.")
    e.add_argument("task", help="the task's registered name")
    e.add_argument("--args", default="[]", help="positional arguments as a JSON array")
    e.add_argument("--kwargs", default="{}", help="keyword arguments as a JSON object")
    e.add_argument("--queue", help="override the task's queue")
    e.add_argument("--priority", type=int, help="override the task's priority")
    e.add_argument("--delay", type=float, default=0.0, help="seconds before the job may run")
    e.add_argument("--tag", action="append", default=None, metavar="X", help="a tag for the job (repeatable)")
    e.add_argument("--meta", default=None, metavar="JSON", help="metadata for the job, as a JSON object")

    add_command(sub, "migrate", cmd_migrate, help="create or upgrade the backend's schema (PostgreSQL)",
                description="Create or upgrade the fastjobs schema and its SQL functions (PostgreSQL; "
                "the other backends keep no schema). Needs CREATE on the database.")


def cmd_enqueue(args: argparse.Namespace) -> int:
    app = load_app(args.app)
    task = app.tasks.get(args.task)
    if task is None:
        known = ", ".join(sorted(app.tasks)) or "none"
        raise UsageError(f"no task named {args.task!r} in {args.app} (registered: {known})")
    call_args = json_arg("args", args.args, list)
    call_kwargs = json_arg("kwargs", args.kwargs, dict)
    overrides: dict[str, Any] = {"delay": args.delay}
    if args.queue:
        overrides["queue"] = args.queue
    if args.priority is not None:
        overrides["priority"] = args.priority
    if args.tag:
        overrides["tags"] = args.tag
    if args.meta is not None:
        overrides["meta"] = json_arg("meta", args.meta, dict)
    configured = task.options(**overrides)  # bad options fail here, before any connection
    point_app(app, args.url, "enqueue", read_only=False)

    async def main() -> str:
        try:
            handle = await configured.enqueue(*call_args, **call_kwargs)
            return handle.id
        finally:
            await app.close()

    job_id = run(main())
    if args.json:
        print_json({"id": job_id})
    else:
        print(job_id)
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    app = load_app(args.app)
    url = args.url or app.url
    scheme = url.partition(":")[0]
    if not hasattr(backend_class(url), "migrate"):
        if args.json:
            print_json({"schema": None, "applied": []})
        else:
            print(f"{scheme}:// keeps no schema: nothing to migrate")
        return 0
    point_app(app, url, "migrate", read_only=False)

    async def main() -> list[str]:
        try:
            # Connecting applies pending migrations and changed functions (under
            # an advisory lock); the backend reports what this run applied.
            backend: Any = await app.backend()
            applied: list[str] = await backend.migrate()
            return applied + (["the SQL functions"] if backend.applied_functions else [])
        finally:
            await app.close()

    applied = run(main())
    prefix = app.options.prefix
    if args.json:
        print_json({"schema": prefix, "applied": applied})
    else:
        print(f"schema {prefix!r}: applied {', '.join(applied)}" if applied else f"schema {prefix!r} is up to date")
    return 0
