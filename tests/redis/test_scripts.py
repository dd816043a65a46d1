"""The Lua scripts: one file per operation, each with its header, loaded once, reloaded on NOSCRIPT."""

from __future__ import annotations

import importlib.resources
import re

import pytest

from fastjobs._core import decode_value
from fastjobs.backends import NewJob
from fastjobs.backends.redis import SCRIPTS
from fastjobs.job import lease_expired_error, new_job_id
from tests.redis.servers import RedisServer

FOLDER = importlib.resources.files("fastjobs") / "lua"
NAMED = re.compile(r"^([a-z_]+)-(\d+)\.lua$")


def test_every_operation_is_a_file_with_a_header() -> None:
    names = sorted(e.name for e in FOLDER.iterdir() if e.name.endswith(".lua"))
    ops = [n for n in names if NAMED.match(n)]
    assert set(names) - set(ops) == {"_common.lua"}
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


def test_the_lease_expired_record_matches_the_python_one() -> None:
    common = (FOLDER / "_common.lua").read_text("utf-8")
    message = re.search(r'LEASE_EXPIRED_MESSAGE = "(.*)"', common).group(1)  # type: ignore[union-attr]
    assert message == decode_value(lease_expired_error(1, 0.0))["message"]


async def test_scripts_are_loaded_at_connect_and_again_after_script_flush(server: RedisServer, open_backend) -> None:  # type: ignore[no-untyped-def]
    admin = server.client()
    try:
        backend = await open_backend(server.url)
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
