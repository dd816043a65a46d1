"""What every ``fastjobs`` command shares: the App to load, the backend to open, the options
every command takes (``--url``, ``--json``, ``--log-level``), text layout in 100 columns,
time arguments, JSON output and the confirmation a bulk action asks for.

Exit statuses: 0 done, 1 the action did not happen (declined, unhealthy, backend failure),
2 bad input (one line on stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import datetime as dt
import importlib
import json
import logging
import os
import sys
import textwrap
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, NoReturn, TypeAlias, TypeVar

from ..app import App
from ..backends import backend_class
from ..backends.base import Backend
from ..job import JobInfo
from ..logs import FORMATS

T = TypeVar("T")
log = logging.getLogger("fastjobs.cli")

WIDTH = 100
"""Columns the text output of the CLI fits in."""

CONFIRM_ABOVE = 1000
"""A bulk action on more jobs than this asks for confirmation (or ``--yes``)."""


class UsageError(Exception):
    """Bad command-line input: printed as one line, exit status 2."""


class NotDone(Exception):
    """Not (all) done, though the input was good: declined at the prompt, some of the jobs named
    not acted on, an unhealthy ``check``. One line on stderr, exit status 1."""


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr and exit status 2, like every
    other bad input (argparse's own prints the usage first)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"fastjobs: error: {message} (see `{self.prog} --help`)\n")


Commands: TypeAlias = "argparse._SubParsersAction[Parser]"
"""Where each command module adds its subcommands."""


class Formatter(argparse.HelpFormatter):
    """``--help`` in 100 columns, showing each option's default (when it has a meaningful one)."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=WIDTH, max_help_position=32)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "%(default)" not in text and action.default not in (None, False, argparse.SUPPRESS) and (
            action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE)
        ):
            text += " (default: %(default)s)"
        return text


# -- the App and its backend ---------------------------------------------------------


def load_app(target: str) -> App:
    """Import ``module:attribute`` and return the App it names.

    Example:
        >>> load_app("myproject.jobs:app")  # doctest: +SKIP
        <fastjobs.App redis://localhost:6379/0 tasks=3>
    """
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(f"expected MODULE:APP (like myproject.jobs:app), got {target!r}")
    if module_name.endswith(".py"):
        raise UsageError(
            f"{module_name!r} is a file name; give the module name: {module_name[:-3].replace(os.sep, '.')}:{attr}"
        )
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:
        # The module's own failure (a missing dependency, a bad setting) is the user's
        # to fix: show where it happened, not only its last line.
        log.debug("importing %s failed", module_name, exc_info=True)
        found = isinstance(exc, ModuleNotFoundError) and exc.name == module_name
        hint = "" if found else " (run with --log-level DEBUG for the traceback)"
        raise UsageError(f"cannot import module {module_name!r}: {type(exc).__name__}: {exc}{hint}") from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise UsageError(f"module {module_name!r} has no attribute {attr!r}") from None
    if not isinstance(obj, App):
        raise UsageError(f"{target} is a {type(obj).__name__}, not a fastjobs.App")
    return obj


def require_shared(url: str, command: str) -> None:
    """Refuse ``memory://``: a new process never sees another process's memory store."""
    if url.startswith("memory:"):
        raise UsageError(
            f"the app uses memory://, which lives inside one process: `fastjobs {command}` runs in a new "
            "process and would never see its jobs. Use redis:// or postgresql:// (or --url), or run the "
            "worker in-process with `await app.run_worker()`"
        )


def backend_extra(app: App, url: str, *, read_only: bool) -> dict[str, Any]:
    """The keyword arguments of the backend at ``url`` for ``app``: the App's own backend
    options when ``url`` is of its own backend's kind; ``migrate=False`` when read-only."""
    cls = backend_class(url)
    extra: dict[str, Any] = dict(app._backend_extra) if cls is app._backend_cls else {}
    if read_only and hasattr(cls, "migrate"):
        extra["migrate"] = False
    return extra


def read_only_backend(app: App, url: str | None) -> Backend:
    """A backend for ``app`` (at ``url`` if given) that never creates or migrates a schema.

    Example:
        >>> read_only_backend(app, "postgresql://localhost/jobs")  # doctest: +SKIP
        <PostgresBackend schema='fastjobs'>
    """
    url = url or app.url
    return backend_class(url)(url, app.options, **backend_extra(app, url, read_only=True))


