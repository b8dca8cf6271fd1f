"""A griffe extension for the API reference: the docstrings' reST markup as Markdown.

wsgate's docstrings are read by people in editors and by ``help()``, and use a little
reST: roles (``:class:`~wsgate.errors.WebSocketError```), double-backtick literals and
``::`` before an indented example. mkdocstrings renders docstrings as Markdown, where a
role would show as ``:class:`` followed by the code; this extension rewrites roles as
inline code (the last dotted part for ``~``) and a trailing ``::`` as ``:``.
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


class RestRoles(griffe.Extension):
    """Apply :func:`rest_to_markdown` to every docstring griffe loads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rest_to_markdown(obj.docstring.value)
