"""The ``wsgate`` command (also ``python -m wsgate``).

Each subcommand lives in the module that owns its feature; this file only parses the
command line; :func:`wsgate.loading.load_app` loads the application named as
``module:attribute``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from .loading import load_app

__all__ = ["load_app", "main"]


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
        (
            "serve an app with hypercorn workers sharing a broker; drain on SIGTERM",
            run.add_arguments,
            run.run,
        ),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``wsgate`` command line; returns the exit status."""
    _register()
    parser = argparse.ArgumentParser(prog="wsgate", description="WebSocket gateways on AnyIO.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, add_arguments, _) in _COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_arguments(p)
    args = parser.parse_args(argv)
    _, _, run = _COMMANDS[args.command]
    return int(run(args))
