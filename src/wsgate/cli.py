"""The ``wsgate`` command (also ``python -m wsgate``).

Each subcommand lives in the module that owns its feature; this file only parses the
command line and loads the application named as ``module:attribute``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["load_app", "main"]


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


Command = Callable[[argparse.Namespace], int]
#: Subcommands: name -> (help, add_arguments, run). Filled by _register() below.
_COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Command]] = {}


def _register() -> None:
    # Each feature module exposes ``add_arguments(parser)`` and ``run(args) -> int``;
    # imported lazily so that ``wsgate --help`` needs none of the servers.
    from . import asyncapi, run, typescript

    _COMMANDS["asyncapi"] = (
        "print the AsyncAPI 3.0 document of MODULE:APP as JSON",
        asyncapi.add_arguments,
        asyncapi.run,
    )
    _COMMANDS["typescript"] = (
        "write TypeScript declarations (.d.ts) of MODULE:APP's events and types",
        typescript.add_arguments,
        typescript.run,
    )
    _COMMANDS.setdefault(
        "run",
        ("serve an app with hypercorn workers; drain on SIGTERM", run.add_arguments, run.run),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``wsgate`` command line; returns the exit status."""
    _register()
    parser = argparse.ArgumentParser(prog="wsgate", description="WebSocket gateways on AnyIO.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, add_arguments, run) in _COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_arguments(p)
        p.set_defaults(_run=run)
    args = parser.parse_args(argv)
    return int(args._run(args))
