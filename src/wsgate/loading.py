"""Loading the application a command names as ``module:attribute``.

Its own module so that the commands (``wsgate run``, ``wsgate asyncapi``, ``wsgate
typescript``) and the command line that dispatches to them import it without importing
each other.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

__all__ = ["load_app"]


def load_app(spec: str) -> Any:
    """Import ``module:attribute`` (``attribute`` defaults to ``app``) and return it.

    The current directory is put first on ``sys.path`` so that ``wsgate run app:app``
    finds ``app.py`` where the command runs, as hypercorn and uvicorn do. Raises
    ``SystemExit`` with a message that says what was wrong.
    """
    module_name, _, attr = spec.partition(":")
    attr = attr or "app"
    if not module_name:
        raise SystemExit(f"wsgate: expected MODULE:ATTRIBUTE (e.g. chat.app:app), got {spec!r}")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SystemExit(f"wsgate: cannot import {module_name!r}: {exc}") from exc
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise SystemExit(f"wsgate: module {module_name!r} has no attribute {attr!r}") from None
    return obj
