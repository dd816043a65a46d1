"""The Lua scripts: assembled from ``fastjobs/lua``, loaded at connect, called with EVALSHA.

Each ``<op>-<numkeys>.lua`` file is one atomic operation; ``-- @include <name>``
lines paste in shared snippets (``_common.lua``, which includes ``_events.lua``;
``_history.lua``), each once per script, and a generated prelude
defines the job states from :mod:`fastjobs._core`, so no state number is
written twice. Of the prelude and snippets, each script keeps only the
definitions it reaches (:mod:`.lua_prune`): Lua builds them all on every call. A server that lost its scripts (restart, ``SCRIPT FLUSH``)
answers NOSCRIPT: :func:`evalsha` loads them all again and retries once, as
redis-py's ``Script`` does.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import logging
import re
from typing import Any, Sequence

import msgpack  # type: ignore[import-untyped, unused-ignore]
from redis.exceptions import NoScriptError

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
    """The Lua lines that define the states, as the job records store them (strings), and GONE_KEPT."""
    lines = ["-- Generated from fastjobs._core (backends/redis/scripts.py): the job states as stored.\n"]
    lines += [f"local {name} = '{number}'\n" for name, number in STATES.items()]
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


async def reload_quietly(client: Any) -> None:
    """Load the scripts again where no caller waits for the outcome (a failure is logged)."""
    try:
        await load_into(client)
    except Exception as exc:
        log.warning("could not load the scripts again: %s", exc)


async def evalsha(client: Any, script: Script, keys: Sequence[bytes], args: Sequence[Any]) -> Any:
    """Run ``script``; on NOSCRIPT load them all again, once, and retry."""
    try:
        return await client.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
    except NoScriptError:
        # The server restarted or SCRIPT FLUSH ran.
        log.info("Redis lost its scripts (restart or SCRIPT FLUSH?); loading them again")
        await load_into(client)
        return await client.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)


__all__ = [
    "SCRIPTS", "STATES", "Script", "assemble", "evalsha", "load_into", "load_scripts", "pack", "reload_quietly", "state_prelude", "unpack",
]
