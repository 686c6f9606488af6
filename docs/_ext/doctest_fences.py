"""A griffe extension for the API reference (mkdocs.yml loads it).

The library's docstrings write their examples as an `Example:` paragraph
followed by a doctest (`>>> ...`), which Markdown would render as nested
block quotes (and whose brackets it would read as links). This extension
wraps every doctest block of a docstring in a `pycon` code fence, dropping
`# doctest:` flags, before mkdocstrings renders it. The docstrings
themselves are unchanged.
"""

from __future__ import annotations

import re
from typing import Any

from griffe import Extension, Object

_FLAGS = re.compile(r"\s*#\s*doctest:.*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


def fence_doctests(text: str) -> str:
    """Return `text` with each doctest block (a `>>>` line and the lines up
    to the next blank one) inside a ```` ```pycon ```` fence; blocks already
    inside a fence are left alone."""
    lines = text.split("\n")
    out: list[str] = []
    in_fence = False
    i = 0
    while i < len(lines):
        line = lines[i]
        if _FENCE.match(line):
            in_fence = not in_fence
        if in_fence or not line.lstrip().startswith(">>>"):
            out.append(line)
            i += 1
            continue
        indent = line[: len(line) - len(line.lstrip())]
        out.append(f"{indent}```pycon")
        while i < len(lines) and lines[i].strip():
            out.append(_FLAGS.sub("", lines[i]))
            i += 1
        out.append(f"{indent}```")
    return "\n".join(out)


class DoctestFences(Extension):
    """Fence the doctests of every docstring griffe loads."""

    def on_instance(self, *, obj: Object, **kwargs: Any) -> None:
        if obj.docstring is not None and ">>>" in obj.docstring.value:
            obj.docstring.value = fence_doctests(obj.docstring.value)
