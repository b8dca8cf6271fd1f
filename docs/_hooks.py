"""Build-time hooks of the documentation site (``hooks:`` in mkdocs.yml).

Two kinds of placeholder in a page's Markdown are replaced before it is rendered, so the
site shows what the code and the benchmark results say, not a copy that can drift:

``<!-- state-diagram: MODULE -->``
    The module's ``TRANSITIONS`` table, ``{(state, event): transition}`` where
    ``transition`` has ``.next`` (a state) and ``.actions`` (a sequence of enum members),
    as a Mermaid ``stateDiagram-v2`` and as a table. A module without ``TRANSITIONS``
    fails the build; ``<!-- state-diagram: MODULE optional -->`` renders nothing instead.
    ``start=A,B`` names the states the machine may start in (default: the first).

``<!-- cli-help: COMMAND -->``
    The ``--help`` text of ``wsgate COMMAND`` (``wsgate`` itself for ``-``), so the
    command-line reference is the parser's own.

``<!-- benchmark-missed: FILE SECTION -->``
    The rows of that section's table whose last column (*met*) says no, as a list: the
    goals the latest run missed.

``<!-- benchmark: FILE SECTION -->``
    The section of ``benchmarks/results/FILE`` whose heading starts with ``SECTION``
    (up to the next heading of the same level), with its headings moved two levels down;
    or, when no heading matches, the first line that starts with ``SECTION``.

The module is imported from ``src/`` of the checkout the site is built from.
"""

from __future__ import annotations

import contextlib
import enum
import importlib
import io
import os
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

ROOT = Path(__file__).resolve().parent.parent
_STATE = re.compile(r"<!--\s*state-diagram:\s*([\w.]+)((?:\s+[\w=,]+)*)\s*-->")
_BENCH = re.compile(r"<!--\s*benchmark:\s*(\S+)\s+(.+?)\s*-->")
_MISSED = re.compile(r"<!--\s*benchmark-missed:\s*(\S+)\s+(.+?)\s*-->")
_CLI = re.compile(r"<!--\s*cli-help:\s*(\S+)\s*-->")


def on_config(config: Any) -> Any:
    """Import the package from this checkout's ``src/``, not from an installed copy."""
    src = str(ROOT / "src")
    if src not in sys.path:
        sys.path.insert(0, src)
    return config


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    """Replace the placeholders of one page."""

    def diagram(match: re.Match[str]) -> str:
        words = match.group(2).split()
        start = [w[len("start=") :].split(",") for w in words if w.startswith("start=")]
        unknown = [w for w in words if w != "optional" and not w.startswith("start=")]
        if unknown:
            raise PluginError(f"state-diagram: unknown words {unknown} in {match.group(0)}")
        return state_diagram(
            match.group(1), optional="optional" in words, start=start[0] if start else None
        )

    def bench(match: re.Match[str]) -> str:
        return benchmark_section(match.group(1), match.group(2))

    def cli(match: re.Match[str]) -> str:
        return cli_help(match.group(1))

    def missed(match: re.Match[str]) -> str:
        return missed_goals(benchmark_section(match.group(1), match.group(2)))

    markdown = _STATE.sub(diagram, markdown)
    markdown = _MISSED.sub(missed, _BENCH.sub(bench, markdown))
    return _CLI.sub(cli, markdown)


def on_files(files: Any, config: Any) -> Any:
    """Publish the benchmark chart beside the performance page."""
    from mkdocs.structure.files import File

    chart = ROOT / "benchmarks" / "results" / "peers.png"
    if chart.exists():
        files.append(
            File.generated(config, "explanation/peers.png", abs_src_path=str(chart))
        )
    return files


# --------------------------------------------------------------------------- state diagrams


def _name(member: object) -> str:
    return member.name if isinstance(member, enum.Enum) else str(member)


def state_diagram(
    module_name: str, *, optional: bool = False, start: list[str] | None = None
) -> str:
    """Markdown for the transition table of ``module_name``: a Mermaid diagram, then the
    same transitions as a table (readable where Mermaid's script cannot be loaded)."""
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise PluginError(f"state-diagram: cannot import {module_name}: {exc}") from exc
    table = getattr(module, "TRANSITIONS", None)
    if table is None:
        if optional:
            return ""
        raise PluginError(
            f"state-diagram: {module_name} defines no TRANSITIONS table; give it one "
            "({(state, event): transition with .next and .actions}) or remove the "
            f"<!-- state-diagram: {module_name} --> placeholder"
        )
    if not isinstance(table, Mapping) or not table:
        raise PluginError(f"state-diagram: {module_name}.TRANSITIONS is not a non-empty mapping")
    return render_transitions(table, start=start)


