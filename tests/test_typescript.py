"""``wsgate typescript``: the generated ``.d.ts`` compiles on its own, and the TypeScript
compiler (``tsc --strict``) accepts correct uses of a gateway's events through a client
typed like wsgate's browser client and rejects wrong ones."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TSC = ROOT / "node_modules" / ".bin" / "tsc"
ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join(
        [str(ROOT / "src"), str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]
    ),
}

#: How the browser client's ``connect`` is typed (a global declaration, as a script).
CLIENT = """
declare function connect<E extends Record<string, { data: unknown; reply: unknown; item: unknown }>, P>(
  url: string,
): {
  request<K extends keyof E & string>(event: K, data: E[K]["data"]): Promise<E[K]["reply"]>;
  on<K extends keyof P & string>(event: K, fn: (data: P[K]) => void): void;
};
"""

HEADER = 'import type { ChatGatewayEvents, ChatGatewayPushes, Tick } from "./api";\n'
CONNECT = 'const c = connect<ChatGatewayEvents, ChatGatewayPushes>("ws://127.0.0.1/chat/a/1");\n'

GOOD = """
async function main(): Promise<void> {
  const members: number = await c.request("who", null);
  const nothing: null = await c.request("chat.send", {
    text: "hi",
    author: { name: "ann", email: null },
    tags: ["x"],
    meta: { likes: 1 },
    color: "red",
    mood: "happy",
  });
  const shapes = await c.request("draw", { type: "circle", radius: 2 });
  const first = shapes[0];
  if (first.type === "square") {
    const side: number = first.side;
  }
  const pair = await c.request("anything", { whatever: [1, "two"] });
  if (pair !== null) {
    const n: number = pair[0];
    const s: string = pair[1];
  }
  await c.request("count", null);
  await c.request("count", 5);
  const item: ChatGatewayEvents["count"]["item"] = { n: 1 } satisfies Tick;
  const never: ChatGatewayEvents["who"]["item"][] = [];
  c.on("chat.message", (posted) => {
    const room: string = posted.room;
    const shape = posted.shape;
    if (shape && shape.type === "circle") {
      const r: number = shape.radius;
    }
  });
  c.on("left", (data) => {
    const user: string | undefined = data["user"];
  });
  c.on("ping", (data) => {
    const nil: null = data;
  });
}
"""

#: Wrong uses, each with what tsc must say about it.
BAD = {
    "wrong field type": (
        'c.request("chat.send", { text: 1, author: { name: "ann" } });',
        "Type 'number' is not assignable to type 'string'",
    ),
    "missing required field": (
        'c.request("chat.send", { text: "hi" });',
        "Property 'author' is missing",
    ),
    "unknown event": ('c.request("chat.sned", null);', '"chat.sned"'),
    "unknown enum value": (
        'c.request("chat.send", { text: "hi", author: { name: "a" }, color: "blue" });',
        "Type '\"blue\"' is not assignable to type 'Color",
    ),
    "wrong union tag": (
        'c.request("draw", { type: "triangle", radius: 1 });',
        '"triangle"',
    ),
    "data for an event without data": ('c.request("who", { room: "a" });', "not assignable"),
    "wrong reply type": (
        'async function f(): Promise<string> { return await c.request("who", null); }',
        "Type 'number' is not assignable to type 'string'",
    ),
    "wrong push type": (
        'c.on("chat.message", (p) => { const n: number = p.room; });',
        "Type 'string' is not assignable to type 'number'",
    ),
    "unknown push": ('c.on("chat.msg", () => {});', '"chat.msg"'),
    "no items for a plain handler": (
        'const i: ChatGatewayEvents["who"]["item"] = 1;',
        "Type '1' is not assignable to type 'never'",
    ),
}


def _generate(spec: str, out: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "wsgate", "typescript", spec, "-o", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=ENV,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr


def _tsc(*files: Path) -> subprocess.CompletedProcess[str]:
    if not TSC.exists():
        pytest.fail("node_modules/.bin/tsc is missing: run `npm ci` in the project root")
    return subprocess.run(
        [
            str(TSC),
            "--noEmit",
            "--strict",
            "--target",
            "es2022",
            "--module",
            "es2022",
            "--moduleResolution",
            "bundler",
            *map(str, files),
        ],
        capture_output=True,
        text=True,
        cwd=files[0].parent,
        timeout=180,
    )


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with the declarations of tests/apps/protocol.py and the client."""
    d = tmp_path_factory.mktemp("ts")
    _generate("apps.protocol:app", d / "api.d.ts")
    (d / "client.d.ts").write_text(CLIENT)
    return d


def test_the_declarations_are_standalone(project: Path) -> None:
    text = (project / "api.d.ts").read_text()
    assert "import " not in text and "require(" not in text
    assert '"chat.send": { data: ChatMessage; reply: null; item: never };' in text
    assert '"who": { data: null; reply: number; item: never };' in text
    assert '"count": { data: number | null; reply: null; item: Tick };' in text
    assert '"chat.message": Posted;' in text
    proc = _tsc(project / "api.d.ts")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_correct_uses_compile(project: Path) -> None:
    good = project / "good.ts"
    good.write_text(HEADER + CONNECT + GOOD)
    proc = _tsc(good, project / "client.d.ts")
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def bad_output(project: Path) -> str:
    """tsc's output for every wrong use, each in a file of its own (one compiler run)."""
    files = []
    for case, (code, _) in BAD.items():
        bad = project / f"bad_{case.replace(' ', '_')}.ts"
        bad.write_text(HEADER + CONNECT + code + "\n")
        files.append(bad)
    proc = _tsc(*files, project / "client.d.ts")
    assert proc.returncode != 0
    return proc.stdout


def _errors_by_file(output: str) -> dict[str, list[str]]:
    """tsc's errors by file name, each with its indented continuation lines."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in output.splitlines():
        if line and not line[0].isspace():
            current = found.setdefault(line.split("(", 1)[0], [])
            current.append(line)
        elif current:
            current[-1] += "\n" + line
    return found


@pytest.mark.parametrize("case", list(BAD))
def test_wrong_uses_do_not_compile(bad_output: str, case: str) -> None:
    code, expected = BAD[case]
    name = f"bad_{case.replace(' ', '_')}.ts("
    errors = _errors_by_file(bad_output).get(name.rstrip("("), [])
    assert errors, f"{case}: tsc accepted\n{code}\n{bad_output}"
    assert any(expected in e for e in errors), errors
    assert "api.d.ts(" not in bad_output  # the errors are in the uses, not the declarations


@pytest.mark.parametrize("spec", ["examples.chat.app:app", "apps.gateways:gateway_app"])
def test_other_apps_generate_valid_declarations(tmp_path: Path, spec: str) -> None:
    _generate(spec, tmp_path / "api.d.ts")
    proc = _tsc(tmp_path / "api.d.ts")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_chat_example_pushes_are_typed(tmp_path: Path) -> None:
    _generate("examples.chat.app:app", tmp_path / "api.d.ts")
    text = (tmp_path / "api.d.ts").read_text()
    assert "export type ChatGatewayPushes = {" in text
    assert text.count("\n};\n") == 2  # both maps are complete type alias statements
    for line in ('"chat.message": Posted;', '"joined": Arrival;', '"left": Arrival;'):
        assert line in text
