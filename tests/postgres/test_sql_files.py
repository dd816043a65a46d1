"""The SQL files write states by name: ``{QUEUED}`` and the others, filled in from
``fastjobs._core``; no bare state number is left in a comparison, an assignment,
a CASE that yields a state, or the state column of an INSERT ... SELECT."""

from __future__ import annotations

import re
from importlib import resources

import pytest

import fastjobs._core as core
from fastjobs.backends.postgres.sql import FUNCTIONS, MIGRATIONS, QUERIES, STATES, fill_states

SQL = resources.files("fastjobs").joinpath("sql")
FILES = {
    "queries.sql": SQL.joinpath("queries.sql"),
    **{f"migrations/{e.name}": e for e in SQL.joinpath("migrations").iterdir() if e.name.endswith(".sql")},
    **{f"functions/{e.name}": e for e in SQL.joinpath("functions").iterdir() if e.name.endswith(".sql")},
    "snippets.sql": SQL.joinpath("snippets.sql"),
}

# Where a state is written, a digit there is a bare state number.
STATE_SITES = [
    re.compile(r"\bstate(?:\s*\+\s*0\))?\s*(?:=|<>|!=)\s*\d(?!\.)"),  # state = 1, (j.state + 0) = 2
    re.compile(r"\bstate\s+(?:NOT\s+)?IN\s*\([^)]*\d"),  # state IN (0, 4)
    # A CASE that yields a state: SET state = CASE ..., x.queue, CASE ..., (CASE WHEN state ...
    re.compile(r"(?:\bstate\s*=\s*CASE|\w\.queue,\s*CASE|\(CASE WHEN state)(?:(?!\bEND\b).)*?\b(?:THEN|ELSE)\s+\d(?!\.)"),
    re.compile(r"\b\w\.queue,\s*\d,\s*\w\.priority"),  # INSERT ... SELECT x.id, x.queue, <state>, x.priority
]


def code_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.lstrip().startswith("--")]


@pytest.mark.parametrize("name", sorted(FILES))
def test_no_sql_file_writes_a_state_number(name: str) -> None:
    bare = [
        line.strip()
        for line in code_lines(FILES[name].read_text(encoding="utf-8"))
        if any(site.search(line) for site in STATE_SITES)
    ]
    assert bare == [], f"{name}: write states as {{QUEUED}} etc., not numbers: {bare}"


def test_the_checks_catch_the_old_spellings() -> None:
    for line in (
        "WHERE c.state = 1 AND c.queue = v_queue",
        "WHERE j.id = a.id AND (j.state + 0) = 2",
        "WHERE d.state IN (0, 4) AND d.run_at <= now()",
        "SET state = CASE WHEN a.delay > 0 THEN 4 ELSE 1 END,",
        "SELECT n.id, n.queue, CASE WHEN n.dep_count > 0 THEN 7 WHEN n.delay > 0 THEN 0 ELSE 1 END, n.priority,",
        "SELECT k.id, k.queue, 5, k.priority, k.attempt",
        "SELECT id, queue, (CASE WHEN state IN ({SCHEDULED}) AND run_at <= now() THEN 1 ELSE state END)::integer",
    ):
        assert any(site.search(line) for site in STATE_SITES), line
    for line in (
        "CASE WHEN n.dep_count > 0 THEN 0 END,",
        "WHERE state = $1::smallint",
        "WHEN EXISTS (SELECT 1 FROM j WHERE q.state = {QUEUED}) THEN 0.0",
    ):
        assert not any(site.search(line) for site in STATE_SITES), line


def test_placeholders_are_the_core_constants() -> None:
    assert STATES == {name.upper(): getattr(core, name.upper()) for name in core.STATE_NAMES}
    assert [STATES[name.upper()] for name in core.STATE_NAMES] == list(range(len(core.STATE_NAMES)))
    assert fill_states("state IN ({SCHEDULED}, {WAITING}) {schema} {channel}", "t") == (
        f"state IN ({core.SCHEDULED}, {core.WAITING}) {{schema}} {{channel}}"
    )
    with pytest.raises(RuntimeError, match="unknown placeholder {QUEUD}"):
        fill_states("state = {QUEUD}", "t")


def test_every_placeholder_is_filled_in() -> None:
    texts = [*QUERIES.values(), *(sql for _, _, sql in MIGRATIONS), *(sql for _, sql in FUNCTIONS)]
    left = {m for text in texts for m in re.findall(r"\{[A-Za-z_]+\}", text)}
    assert left <= {"{schema}", "{channel}"}
