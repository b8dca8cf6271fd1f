"""The import graph of ``src/wsgate`` has no cycle.

Every import counts (module level and inside functions), except those under
``if TYPE_CHECKING:`` (they never run) and imports of a module's own parent packages
(importing ``wsgate.x.y`` always imports ``wsgate`` and ``wsgate.x`` first, so such an
edge says nothing about the design). The graph is read from the source with ``ast``, so
a cycle is found whether or not the modules can be imported here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import wsgate

SRC = Path(wsgate.__file__).resolve().parent
ROOT = "wsgate"


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement, skipping the bodies of ``if TYPE_CHECKING:``."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.orelse:  # the ``else:`` branch does run
                    visit_stmt(stmt)
                continue
            visit_stmt(child)

    def visit_stmt(node: ast.AST) -> None:
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        visit(node)

    visit(tree)
    return found


def _package_of(name: str, path: Path) -> str:
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def _ancestors(name: str) -> set[str]:
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def import_graph() -> dict[str, set[str]]:
    """``module -> modules of wsgate it imports`` (see the module docstring)."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        package = _package_of(name, path)
        targets: set[str] = set()
        for node in _imports(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    targets.add(alias.name)
                continue
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts)
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            targets.add(source)
            for alias in node.names:
                # ``from . import x`` imports the submodule x when there is one.
                if f"{source}.{alias.name}" in modules:
                    targets.add(f"{source}.{alias.name}")
        own = _ancestors(name)
        for target in targets:
            # ``import wsgate.a.b`` names a module; keep the longest known prefix.
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name and target not in own:
                graph[name].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as ``[a, b, ..., a]``, or None."""
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(graph, white)
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        colour[node] = grey
        stack.append(node)
        for nxt in sorted(graph[node]):
            if colour[nxt] == grey:
                return [*stack[stack.index(nxt) :], nxt]
            if colour[nxt] == white:
                cycle = visit(nxt)
                if cycle is not None:
                    return cycle
        stack.pop()
        colour[node] = black
        return None

    for node in sorted(graph):
        if colour[node] == white:
            cycle = visit(node)
            if cycle is not None:
                return cycle
    return None


def test_the_graph_is_read() -> None:
    graph = import_graph()
    # Sanity: edges of each kind the reader must resolve.
    assert "wsgate.app" in graph["wsgate"]  # from .app import App
    assert "wsgate.status" in graph["wsgate.asgi"]  # from . import status
    assert "wsgate.broadcast.memory" in graph["wsgate.broadcast.redis"]  # from .memory ...
    assert "wsgate.errors" in graph["wsgate.socketio.install"]  # from ..errors ...
    assert "wsgate" not in graph["wsgate.broadcast.redis"]  # parents never count


def test_find_cycle_names_the_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_type_checking_imports_do_not_count() -> None:
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from .app import App\nelse:\n    from .b import B\n"
        "def f():\n    from .c import C\n"
    )
    assert [n.module for n in _imports(tree) if isinstance(n, ast.ImportFrom)] == [
        "typing",
        "b",
        "c",
    ]


def test_no_import_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle in src/wsgate: " + " -> ".join(cycle or ())