def point_app(app: App, url: str | None, command: str, *, read_only: bool = True) -> App:
    """Aim ``app`` at ``url`` (``--url``, else the App's own) before it opens any connection,
    so that its own methods (``app.jobs``, ``app.retry``...) run there. ``read_only``: its
    backend never creates or upgrades a schema; :func:`open_app` then says "run `fastjobs
    migrate`" on an empty PostgreSQL database instead. Refuses ``memory://``.
    """
    url = url or app.url
    cls = backend_class(url)  # a bad URL fails here, as a ConfigurationError
    extra = backend_extra(app, url, read_only=read_only)
    require_shared(url, command)
    app.url, app._backend_cls, app._backend_extra = url, cls, extra
    return app


async def open_app(app: App) -> Backend:
    """Connect ``app``'s backend and check that the store is set up (never changing it)."""
    backend = await app.backend()
    await backend.ready()
    return backend


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine on uvloop when it is installed."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def run_with(app: App, work: Coroutine[Any, Any, T]) -> T:
    """Run ``work`` against the connected, ready ``app``, then close the App's connections."""

    async def main() -> T:
        try:
            await open_app(app)
            return await work
        finally:
            work.close()  # not awaited if connecting failed: no "never awaited" warning
            await app.close()

    return run(main())


# -- arguments -----------------------------------------------------------------------


def add_common(p: argparse.ArgumentParser, *, json_output: bool = True) -> None:
    """The arguments every command takes: the App, ``--url``, ``--log-level`` (and ``--json``)."""
    p.add_argument("app", help="the App to use, as MODULE:ATTRIBUTE (e.g. myproject.jobs:app)")
    p.add_argument("--url", default=None,
                   help="the backend URL, overriding the App's own (like FASTJOBS_URL); default: the App's")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                   help="how much to log")
    p.add_argument("--log-format", default="text", choices=FORMATS,
                   help="log lines as text, or as one JSON object per line (time, level, message, job_id, task, "
                   "queue, attempt, worker_id) for log pipelines")
    if json_output:
        p.add_argument("--json", action="store_true", help="print JSON instead of text")


def add_command(sub: Commands, name: str, func: Callable[[argparse.Namespace], int], *, help: str,
                description: str, json_output: bool = True) -> Parser:
    """A subcommand that runs ``func``, with our help layout and the arguments every command
    takes (:func:`add_common`); the caller adds its own."""
    p = sub.add_parser(name, help=help, description=description, formatter_class=Formatter)
    add_common(p, json_output=json_output)
    p.set_defaults(func=func)
    return p


def add_filter(p: argparse._ActionsContainer, *,
               state_help: str = "only jobs in this state (repeatable, or comma-separated)") -> None:
    """The options that select jobs: state, queue, task, tag and a time range."""
    p.add_argument("--state", action="append", default=None, metavar="S", help=state_help)
    p.add_argument("--queue", default=None, metavar="Q", help="only jobs of this queue")
    p.add_argument("--task", default=None, metavar="T", help="only jobs of this task (its registered name)")
    p.add_argument("--tag", default=None, metavar="X", help="only jobs carrying this tag")
    p.add_argument("--since", default=None, metavar="TIME",
                   help="only jobs at or after TIME: ISO 8601 (UTC unless it says) or epoch seconds; a job's "
                   "time is when it finished, or when it was enqueued if it has not")
    p.add_argument("--until", default=None, metavar="TIME", help="only jobs before TIME (as --since)")


def filter_of(args: argparse.Namespace) -> dict[str, Any]:
    """The App's filter keyword arguments from :func:`add_filter`'s options."""
    return {
        "state": states_arg(args.state),
        "queue": args.queue, "task": args.task, "tag": args.tag,
        "since": parse_time("since", args.since), "until": parse_time("until", args.until),
    }


def has_filter(args: argparse.Namespace) -> bool:
    return any(getattr(args, name) is not None for name in ("state", "queue", "task", "tag", "since", "until"))


