"""``fastjobs jobs`` and ``fastjobs job`` through real processes, on real data: jobs a burst
worker ran (dead and succeeded), text and JSON, pages and cursors, bad input, ``--url``."""

from __future__ import annotations

import asyncio
import os

import pytest

from tests.process.cli_ops import Space, any_space, redis_space  # noqa: F401  (fixtures)

pytestmark = pytest.mark.slow


async def test_jobs_lists_each_state_in_text_and_json(any_space: Space) -> None:  # noqa: F811
    space = any_space
    dead, succeeded = await space.dead_and_succeeded(dead=2, succeeded=3)
    text = await asyncio.to_thread(space.cli, "jobs", "--state", "dead")
    lines = text.stdout.splitlines()
    assert lines[0].split() == ["id", "state", "queue", "task", "tries", "time", "(UTC)"]
    rows = [line.split() for line in lines[1:-1]]
    assert sorted(r[0] for r in rows) == sorted(dead)
    assert {(r[1], r[2], r[3], r[4]) for r in rows} == {("dead", "default", "boom", "1/1")}
    assert lines[-1] == "2 jobs; no more pages"

    page = await asyncio.to_thread(space.json, "jobs", "--state", "succeeded")
    assert page["cursor"] is None
    assert sorted(j["id"] for j in page["jobs"]) == sorted(succeeded)
    assert {(j["task"], j["state"], tuple(j["tags"])) for j in page["jobs"]} == {("echo", "succeeded", ("good",))}
    assert sorted(j["result"] for j in page["jobs"]) == ["y0", "y1", "y2"]

    everything = await asyncio.to_thread(space.json, "jobs")
    assert len(everything["jobs"]) == 5
    times = [j["finished_at"] for j in everything["jobs"]]
    assert times == sorted(times, reverse=True)  # newest first


async def test_filters_and_pages_with_cursors(any_space: Space) -> None:  # noqa: F811
    space = any_space
    dead, succeeded = await space.dead_and_succeeded(dead=3, succeeded=4)
    tagged = await asyncio.to_thread(space.json, "jobs", "--tag", "n:1")
    assert [j["id"] for j in tagged["jobs"]] == [dead[1]]
    by_task = await asyncio.to_thread(space.json, "jobs", "--task", "echo", "--state", "succeeded,dead", "--state", "queued")
    assert sorted(j["id"] for j in by_task["jobs"]) == sorted(succeeded)
    assert (await asyncio.to_thread(space.json, "jobs", "--queue", "other"))["jobs"] == []
    future = await asyncio.to_thread(space.json, "jobs", "--since", "2999-01-01T00:00:00Z")
    assert future["jobs"] == []
    past = await asyncio.to_thread(space.json, "jobs", "--until", "2000-01-01")
    assert past["jobs"] == []

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        extra = ["--cursor", cursor] if cursor else []
        page = await asyncio.to_thread(space.json, "jobs", "--limit", "3", *extra)
        seen += [j["id"] for j in page["jobs"]]
        pages += 1
        cursor = page["cursor"]
        if cursor is None:
            break
        assert pages < 10
    assert sorted(seen) == sorted(dead + succeeded) and len(seen) == len(set(seen))
    first = await asyncio.to_thread(space.cli, "jobs", "--limit", "3")
    assert first.stdout.splitlines()[-2] == "3 jobs; the next page's --cursor:"
    again = await asyncio.to_thread(space.json, "jobs", "--limit", "3", "--cursor", first.stdout.splitlines()[-1])
    assert [j["id"] for j in again["jobs"]] == seen[3:6]


