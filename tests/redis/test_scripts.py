"""The Lua scripts: one file per operation, each with its header, loaded once, reloaded on NOSCRIPT."""

from __future__ import annotations

import asyncio
import importlib.resources
import re

import pytest

import fastjobs._core as core
from fastjobs._core import STATE_NAMES, decode_value
from fastjobs.backends import NewJob
from fastjobs.backends.redis import SCRIPTS
from fastjobs.backends.redis.records import Record
from fastjobs.backends.redis.scripts import STATES, state_prelude
from fastjobs.job import LEASE_EXPIRED_MESSAGE, lease_expired_error, new_job_id
from tests.redis.servers import RedisServer

FOLDER = importlib.resources.files("fastjobs") / "lua"
NAMED = re.compile(r"^([a-z_]+)-(\d+)\.lua$")


def test_every_operation_is_a_file_with_a_header() -> None:
    names = sorted(e.name for e in FOLDER.iterdir() if e.name.endswith(".lua"))
    ops = [n for n in names if NAMED.match(n)]
    assert set(names) - set(ops) == {"_common.lua", "_events.lua", "_history.lua"}
    assert {NAMED.match(n).group(1) for n in ops} == set(SCRIPTS)  # type: ignore[union-attr]
    for name in ops:
        text = (FOLDER / name).read_text("utf-8")
        assert text.startswith("--[["), name
        header = text[: text.index("]]")]
        assert "KEYS" in header and "ARGV" in header and "Returns" in header, name
        keys_section = header[header.index("KEYS"): header.index("ARGV")]
        numbered = {int(n) for n in re.findall(r"(?<![\w\[])(\d+) <prefix>", keys_section)}
        numkeys = int(NAMED.match(name).group(2))  # type: ignore[union-attr]
        assert numbered == set(range(1, numkeys + 1)), (name, numbered)
        assert "-- @include _common" in text, name


async def test_an_expired_lease_recovered_on_redis_records_the_one_lease_expired_message(
    server: RedisServer, open_backend  # type: ignore[no-untyped-def]
) -> None:
    backend = await open_backend(server.url)
    job = NewJob(new_job_id(), "q", 0, 0.0, 3, b"x")
    await backend.enqueue_many([job])
    assert [c.id for c in await backend.claim(["q"], 1, 0.05)] == [job.id]
    await asyncio.sleep(0.1)
    assert await backend.recover() == 1
    [claim] = await backend.claim(["q"], 1, 0.05)  # taken back and claimed again: its attempt 2
    await asyncio.sleep(0.1)
    assert await backend.claim(["q"], 1, 30.0)  # claim's own recovery records it too
    stored = await backend.get(job.id)
    assert stored is not None and len(stored.errors) == 2
    expected = decode_value(lease_expired_error(1, 0.0))
    for attempt, raw in enumerate(stored.errors, start=1):
        error = decode_value(raw)
        assert (error["type"], error["message"], error["attempt"]) == (expected["type"], LEASE_EXPIRED_MESSAGE, attempt)
    assert claim.attempt == 2


def test_the_state_prelude_is_generated_from_core_and_defines_every_state() -> None:
    assert STATES == {name.upper(): number for number, name in enumerate(STATE_NAMES)}
    assert STATES == {name: getattr(core, name) for name in STATES}
    prelude = state_prelude()
    assert dict(re.findall(r"^local (\w+) = '(\d+)'$", prelude, re.MULTILINE)) == {
        name: str(number) for name, number in STATES.items()
    }
    lines = set(prelude.splitlines())
    for script in SCRIPTS.values():  # each keeps the prelude's lines it uses (lua_prune), unchanged
        for name in [*STATES, "GONE_KEPT"]:
            assert all(line in lines for line in script.source.splitlines() if line.startswith(f"local {name} ="))
    assert all(f"local {name} =" in SCRIPTS["claim"].source for name in STATES)


def test_the_prelude_states_as_redis_runs_them(redis_url: str) -> None:
    import redis

    from tests.backends import reachable

    if not reachable(redis_url):
        pytest.skip("no Redis")
    client = redis.Redis.from_url(redis_url)
    try:
        names = list(STATES)
        values = client.eval(state_prelude() + "return {" + ", ".join(names) + "}", 0)
        assert [int(v) for v in values] == [STATES[n] for n in names]
    finally:
        client.close()


def _code(text: str) -> str:
    """Lua source without its comments."""
    text = re.sub(r"--\[\[.*?\]\]", "", text, flags=re.DOTALL)
    return re.sub(r"--[^\n]*", "", text)