def render_transitions(
    table: Mapping[tuple[Any, Any], Any], *, start: list[str] | None = None
) -> str:
    """A transition table as Mermaid ``stateDiagram-v2`` plus a Markdown table.

    ``start`` names the states a machine may start in (the first state by default)."""
    rows: list[tuple[Any, Any, Any, tuple[Any, ...]]] = []
    for key, transition in table.items():
        try:
            state, event = key
            target, actions = transition.next, tuple(transition.actions)
        except (TypeError, ValueError, AttributeError) as exc:
            raise PluginError(
                f"state-diagram: entry {key!r}: {transition!r} is not "
                "(state, event) -> an object with .next and .actions"
            ) from exc
        rows.append((state, event, target, actions))
    states = _states(rows)
    # The diagram leaves out the events a state ignores (it stays put and does nothing);
    # the table lists them, one row per state.
    edges: dict[tuple[str, str], list[str]] = {}
    for state, event, target, actions in rows:
        if target != state or actions:
            edges.setdefault((_name(state), _name(target)), []).append(_name(event))
    lines = ["```mermaid", "stateDiagram-v2"]
    names = [_name(s) for s in states]
    for first in start or names[:1]:
        if first not in names:
            raise PluginError(f"state-diagram: start={first} is not one of the states {names}")
        lines.append(f"    [*] --> {first}")
    for (source, target), events in edges.items():
        lines.append(f"    {source} --> {target}: {', '.join(events)}")
    # A final state: nothing leads out of it but back into itself (an idempotent close).
    leaving = {_name(s) for s, _, t, _ in rows if t != s}
    lines += [f"    {_name(s)} --> [*]" for s in states if _name(s) not in leaving]
    lines.append("```")
    grouped: dict[tuple[str, str, tuple[str, ...]], list[str]] = {}
    for state, event, target, actions in rows:
        key = (_name(state), _name(target), tuple(_name(a) for a in actions))
        grouped.setdefault(key, []).append(_name(event))
    lines += ["", "| state | events | next state | actions |", "|---|---|---|---|"]
    for (state, target, actions), events in grouped.items():
        names = ", ".join(f"`{e}`" for e in events)
        done = ", ".join(f"`{a}`" for a in actions) or "none"
        if state == target and not actions:
            target, done = "(unchanged)", "none: ignored"
        else:
            target = f"`{target}`"
        lines.append(f"| `{state}` | {names} | {target} | {done} |")
    return "\n".join(lines) + "\n"


def _states(rows: Iterable[tuple[Any, Any, Any, Any]]) -> list[Any]:
    """Every state, in its enum's order when the states are enum members."""
    seen: dict[Any, None] = {}
    for state, _, target, _ in rows:
        seen.setdefault(state)
        seen.setdefault(target)
    states = list(seen)
    first = states[0]
    if isinstance(first, enum.Enum):
        order = list(type(first))
        states.sort(key=lambda s: order.index(s) if s in order else len(order))
    return states


# --------------------------------------------------------------------------- CLI


def cli_help(command: str) -> str:
    """``wsgate [COMMAND] --help`` as a text block, from the parser itself."""
    from wsgate.cli import main

    argv = ["--help"] if command == "-" else [command, "--help"]
    out = io.StringIO()
    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal: not to depend on it
    try:
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            main(argv)
    finally:
        if columns is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = columns
    text = out.getvalue().strip()
    if not text:
        raise PluginError(f"cli-help: `wsgate {' '.join(argv)}` printed nothing")
    return f"```text\n{text}\n```\n"


# --------------------------------------------------------------------------- benchmarks


def benchmark_section(file: str, heading: str) -> str:
    """The section of ``benchmarks/results/<file>`` under the heading starting with
    ``heading`` (else the first line starting with it); fails the build if the file or
    the text is missing, so a renamed section cannot vanish from the site unnoticed."""
    path = ROOT / "benchmarks" / "results" / file
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PluginError(f"benchmark: cannot read {path}: {exc}") from exc
    lines = text.splitlines()
    for i, line in enumerate(lines):
        match = re.match(r"(#+)\s+(.*)", line)
        if match and match.group(2).startswith(heading):
            level = len(match.group(1))
            body = []
            for rest in lines[i + 1 :]:
                sub = re.match(r"(#+)\s", rest)
                if sub and len(sub.group(1)) <= level:
                    break
                body.append("##" + rest if sub else rest)
            return "\n".join(body).strip() + "\n"
    for line in lines:
        if line.startswith(heading):
            return line + "\n"
    raise PluginError(f"benchmark: no heading starting with {heading!r} in {path}")


def missed_goals(section: str) -> str:
    """The table rows of ``section`` whose last cell is "no", as a Markdown list of
    "figure: measured (goal)"; "none" when every goal was met."""
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in section.splitlines()
        if line.lstrip().startswith("|")
    ]
    if len(rows) < 3:
        raise PluginError("benchmark-missed: the section holds no table")
    header, body = [h.lower() for h in rows[0]], rows[2:]
    col = {name: header.index(name) for name in ("figure", "goal", "measured")}
    missed = [r for r in body if r[-1].strip("*").lower() == "no"]
    if not missed:
        return "Every goal was met in the latest run.\n"
    return "".join(
        f"- {r[col['figure']]}: **{r[col['measured']]}** (goal {r[col['goal']]})\n"
        for r in missed
    )
