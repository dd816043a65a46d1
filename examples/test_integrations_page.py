"""docs/integrations.md shows these examples' code: each of its python blocks, marked
``<!-- not run: excerpt of examples/<file> ... -->``, must still be lines of that file
(compared after dedenting), so the page cannot drift from the code these tests run."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "integrations.md"
EXCERPT = re.compile(r"<!-- not run: excerpt of (examples/\S+\.py)\b[^\n]*-->\n```python\n(.*?)\n```", re.S)


def excerpts() -> list[tuple[str, str]]:
    if not PAGE.exists():
        return []
    return EXCERPT.findall(PAGE.read_text(encoding="utf-8"))


def test_the_page_shows_each_example() -> None:
    if not PAGE.exists():
        pytest.skip("no docs/ here")
    shown = {Path(path).parts[1] for path, _ in excerpts()}
    assert shown == {"fastapi_app", "django_app", "flask_app", "postgres_transactional"}
    # Every python block of the page is one of the excerpts (none escapes this check).
    assert PAGE.read_text(encoding="utf-8").count("```python") == len(excerpts())


@pytest.mark.parametrize(("path", "code"), excerpts(), ids=[path for path, _ in excerpts()])
def test_an_excerpt_is_the_files_code(path: str, code: str) -> None:
    wanted = textwrap.dedent(code).splitlines()
    lines = (ROOT / path).read_text(encoding="utf-8").splitlines()
    windows = (textwrap.dedent("\n".join(lines[i:i + len(wanted)])).splitlines() for i in range(len(lines)))
    assert wanted in windows, f"docs/integrations.md shows code that {path} no longer has:\n{code}"