def test_no_lua_file_writes_a_state_number() -> None:
    state = r"(?:\bstate|\bpst|\bst|\[R_STATE\])"
    literal = r"'?\d+'?(?![\w.])"
    bare = [
        re.compile(state + r"\s*[=~]=\s*" + literal),  # state == '1'
        re.compile(literal.replace("(?![\\w.])", "") + r"\s*[=~]=\s*" + state),  # '1' == state
        re.compile(r"\brecord\(\s*" + literal + r"\s*,"),  # record('5', ...)
        re.compile(r"\[R_STATE\]\s*=\s*" + literal),  # f[R_STATE] = '6'
        re.compile(r"\blocal\s+(?:" + "|".join(STATES) + r")\b"),  # a copy of the prelude
    ]
    for entry in FOLDER.iterdir():
        if not entry.name.endswith(".lua"):
            continue
        code = _code(entry.read_text("utf-8"))
        for pattern in bare:
            assert not pattern.search(code), (entry.name, pattern.search(code))
        # Every record() call names its state: a name of the prelude, the state it
        # read, or (record_of) a table whose R_STATE the checks above cover.
        for first in re.findall(r"\brecord\(\s*([^,\s]+)\s*,", code):
            assert first in STATES or first in ("state", "unpack(fields"), (entry.name, first)


def test_the_lua_record_positions_follow_the_python_record() -> None:
    common = _code((FOLDER / "_common.lua").read_text("utf-8"))
    names = re.findall(r"\bR_([A-Z_]+)\b\s*[,=]", common[: common.index("local R_COUNT")])
    assert [n.lower() for n in names] == list(Record._fields)
    positions = re.search(r"local R_STATE.*?= *(.*?)\nlocal R_STARTED_AT.*?=\s*(.*?)\n", common, re.DOTALL)
    assert positions is not None
    numbers = [int(n) for part in positions.groups() for n in part.split(",")]
    assert numbers == list(range(1, len(Record._fields) + 1))
    assert f"local R_COUNT = {len(Record._fields)}" in common
    pattern = re.search(r"^local RECORD = '(.*)'$", common, re.MULTILINE)
    assert pattern is not None and pattern.group(1).count("(") == len(Record._fields)


def test_the_lua_and_python_readers_of_layout_1_agree_on_its_format() -> None:
    """Layout 1 (binary) is written by the scripts' V1.format (Lua struct) and read by records.py:
    the same format; its fixed part, and the leading parts claim and ack read, are
    prefixes of it; records.py reads the fixed part in Python's spelling; the layout comment
    describes it in order."""
    from fastjobs.backends.redis import records

    common = _code((FOLDER / "_common.lua").read_text("utf-8"))
    formats = dict(re.findall(r"^  (format|fixed|leasing|leased) = '(.*)',$", common, re.MULTILINE))
    assert formats["format"] == records.LUA_FORMAT
    assert formats["format"] == formats["fixed"] + "c0c0c0I8"
    for part in ("leasing", "leased"):
        assert formats["fixed"].startswith(formats[part]), part
    # Lua struct -> Python struct: sizes are explicit in Lua (i4, I8), implied in Python.
    python = {"B": "B", "i4": "i", "I4": "I", "I8": "Q", "d": "d"}
    items = re.findall(r"[BdiI]\d?|c0", formats["fixed"][1:])
    assert records._V1_FIXED.format == ">" + "".join(python[i] for i in items)
    assert records._V1_FIXED.size == 73
    # The layout comment describes the same format, in order (runs of one type collapsed).
    raw = (FOLDER / "_common.lua").read_text("utf-8")
    layout = raw[raw.index("Layout 1, binary"):raw.index("Why seq is last")]
    described = re.findall(r"^ {6}(B|i4|d|I8|I4|c0) ", layout, re.MULTILINE)

    def collapse(seq: list[str]) -> list[str]:
        return [x for i, x in enumerate(seq) if i == 0 or seq[i - 1] != x]

    spelled = re.findall(r"[BdiI]\d?|c0", records.LUA_FORMAT[1:])
    assert collapse(described) == collapse(spelled), described


async def test_scripts_are_loaded_at_connect_and_again_after_script_flush(server: RedisServer, open_backend) -> None:  # type: ignore[no-untyped-def]
    """The scripts (EVALSHA); the function library's load and reload: tests/redis/test_library.py."""
    admin = server.client()
    try:
        backend = await open_backend(server.url, functions=False)
        shas = [s.sha for s in SCRIPTS.values()]
        assert all(admin.script_exists(*shas))
        admin.script_flush()
        job = NewJob(new_job_id(), "q", 0, 0.0, 3, b"x")
        assert await backend.enqueue_many([job]) == [job.id]  # NOSCRIPT: loaded again, retried
        assert all(admin.script_exists(*shas))
        admin.script_flush()
        await backend.wait(["q"], 1.0)  # the idle wait's peek script reloads too (returns at once)
        assert [c.id for c in await backend.claim(["q"], 5, 30.0)] == [job.id]
    finally:
        admin.close()


@pytest.mark.parametrize("op", sorted(SCRIPTS))
def test_scripts_compile(op: str, redis_url: str) -> None:
    import redis

    from tests.backends import reachable

    if not reachable(redis_url):
        pytest.skip("no Redis")
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.script_load(SCRIPTS[op].source) == SCRIPTS[op].sha
    finally:
        client.close()
