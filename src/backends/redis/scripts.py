"""The Lua scripts: assembled from ``fastjobs/lua``, loaded at connect, called with FCALL or EVALSHA.

Each ``<op>-<numkeys>.lua`` file is one atomic operation; ``-- @include <name>``
lines paste in shared snippets (``_common.lua``, which includes ``_events.lua``;
``_history.lua``), each once per script, and a generated prelude
defines the job states from :mod:`fastjobs._core`, so no state number is
written twice.

Two ways to run them, one per connection (:class:`Calls`):

* **A function library** (Redis 7, outside Cluster; the default where the server
  takes it): :data:`LIBRARY` holds the prelude and snippets once, and each script's
  own lines as a function ``<library>_<op>`` (``FCALL``). The shared definitions
  are built once, at ``FUNCTION LOAD``, instead of on every call (for a claim of
  one job that setup was a quarter of the server's work); each function starts
  with ``call_fresh()``, which empties the snippets' per-call memos. A script whose
  own lines say ``-- @no-writes`` gets that flag (Redis then runs it on a server past
  its maxmemory, as it runs any script; a function that may write is refused there). The library's
  name carries its source's digest, so workers of two versions on one server
  each keep their own.
* **Scripts** (Redis 6.2, Cluster, an ACL without ``FUNCTION``, or
  ``functions=False``): each script with EVALSHA. Of the prelude and snippets
  each keeps only the definitions it reaches (:mod:`.lua_prune`), since Lua
  builds them all on every call.

A server that lost them (restart without persistence, ``SCRIPT FLUSH``,
``FUNCTION FLUSH``) answers NOSCRIPT or "Function not found": :meth:`Calls.call`
loads them again, once, and retries, as redis-py's ``Script`` does.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import logging
import re
from typing import Any, Sequence

import msgpack  # type: ignore[import-untyped, unused-ignore]
from redis.exceptions import NoScriptError, ResponseError

from ..._core import ACTIVE, CANCELLED, DEAD, QUEUED, RETRY_PENDING, SCHEDULED, SUCCEEDED, WAITING
from ...errors import ConfigurationError
from ..base import GONE_KEPT
from .lua_prune import prune

log = logging.getLogger("fastjobs.redis")

pack = msgpack.Packer(use_bin_type=False).pack
"""Batches travel as one msgpack argument per queue; Redis' cmsgpack reads
bytes only as the old raw type, hence ``use_bin_type=False``."""

unpack = functools.partial(msgpack.unpackb, raw=False)
"""What a script stored with cmsgpack (or :data:`pack`), strings as str."""

STATES = {
    "SCHEDULED": SCHEDULED,
    "QUEUED": QUEUED,
    "ACTIVE": ACTIVE,
    "SUCCEEDED": SUCCEEDED,
    "RETRY_PENDING": RETRY_PENDING,
    "DEAD": DEAD,
    "CANCELLED": CANCELLED,
    "WAITING": WAITING,
}
"""The Lua names of the job states; the scripts know the numbers only through these."""


def state_prelude() -> str:
    """The Lua lines that define the states, as the text records store them (strings) and as numbers
    (``STATE_NUMBERS``), and GONE_KEPT."""
    lines = ["-- Generated from fastjobs._core (backends/redis/scripts.py): the job states as stored.\n"]
    lines += [f"local {name} = '{number}'\n" for name, number in STATES.items()]
    numbers = ", ".join(f"{name} = {number}" for name, number in STATES.items())
    lines.append(f"local STATE_NUMBERS = {{{numbers}}}  -- the same, as numbers (layout 1 records)\n")
    lines.append(f"local GONE_KEPT = {GONE_KEPT:g}  -- base.GONE_KEPT: seconds a gone worker stays listed\n")
    return "".join(lines)


class Script:
    """One Lua script: its source with includes resolved, and its SHA1."""

    __slots__ = ("name", "numkeys", "source", "sha")

    def __init__(self, name: str, numkeys: int, source: str) -> None:
        self.name = name
        self.numkeys = numkeys
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def __repr__(self) -> str:
        return f"<Script {self.name}-{self.numkeys} {self.sha[:8]}>"


_SCRIPT_NAME = re.compile(r"^(?P<op>[a-z_]+)-(?P<numkeys>\d+)\.lua$")
_INCLUDE = re.compile(r"^-- @include (\w+)$", re.MULTILINE)
_NO_WRITES = re.compile(r"^-- @no-writes\b", re.MULTILINE)
"""A script that only reads says so on a line of its own: its function gets the ``no-writes`` flag."""


def _lua_files() -> dict[str, str]:
    folder = importlib.resources.files("fastjobs") / "lua"
    return {entry.name: entry.read_text("utf-8") for entry in folder.iterdir() if entry.name.endswith(".lua")}


def assemble(filename: str, texts: dict[str, str] | None = None) -> list[tuple[str, bool]]:
    """The pieces of script ``filename`` (``<op>-<numkeys>.lua``), in order, as (text,
    prunable): the generated state prelude, the script's own lines and, in place of each
    ``-- @include <name>`` line, that snippet (prunable, each pasted once; snippets may include
    snippets: ``_common`` pulls in ``_events``). Joined, they are the script unpruned."""
    texts = _lua_files() if texts is None else texts
    pasted: set[str] = set()

    def resolve(text: str, prunable: bool) -> list[tuple[str, bool]]:
        pieces: list[tuple[str, bool]] = []
        at = 0
        for match in _INCLUDE.finditer(text):
            pieces.append((text[at:match.start()], prunable))
            at = match.end() + 1  # the include line's newline goes with it
            name = match.group(1)
            if name not in pasted:
                pasted.add(name)
                pieces += resolve(texts[name + ".lua"], True)
        pieces.append((text[at:], prunable))
        return pieces

    return [(state_prelude(), True), *resolve(texts[filename], False)]


def load_scripts() -> dict[str, Script]:
    """Read ``fastjobs/lua/<op>-<numkeys>.lua``, each from :func:`assemble`, keeping of the
    prelude and snippets only what the script uses (:mod:`.lua_prune`)."""
    texts = _lua_files()
    scripts = {}
    for name in sorted(texts):
        m = _SCRIPT_NAME.match(name)
        if m is not None:
            scripts[m["op"]] = Script(m["op"], int(m["numkeys"]), prune(assemble(name, texts)))
    return scripts


SCRIPTS = load_scripts()


def build_library(texts: dict[str, str] | None = None) -> tuple[str, str]:
    """Every script as a function of one Redis 7 library: (library name, source).

    The prelude and snippets come once, in the order the scripts paste them;
    each script's own lines become the body of ``<name>_<op>(KEYS, ARGV)``, which
    starts with ``call_fresh()`` (``_common.lua``)."""
    texts = _lua_files() if texts is None else texts
    shared: dict[str, None] = {}
    functions: list[tuple[str, str, str]] = []  # (op, flags, body)
    for filename in sorted(texts):
        m = _SCRIPT_NAME.match(filename)
        if m is None:
            continue
        own = []
        for text, prunable in assemble(filename, texts):
            if prunable:
                shared.setdefault(text)
            else:
                own.append(text)
        body = "".join(own)
        # A function that declares no flags may write, so Redis refuses it on a server past its
        # maxmemory; one that only reads says so, and stats, search and get still answer there.
        functions.append((m["op"], ", flags = {'no-writes'}" if _NO_WRITES.search(body) else "", body))

    def source(name: str) -> str:
        return "".join(shared) + "".join(
            f"redis.register_function{{function_name = '{name}_{op}'{flags}, "
            f"callback = function(KEYS, ARGV)\ncall_fresh()\n{body}\nend}}\n" for op, flags, body in functions)

    name = "fastjobs_" + hashlib.sha1(source("").encode()).hexdigest()[:16]
    return name, f"#!lua name={name}\n" + source(name)


LIBRARY_NAME, LIBRARY = build_library()
"""The function library (Redis 7): its name, ``fastjobs_<digest of its source>``, and source."""

FUNCTIONS = {op: f"{LIBRARY_NAME}_{op}".encode() for op in SCRIPTS}
"""Each script's function name in :data:`LIBRARY`."""


