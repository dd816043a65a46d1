"""Griffe extension: the docstrings' Sphinx roles shown as code, their examples as code blocks.

The docstrings are Google style but cross-reference with Sphinx roles
(``:class:`~fastjobs.App```, ``:meth:`task```), which mkdocstrings would print
as they are. They become inline code: the full path, or its last part with ``~``
(as Sphinx shows it). Code rather than links, because many of them name objects
relatively (``:meth:`task``` inside ``App``), which a link could not resolve.

Their ``Example:`` sections hold doctests; griffe's Google parser reads doctest
lines (``>>>``) as code under the plural title only, so the title is made plural
(else an output line like ``[1.0, 3.0]`` after ``[...]`` reads as a markdown link).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

EXAMPLE_TITLE = re.compile(r"^(?P<indent>[ \t]*)Example:[ \t]*$", re.MULTILINE)
ROLE = re.compile(r":(?:py:)?(?:class|func|meth|attr|mod|data|exc|obj|const):`(?P<tilde>~?)(?P<target>[^`]+)`")


def _as_code(match: re.Match[str]) -> str:
    target = match["target"].strip()
    if match["tilde"]:
        target = target.rsplit(".", 1)[-1]
    return f"`{target}`"


class SphinxRolesAndExamples(griffe.Extension):
    """Rewrites each object's docstring once, as it is loaded."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        docstring = obj.docstring
        if docstring is None:
            return
        value = EXAMPLE_TITLE.sub(r"\g<indent>Examples:", docstring.value)
        if ":`" in value:
            value = ROLE.sub(_as_code, value)
        docstring.value = value