async def test_job_shows_everything_with_tracebacks(redis_space: Space) -> None:  # noqa: F811
    space = redis_space
    dead, succeeded = await space.dead_and_succeeded(dead=1, succeeded=1)
    text = (await asyncio.to_thread(space.cli, "job", dead[0])).stdout
    assert text.splitlines()[0] == f"job {dead[0]}"
    for expected in ("  task:       boom", "  state:      dead, attempt 1 of 1", "  tags:       bad, n:0",
                     '  args:       ["x0"]', "errors (1):", "  attempt 1: ValueError: boom: x0", "Traceback",
                     'raise ValueError(f"boom: {text}")'):
        assert expected in text, (expected, text)
    info = await asyncio.to_thread(space.json, "job", dead[0])
    assert (info["id"], info["state"], info["args"], info["tags"]) == (dead[0], "dead", ["x0"], ["bad", "n:0"])
    error = info["errors"][0]
    assert error["type"] == "ValueError" and "Traceback" in error["traceback"]
    assert error["worker"] and error["started_at"] <= error["at"]
    done = await asyncio.to_thread(space.json, "job", succeeded[0])
    assert (done["state"], done["result"], done["errors"]) == ("succeeded", "y0", [])
    assert "  result:     \"y0\"" in (await asyncio.to_thread(space.cli, "job", succeeded[0])).stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["jobs", "--state", "sleeping"], "sleeping"),
        (["jobs", "--cursor", "not-a-cursor"], "cursor"),
        (["jobs", "--limit", "0"], "limit"),
        (["jobs", "--since", "2026-02-01", "--until", "2026-01-01"], "since"),
        (["jobs", "--since", "yesterday"], "--since must be ISO 8601"),
        (["jobs", "--tag", ""], "tag"),
        (["jobs", "--limit", "many"], "argument --limit: invalid int value"),
        (["job", "0" * 32], "no job with id"),
    ],
)
async def test_bad_input_is_one_line_and_exit_2(redis_space: Space, args: list[str], message: str) -> None:  # noqa: F811
    line = await asyncio.to_thread(redis_space.usage_error, *args)
    assert message in line


async def test_url_overrides_the_apps_own(redis_space: Space) -> None:  # noqa: F811
    space = redis_space
    dead, _ = await space.dead_and_succeeded(dead=1, succeeded=0)
    env = dict(space.env)
    del env["FASTJOBS_TEST_URL"]  # the App's own URL is memory:// now
    refused = await asyncio.to_thread(space.cli, "jobs", env=env, ok=2)
    assert "memory://, which lives inside one process" in refused.stderr
    page = await asyncio.to_thread(space.cli, "jobs", "--url", space.url, "--json", env=env)
    assert '"id": "' + dead[0] + '"' in page.stdout
    # Every command takes it: enqueue, then a burst worker, both at --url.
    job_id = (await asyncio.to_thread(space.cli, "enqueue", "echo", "--args", '["via url"]', "--url", space.url,
                                      env=env)).stdout.strip()
    await asyncio.to_thread(space.cli, "worker", "--burst", "--url", space.url, env=env)
    info = await space.app.get_job(job_id)
    assert info is not None and (info.state, info.result) == ("succeeded", "via url")


def test_help_shows_defaults_in_100_columns() -> None:
    env = dict(os.environ)
    space = Space("memory://")
    for command in ("jobs", "job", "retry", "cancel", "delete", "purge", "clear", "pause", "resume", "stats", "check",
                    "workers", "info", "enqueue", "migrate", "worker"):
        done = space.cli(command, "--help", env=env)
        assert "--url" in done.stdout, command
    assert "jobs per page (1-1000) (default: 50)" in space.cli("jobs", "--help", env=env).stdout
    assert "(default: 1.0)" in space.cli("stats", "--help", env=env).stdout


async def test_enqueue_with_tags_and_meta_then_find_it(redis_space: Space) -> None:  # noqa: F811
    space = redis_space
    job_id = (await asyncio.to_thread(space.json, "enqueue", "echo", "--args", '["hi"]', "--tag", "tenant:42",
                                      "--tag", "import", "--meta", '{"source": "cli"}'))["id"]
    page = await asyncio.to_thread(space.json, "jobs", "--tag", "tenant:42", "--state", "queued")
    assert [j["id"] for j in page["jobs"]] == [job_id]
    info = await asyncio.to_thread(space.json, "job", job_id)
    assert (info["tags"], info["meta"], info["args"]) == (["tenant:42", "import"], {"source": "cli"}, ["hi"])
    assert "tag must be" in await asyncio.to_thread(space.usage_error, "enqueue", "echo", "--args", '["x"]', "--tag", " ")
