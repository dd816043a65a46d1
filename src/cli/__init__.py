"""The ``fastjobs`` command (also ``python -m fastjobs``).

Examples::

    fastjobs worker myproject.jobs:app --queues emails,default --concurrency 100 --processes 4
    fastjobs enqueue myproject.jobs:app myproject.jobs.send_email --args '["a@b.c"]'
    fastjobs jobs myproject.jobs:app --state dead --queue emails      # then --cursor for the next page
    fastjobs job myproject.jobs:app 0193a1b2c3d4e5f60718293a4b5c6d7e   # everything, tracebacks included
    fastjobs retry myproject.jobs:app --state dead --queue emails --yes
    fastjobs stats myproject.jobs:app --watch
    fastjobs check myproject.jobs:app --queue emails --max-age 300    # a Kubernetes probe
    fastjobs migrate myproject.jobs:app     # PostgreSQL: create or upgrade the schema
    fastjobs web myproject.jobs:app --port 8080   # the dashboard (pip install "fastjobs[web]")

Every command takes ``--url`` (the backend, overriding the App's own) and, but ``worker``,
``--json``. Only ``worker``, ``enqueue`` and ``migrate`` create or upgrade a PostgreSQL
schema; the others say "run `fastjobs migrate`" on an empty database.

Exit status: 0 done; 1 not (all) done with good input (a bulk action declined at the prompt,
some of the ids named not acted on, an unhealthy ``check``, the backend failing); 2 bad input,
one line on stderr (an unknown module, task, state or id, bad JSON, a bad cursor, an action on
one job in a state that does not allow it, a bulk action over 1,000 jobs without ``--yes`` and
no terminal to ask on).

The commands live one concern a module: :mod:`.worker`, :mod:`.admin` (enqueue, migrate),
:mod:`.jobs` (find and inspect), :mod:`.actions` (retry, cancel, delete, purge, clear),
:mod:`.queues` (pause, resume, info, stats, check) and :mod:`.workers`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from .._version import __version__
from ..errors import BackendError, FastjobsError, HookError
from ..logs import configure as configure_logs
from . import actions, admin, jobs, queues, web, worker, workers
from ._common import (
    WIDTH,
    Formatter,
    NotDone,
    Parser,
    UsageError,
    load_app,
    log,
    read_only_backend,
)
from .workers import format_workers

__all__ = ["WIDTH", "UsageError", "build_parser", "format_workers", "load_app", "main", "read_only_backend"]


def build_parser() -> Parser:
    """The ``fastjobs`` argument parser, every command included."""
    parser = Parser(prog="fastjobs", description="fastjobs: fast, trustworthy background jobs.",
                    formatter_class=Formatter)
    parser.add_argument("--version", action="version", version=f"fastjobs {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    worker.add_parser(sub)
    admin.add_parsers(sub)
    jobs.add_parsers(sub)
    actions.add_parsers(sub)
    queues.add_parsers(sub)
    workers.add_parser(sub)
    web.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``fastjobs`` command; return its exit status."""
    args = build_parser().parse_args(argv)
    configure_logs(getattr(args, "log_level", "INFO"), getattr(args, "log_format", "text"))
    try:
        code: int = args.func(args)
        return code
    except HookError as exc:  # the App's on_worker_start hook failed: restarting will not help
        log.error("%s", exc, exc_info=exc.__cause__)
        return 3
    except NotDone as exc:
        print(f"fastjobs: {exc}", file=sys.stderr)
        return 1
    except BackendError as exc:  # the backend failed: not the input's fault
        print(f"fastjobs: error: {exc}", file=sys.stderr)
        return 1
    except (UsageError, FastjobsError) as exc:
        print(f"fastjobs: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
