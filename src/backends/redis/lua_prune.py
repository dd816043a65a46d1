"""Keep, of the shared Lua a script pastes in, only the definitions it uses.

Every ``<op>-<numkeys>.lua`` script pastes in ``_common`` (and ``_events``,
``_history``): some 90 top-level functions and tables. Lua builds each of them
on every call of the script: a closure per function, found against every open
upvalue before it, and the garbage of all that. Measured on redis-server under
callgrind, that setup alone cost ~170,000 instructions per call, more than
claiming or acknowledging one job. Most scripts use a few of those helpers.

:func:`prune` splits the pasted (prunable) lines into top-level units: a
``local`` statement or ``local function`` with the comments before it, a
forward declaration with the ``do`` block that fills it. A unit is kept when
the script's own lines name one of the names it defines, directly or through
kept units; the rest are dropped, and the kept lines stay in their order.
Names are found on the source with its strings and comments blanked out; a
name after ``.`` or ``:`` is a field, not a use. Keeping a unit too many is
harmless (a local of the same name elsewhere, a table key), so the analysis
errs only that way.

A snippet therefore holds definitions only: a top-level statement of another
kind in a prunable line raises :class:`ValueError`, as it could not be kept
or dropped safely.
"""

from __future__ import annotations

import re
from typing import Iterable, Sequence

_LONG_OPEN = re.compile(r"\[(=*)\[")
_TOKEN = re.compile(r"0[xX][0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|[A-Za-z_]\w*|\.\.\.?|[.:]")
_KEYWORDS = frozenset(
    "and break do else elseif end false for function if in local nil not or repeat return then true until while".split()
)
_CLOSER = re.compile(r"(?:end|do)\b|[})\]]")
"""A line at column 0 that goes on the unit before it: the close of a block or table, or the
``do`` that fills a forward declaration."""


STRING = "\x01"
"""What :func:`blank` puts in place of a string's characters: not a name, not a space."""


def blank(source: str) -> str:
    """``source`` with every comment replaced by spaces and every string by :data:`STRING`, newlines kept."""
    out: list[str] = []
    i, n = 0, len(source)

    def spaces(text: str, fill: str = " ") -> str:
        return re.sub(r"[^\n]", fill, text)

    while i < n:
        c = source[i]
        if c == "-" and source.startswith("--", i):
            m = _LONG_OPEN.match(source, i + 2)
            if m:
                end = source.find("]" + m.group(1) + "]", m.end())
                stop = n if end < 0 else end + len(m.group(1)) + 2
            else:
                end = source.find("\n", i)
                stop = n if end < 0 else end
            out.append(spaces(source[i:stop]))
            i = stop
        elif c == "[" and (m := _LONG_OPEN.match(source, i)):
            end = source.find("]" + m.group(1) + "]", m.end())
            stop = n if end < 0 else end + len(m.group(1)) + 2
            out.append(spaces(source[i:stop], STRING))
            i = stop
        elif c in "'\"":
            j = i + 1
            while j < n and source[j] != c:
                j += 2 if source[j] == "\\" else 1
            stop = min(j + 1, n)
            out.append(spaces(source[i:stop], STRING))
            i = stop
        else:
            out.append(c)
            i += 1
    return "".join(out)


def names_used(blanked: str) -> set[str]:
    """The names a piece of blanked Lua reads or writes (fields and keywords aside)."""
    used: set[str] = set()
    prev = ""
    for m in _TOKEN.finditer(blanked):
        token = m.group()
        if (token[0].isalpha() or token[0] == "_") and prev not in (".", ":") and token not in _KEYWORDS:
            used.add(token)
        prev = token
    return used


def _names_defined(blanked: str) -> set[str]:
    """The names a top-level ``local`` statement (blanked, first line at column 0) defines."""
    m = re.match(r"local\s+function\s+([A-Za-z_]\w*)", blanked)
    if m:
        return {m.group(1)}
    head = re.match(r"local\s+([^=\n]*)", blanked)
    assert head is not None
    return {name.strip() for name in head.group(1).split(",") if name.strip()}


class _Unit:
    __slots__ = ("lines", "defines", "uses", "prunable")

    def __init__(self, prunable: bool) -> None:
        self.lines: list[str] = []
        self.defines: set[str] = set()
        self.uses: set[str] = set()
        self.prunable = prunable


def prune(pieces: Sequence[tuple[str, bool]]) -> str:
    """Join ``pieces`` (text, prunable) into one script, dropping the prunable units it does not use.

    The pieces must each end with a newline (or be empty).
    """
    units: list[_Unit] = []
    for text, prunable in pieces:
        if not prunable:
            unit = _Unit(False)
            unit.lines.append(text)
            unit.uses = names_used(blank(text))
            units.append(unit)
            continue
        units.extend(_split(text))
    return "".join(line for unit in _keep(units) for line in unit.lines)


def _split(text: str) -> list[_Unit]:
    """Top-level units of a snippet; leading comments and blank lines go with the unit after them."""
    units: list[_Unit] = []
    pending: list[str] = []
    current: _Unit | None = None
    blanked_lines = blank(text).splitlines(keepends=True)
    for line, bl in zip(text.splitlines(keepends=True), blanked_lines):
        code = bl.rstrip()
        if not code.strip():
            pending.append(line)  # a comment or a blank line
            continue
        if code.startswith("local ") or code.startswith("local\t"):
            current = _Unit(True)
            current.lines.extend(pending)
            pending = []
            current.lines.append(line)
            current.defines = _names_defined(code)
            current.uses = names_used(code)
            units.append(current)
        elif current is not None and (code[0] in " \t" + STRING or _CLOSER.match(code)):
            current.lines.extend(pending)
            pending = []
            current.lines.append(line)
            current.uses |= names_used(code)
        else:
            raise ValueError(f"a Lua snippet may only define locals at its top level, found: {line.strip()!r}")
    if pending:
        tail = _Unit(True)  # trailing comments: kept with nothing, dropped
        tail.lines.extend(pending)
        units.append(tail)
    return units


def _keep(units: Iterable[_Unit]) -> list[_Unit]:
    """The units to keep: every unprunable one, and the prunable ones they reach by name."""
    units = list(units)
    by_name: dict[str, list[int]] = {}
    for index, unit in enumerate(units):
        for name in unit.defines:
            by_name.setdefault(name, []).append(index)
    kept = {index for index, unit in enumerate(units) if not unit.prunable}
    todo = [units[index] for index in kept]
    while todo:
        unit = todo.pop()
        for name in unit.uses:
            for index in by_name.get(name, ()):
                if index not in kept:
                    kept.add(index)
                    todo.append(units[index])
    return [unit for index, unit in enumerate(units) if index in kept]


__all__ = ["blank", "names_used", "prune"]