def parse_time(name: str, text: str | None) -> float | None:
    """``--since`` / ``--until``: epoch seconds, or ISO 8601 (naive means UTC).

    Example:
        >>> parse_time("since", "2026-01-02T03:04:05Z"), parse_time("since", "1767323045")
        (1767323045.0, 1767323045.0)
    """
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"--{name} must be ISO 8601 (like 2026-01-02T03:04:05Z or 2026-01-02) or epoch seconds, not {text!r}"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return when.timestamp()


def json_arg(name: str, text: str, kind: type) -> Any:
    """Parse ``--name``'s JSON, which must be a ``kind`` (list: an array, dict: an object)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--{name} is not valid JSON ({exc.msg} at position {exc.pos}): {text!r}") from None
    if not isinstance(value, kind):
        raise UsageError(f"--{name} must be a JSON {'array' if kind is list else 'object'}, got {text!r}")
    return value


# -- output --------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"base64": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return repr(value)


def print_json(value: Any, *, compact: bool = False) -> None:
    """Print ``value`` as JSON; bytes (job arguments may hold some) as ``{"base64": ...}``."""
    print(json.dumps(value, default=_json_default, indent=None if compact else 2))


def job_json(info: JobInfo) -> dict[str, Any]:
    """Everything in a :class:`JobInfo` as JSON-ready values (times as epoch seconds)."""
    data = {f.name: getattr(info, f.name) for f in dataclasses.fields(info)}
    data["errors"] = [dataclasses.asdict(e) for e in info.errors]
    data["progress"] = None if info.progress is None else dataclasses.asdict(info.progress)
    for name, value in data.items():
        if isinstance(value, tuple):
            data[name] = list(value)
    return data


def fit(text: str, width: int) -> str:
    """``text`` cut to ``width`` columns, a ``~`` marking the cut."""
    return text if len(text) <= width else text[: max(width - 1, 0)] + "~"


def wrap(text: str, indent: str = "", width: int = WIDTH) -> list[str]:
    """``text``'s lines, each wrapped to ``width`` columns under ``indent`` (long words cut too)."""
    out: list[str] = []
    for line in text.splitlines() or [""]:
        out += textwrap.wrap(line, width, initial_indent=indent, subsequent_indent=indent + "  ",
                             replace_whitespace=False, drop_whitespace=False) or [indent]
    return [line.rstrip() for line in out]


def duration(seconds: float) -> str:
    """A short human duration: ``42 s``, ``3 m``, ``5 h``, ``2 d``."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{max(seconds, 0):.0f} s"


def when(epoch: float | None, *, short: bool = False) -> str:
    """An epoch time in UTC: ``2026-12-06 15:44:03Z`` (``short``: ``12-06 15:44:03``)."""
    if not epoch:
        return "-"
    moment = dt.datetime.fromtimestamp(epoch, dt.timezone.utc)
    return moment.strftime("%m-%d %H:%M:%S") if short else moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def confirm(action: str, count: int, yes: bool) -> None:
    """Go on with a bulk ``action`` on ``count`` jobs: at once up to :data:`CONFIRM_ABOVE` jobs
    or with ``--yes``; above that, ask on a terminal and refuse without one.

    Raises:
        UsageError: no terminal to ask on and no ``--yes`` (exit 2).
        NotDone: the person at the terminal said no (exit 1).
    """
    if yes or count <= CONFIRM_ABOVE:
        return
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        raise UsageError(f"{action} would act on {count:,} jobs (more than {CONFIRM_ABOVE:,}): "
                         "pass --yes to confirm (no terminal to ask on)")
    sys.stderr.write(f"{action} {count:,} jobs? [y/N] ")
    sys.stderr.flush()
    answer = sys.stdin.readline().strip().lower()
    if answer not in ("y", "yes"):
        raise NotDone(f"{action}: nothing done")


def states_arg(values: Sequence[str] | None) -> Any:
    """One state name, several (a tuple), or None, as the App's ``state=`` takes them, from
    ``--state`` given once or more, each maybe a comma-separated list.

    Example:
        >>> states_arg(["dead"]), states_arg(["dead,cancelled", "queued"]), states_arg(None)
        ('dead', ('dead', 'cancelled', 'queued'), None)
    """
    names = [name.strip() for value in values or () for name in value.split(",")]
    if not names:
        return None
    return names[0] if len(names) == 1 else tuple(names)
