"""A griffe extension for the API reference: the docstrings' reST markup as Markdown.

wsgate's docstrings are read by people in editors and by ``help()``, and use a little
reST: roles (``:class:`~wsgate.errors.WebSocketError```), double-backtick literals and
``::`` before an indented example. mkdocstrings renders docstrings as Markdown, where a
role would show as ``:class:`` followed by the code; this extension rewrites roles as
inline code (the last dotted part for ``~``) and a trailing ``::`` as ``:``.

Attributes (enum members, ``AppConfig`` fields) are documented Sphinx's way, with
``#:`` comments above them, which griffe does not read: the extension makes those
comments the attributes' docstrings.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":[\w:.-]+:`(~?)([^`]+)`")
_LITERAL_INTRO = re.compile(r"(?m)(\S)::$|^\s*::$")


def rest_to_markdown(text: str) -> str:
    """Rewrite reST roles and literal-block markers of one docstring."""

    def role(match: re.Match[str]) -> str:
        target = match.group(2)
        if match.group(1):
            target = target.rsplit(".", 1)[-1]
        return f"`{target}`"

    text = _ROLE.sub(role, text)
    return _LITERAL_INTRO.sub(lambda m: f"{m.group(1)}:" if m.group(1) else "", text)


def comment_docstring(lines: list[str], lineno: int) -> str | None:
    """The ``#:`` comment lines just above line ``lineno`` (1-based), joined."""
    found: list[str] = []
    i = lineno - 2
    while i >= 0 and lines[i].strip().startswith("#:"):
        found.insert(0, lines[i].strip()[2:].strip())
        i -= 1
    return "\n".join(found) or None


class RestRoles(griffe.Extension):
    """Apply :func:`rest_to_markdown` to every docstring griffe loads, and give
    attributes documented by ``#:`` comments those comments as docstrings."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is None and obj.is_attribute and obj.lineno and obj.filepath:
            try:
                lines = obj.lines_collection[obj.filepath]
            except (KeyError, TypeError):
                lines = []
            text = comment_docstring(lines, obj.lineno)
            if text:
                obj.docstring = griffe.Docstring(text, lineno=obj.lineno, parent=obj)
        if obj.docstring is not None:
            obj.docstring.value = rest_to_markdown(obj.docstring.value)
