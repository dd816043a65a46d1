"""Pruning the pasted Lua: each script keeps the shared definitions it reaches, whole, in order."""

from __future__ import annotations

import importlib.resources
import re

import pytest

from fastjobs.backends.redis import SCRIPTS
from fastjobs.backends.redis.lua_prune import STRING, blank, names_used, prune
from fastjobs.backends.redis.scripts import assemble

FOLDER = importlib.resources.files("fastjobs") / "lua"


def test_blank_hides_strings_and_comments_but_keeps_lines() -> None:
    source = (
        "local a = 'x -- not a comment' .. \"it\\\"s b\" -- c d\n"
        "--[==[ e\n]] f ]==] local g = [[h\ni]] .. j\n"
    )
    blanked = blank(source)
    assert blanked.count("\n") == source.count("\n") and len(blanked) == len(source)
    assert names_used(blanked) == {"a", "g", "j"}
    assert STRING in blanked.splitlines()[3]  # the long string's second line is code, not a comment


def test_fields_and_keywords_are_not_names_but_concatenation_is() -> None:
    assert names_used(blank("local x = t.field .. y:method(z) and 0x1F or ...\n")) == {"x", "t", "y", "z"}


def test_prune_keeps_what_is_reached_through_the_units_it_keeps_in_their_order() -> None:
    shared = (
        "-- about a\n"
        "local function a() return b() end\n"
        "local function b()\n"
        "  return 1\n"
        "end\n"
        "-- about c\n"
        "local c = {\n"
        "  k = 1,\n"
        "}\n"
        "local d, e\n"
        "do\n"
        "  d = function() return c end\n"
        "end\n"
    )
    assert prune([(shared, True), ("return a()\n", False)]) == (
        "-- about a\nlocal function a() return b() end\nlocal function b()\n  return 1\nend\nreturn a()\n"
    )
    kept = prune([(shared, True), ("return e\n", False)])
    assert kept == "-- about c\nlocal c = {\n  k = 1,\n}\nlocal d, e\ndo\n  d = function() return c end\nend\nreturn e\n"
    # A name in a string or comment, or a field of that name, keeps nothing.
    assert prune([(shared, True), ("return 'a', x.b -- c\n", False)]) == "return 'a', x.b -- c\n"


def test_a_snippet_statement_that_is_no_definition_is_refused() -> None:
    with pytest.raises(ValueError, match="only define locals"):
        prune([("local a = 1\nredis.call('DEL', 'k')\n", True), ("return a\n", False)])


def _top_level(source: str) -> set[str]:
    """Names a source defines at column 0 (``local function f``, ``local a, b =``)."""
    names: set[str] = set()
    for line in blank(source).splitlines():
        if m := re.match(r"local\s+function\s+(\w+)", line):
            names.add(m.group(1))
        elif m := re.match(r"local\s+([^=]*)", line):
            names.update(n.strip() for n in m.group(1).split(",") if n.strip())
    return names


def _pieces(op: str) -> list[tuple[str, bool]]:
    [filename] = [e.name for e in FOLDER.iterdir() if re.fullmatch(re.escape(op) + r"-\d+\.lua", e.name)]
    return assemble(filename)


@pytest.mark.parametrize("op", sorted(SCRIPTS))
def test_each_script_defines_every_shared_name_it_uses(op: str) -> None:
    shared = _top_level("".join(text for text, prunable in _pieces(op) if prunable))
    source = SCRIPTS[op].source
    missing = (names_used(blank(source)) & shared) - _top_level(source)
    assert not missing, f"{op} uses {sorted(missing)} but pruning dropped their definitions"


@pytest.mark.parametrize("op", sorted(SCRIPTS))
def test_each_script_is_its_full_assembly_with_whole_lines_dropped(op: str) -> None:
    pieces = _pieces(op)
    lines = iter("".join(text for text, _ in pieces).splitlines())
    assert all(line in lines for line in SCRIPTS[op].source.splitlines()), f"{op}: a kept line is not in the full assembly, in order"
    kept = iter(SCRIPTS[op].source.splitlines())
    own = "".join(text for text, prunable in pieces if not prunable)
    assert all(line in kept for line in own.splitlines()), f"{op}: a line of the script's own was dropped"


def test_the_hot_scripts_shed_shared_code() -> None:
    for op in ("enqueue", "ack", "get", "workers"):
        assert len(SCRIPTS[op].source) < 0.9 * len("".join(text for text, _ in _pieces(op))), op