async def load_into(client: Any) -> None:
    """Load every script into the server (each node of a Cluster), checking its SHA."""
    for script in SCRIPTS.values():
        sha = await client.script_load(script.source)
        if isinstance(sha, dict):  # Cluster: one reply per node
            sha = next(iter(sha.values()))
        if isinstance(sha, bytes):
            sha = sha.decode()
        if sha != script.sha:
            raise ConfigurationError(f"Redis returned SHA {sha} for script {script.name}, expected {script.sha}")


def lost(exc: BaseException) -> bool:
    """Whether ``exc`` says the server lost the scripts or the library (restart, a FLUSH)."""
    # (A server that answers "unknown command" to FCALL is an older one that took this one's place.)
    return isinstance(exc, NoScriptError) or (
        isinstance(exc, ResponseError) and str(exc).startswith(("Function not found", "unknown command 'FCALL'",
                                                                "unknown command `FCALL`")))


class Calls:
    """How one connection runs the scripts: FCALL of :data:`LIBRARY` or EVALSHA (see the module).

    ``functions``: None takes the library where the server does (Redis 7 outside
    Cluster) and the scripts elsewhere; False always the scripts; True the
    library or a :class:`ConfigurationError` at connect."""

    __slots__ = ("want", "functions", "cluster")

    def __init__(self, functions: bool | None = None) -> None:
        if functions is not None and not isinstance(functions, bool):
            raise ConfigurationError(
                f"functions={functions!r}: pass True (the Redis 7 function library, or an error at connect), False "
                "(EVAL scripts always) or None (the library where the server takes it: the default)"
            )
        self.want = functions
        self.functions = False
        """Whether this connection calls the library (decided by :meth:`load`)."""
        self.cluster = False

    async def load(self, client: Any, cluster: bool | None = None) -> None:
        """Load the library, or the scripts where the library cannot be had (``cluster``: as the last time)."""
        cluster = self.cluster = self.cluster if cluster is None else cluster
        if self.want is not False and not cluster:
            try:
                await client.execute_command("FUNCTION", "LOAD", LIBRARY)
            except ResponseError as exc:
                if "already exists" in str(exc):  # the same name is the same source
                    self.functions = True
                    return
                if self.want:
                    raise ConfigurationError(
                        f"Redis refused fastjobs' function library ({exc}): it needs Redis 7 or later, outside "
                        "Cluster, and the FUNCTION command allowed; pass functions=None to fall back to scripts"
                    ) from exc
                log.info("Redis refused the function library (%s); calling the scripts with EVALSHA", exc)
            else:
                self.functions = True
                return
        elif self.want and cluster:
            raise ConfigurationError(
                "functions=True: fastjobs' function library is not used in Redis Cluster; pass functions=None")
        self.functions = False
        await load_into(client)

    def command(self, script: Script, keys: Sequence[bytes]) -> tuple[Any, ...]:
        """The command that runs ``script`` on ``keys``, its arguments to follow."""
        if self.functions:
            return ("FCALL", FUNCTIONS[script.name], len(keys), *keys)
        return ("EVALSHA", script.sha, len(keys), *keys)

    async def call(self, client: Any, script: Script, keys: Sequence[bytes], args: Sequence[Any]) -> Any:
        """Run ``script``; if the server lost it, load again, once, and retry."""
        try:
            return await client.execute_command(*self.command(script, keys), *args)
        except ResponseError as exc:
            if not lost(exc):
                raise
            log.info("Redis lost fastjobs' scripts (restart, SCRIPT FLUSH or FUNCTION FLUSH?); loading them again")
            await self.load(client)
            return await client.execute_command(*self.command(script, keys), *args)

    async def reload_quietly(self, client: Any) -> None:
        """Load again where no caller waits for the outcome (a failure is logged)."""
        try:
            await self.load(client)
        except Exception as exc:
            log.warning("could not load the scripts again: %s", exc)


__all__ = [
    "FUNCTIONS", "LIBRARY", "LIBRARY_NAME", "SCRIPTS", "STATES", "Calls", "Script", "assemble", "build_library",
    "load_into", "load_scripts", "lost", "pack", "state_prelude", "unpack",
]
