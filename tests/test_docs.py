"""The documentation's code cannot drift: every block in ``docs/**/*.md`` is checked.

* ```` ```python ```` blocks run, each page's blocks in order in one namespace, in a
  subprocess against ``memory://`` (``FASTJOBS_URL`` removed). Top-level ``await`` is
  allowed: such a block is compiled with ``PyCF_ALLOW_TOP_LEVEL_AWAIT`` and run on the
  page's one event loop; a block without it runs as a plain module body (so a block may
  call ``asyncio.run`` itself).
* ```` ```console ```` blocks: every ``$ fastjobs ...`` (or ``$ python -m fastjobs ...``)
  line, and every ``fastjobs ...`` line of a ```` ```sh ```` block, is parsed by the real
  CLI's parser (``fastjobs.cli.build_parser``): an unknown command, flag or choice fails,
  without running anything.
* A block preceded by ``<!-- not run: <reason> -->`` is skipped (a Redis or PostgreSQL
  connection, a framework the tests do not install); the reason is required, and
  ``test_skips_are_few`` keeps them few.

Only the markdown files are read: the test needs the test extra, not the docs extra.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
if not DOCS.is_dir() and not (DOCS.parent / "mkdocs.yml").exists():
    # An unpacked sdist: it ships tests/ (MANIFEST.in grafts them) but not the docs.
    pytest.skip("no docs/ here (the sdist's tests run without the documentation)", allow_module_level=True)
PAGES = sorted(p for p in DOCS.rglob("*.md") if not any(part.startswith((".", "_")) for part in p.parts))
FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[\w+-]*)\s*$")
SKIP = re.compile(r"^\s*<!--\s*not run:\s*(?P<reason>\S.*?)\s*-->\s*$")
MAX_SKIPPED = 12
"""Blocks marked not run, over all pages: a few honest ones (other backends, frameworks)."""


@dataclass
class Block:
    page: Path
    line: int
    """1-based line of the block's first code line in the page."""
    lang: str
    code: str
    skip: str | None


def read_blocks(page: Path) -> list[Block]:
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match or not match["lang"]:
            i += 1
            continue
        indent, lang = match["indent"], match["lang"]
        previous = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        skip = SKIP.match(previous)
        end = i + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        if end == len(lines):
            raise AssertionError(f"{page}:{i + 1}: ```{lang} block never closed")
        body = [line[len(indent):] if line.startswith(indent) else line for line in lines[i + 1:end]]
        blocks.append(Block(page, i + 2, lang, textwrap.dedent("\n".join(body)) + "\n",
                            skip["reason"] if skip else None))
        i = end + 1
    return blocks


ALL_BLOCKS = [block for page in PAGES for block in read_blocks(page)]

# Runs in a fresh interpreter: the blocks share this module's globals, as one script would.
RUNNER = r"""
import ast, asyncio, inspect, json, sys
_fastjobs_doc_blocks = json.load(sys.stdin)
_fastjobs_doc_loop = asyncio.new_event_loop()
asyncio.set_event_loop(_fastjobs_doc_loop)
for _fastjobs_doc_block in _fastjobs_doc_blocks:
    # Padded so that a traceback names the page's own line numbers.
    _fastjobs_doc_code = compile("\n" * (_fastjobs_doc_block["line"] - 1) + _fastjobs_doc_block["code"],
                                 _fastjobs_doc_block["page"], "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    if _fastjobs_doc_code.co_flags & inspect.CO_COROUTINE:
        _fastjobs_doc_loop.run_until_complete(eval(_fastjobs_doc_code, globals()))
    else:
        exec(_fastjobs_doc_code, globals())
print("ran", len(_fastjobs_doc_blocks), "blocks")
"""


def _page_id(page: Path) -> str:
    return str(page.relative_to(DOCS))


def test_the_docs_have_code_blocks() -> None:
    assert PAGES, f"no pages under {DOCS}"
    assert sum(block.lang == "python" and block.skip is None for block in ALL_BLOCKS) >= 20


def test_skips_are_few() -> None:
    skipped = [f"{_page_id(b.page)}:{b.line}: {b.skip}" for b in ALL_BLOCKS if b.skip is not None]
    assert len(skipped) <= MAX_SKIPPED, "\n".join(skipped)


def test_every_skip_marker_is_followed_by_a_block() -> None:
    for page in PAGES:
        lines = page.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines):
            if "not run" in line and "<!--" in line:
                assert SKIP.match(line), f"{page}:{number + 1}: write it as <!-- not run: <reason> -->"
                following = next((later for later in lines[number + 1:] if later.strip()), "")
                assert FENCE.match(following), f"{page}:{number + 1}: a skip marker must come just before a block"


@pytest.mark.parametrize("page", [p for p in PAGES if any(b.page == p and b.lang == "python" for b in ALL_BLOCKS)],
                         ids=_page_id)
def test_python_blocks_run(page: Path, tmp_path: Path) -> None:
    blocks = [b for b in ALL_BLOCKS if b.page == page and b.lang == "python" and b.skip is None]
    if not blocks:
        pytest.skip("every python block on this page is marked not run")
    env = {k: v for k, v in os.environ.items() if k != "FASTJOBS_URL"}
    payload = json.dumps([{"page": str(b.page), "line": b.line, "code": b.code} for b in blocks])
    proc = subprocess.run([sys.executable, "-c", RUNNER], input=payload, capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=60)
    assert proc.returncode == 0, f"{_page_id(page)}:\n{proc.stdout}\n{proc.stderr}"
    assert f"ran {len(blocks)} blocks" in proc.stdout


def _commands(block: Block) -> list[list[str]]:
    commands = []
    for line in block.code.splitlines():
        if block.lang == "console":  # commands after a "$ " prompt, the rest is their output
            if not line.startswith("$ "):
                continue
            line = line[2:]
        argv = shlex.split(line, comments=True)
        if argv[:1] == ["fastjobs"]:
            commands.append(argv[1:])
        elif argv[:3] == ["python", "-m", "fastjobs"]:
            commands.append(argv[3:])
    return commands


CONSOLE = [(b, argv) for b in ALL_BLOCKS if b.lang in ("console", "sh") and b.skip is None for argv in _commands(b)]


def test_console_blocks_name_fastjobs_commands() -> None:
    assert len(CONSOLE) >= 10


@pytest.mark.parametrize(("block", "argv"), CONSOLE,
                         ids=[f"{_page_id(b.page)}:{b.line}:{' '.join(a[:1])}" for b, a in CONSOLE])
def test_console_commands_parse(block: Block, argv: list[str]) -> None:
    from fastjobs.cli import build_parser

    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        try:
            build_parser().parse_args(argv)
        except SystemExit as exc:  # argparse's error(), or --help / --version (code 0)
            assert exc.code == 0, f"{_page_id(block.page)}:{block.line}: fastjobs {shlex.join(argv)}\n{stderr.getvalue()}"


def test_the_command_is_the_parser_checked() -> None:
    """``python -m fastjobs`` is the parser the console check uses (one subprocess, not one per line)."""
    proc = subprocess.run([sys.executable, "-m", "fastjobs", "worker", "--help"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    from fastjobs.cli import build_parser

    worker = build_parser()._subparsers._group_actions[0].choices["worker"]  # type: ignore[union-attr]
    for action in worker._actions:
        if action.help == argparse.SUPPRESS:  # internal flags (a supervisor's to its children)
            continue
        for flag in action.option_strings:
            assert flag in proc.stdout
