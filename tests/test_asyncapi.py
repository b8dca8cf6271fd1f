"""The AsyncAPI 3.0 document of the gateways: checked by the official parser
(``@asyncapi/parser`` through tests/node/validate_asyncapi.mjs), read for what each part
of a gateway becomes, printed by ``wsgate asyncapi``, and served at ``/docs`` by real
servers."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import anyio.to_thread
import msgspec
import pytest
import servers
from servers import ServerURL
from test_app import call_http

from wsgate import App, DecoratorUsageError, Json, on_message, ws_controller
from wsgate.errors import ConfigurationError

ROOT = Path(__file__).resolve().parent.parent
VALIDATOR = ROOT / "tests" / "node" / "validate_asyncapi.mjs"
ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join(
        [str(ROOT / "src"), str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]
    ),
}

server_pool = servers.server_pool
server_logs_clean = servers.server_logs_clean
chat_server = servers.chat_server


def _example_apps() -> list[str]:
    """``module:attr`` of every App with gateways in a module under examples/."""
    found = []
    for path in sorted((ROOT / "examples").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        if path.name in ("__init__.py", "__main__.py"):
            continue
        mod = importlib.import_module(module)
        for name, value in vars(mod).items():
            if isinstance(value, App) and value.plans:
                found.append(f"{module}:{name}")
    return found


EXAMPLE_APPS = _example_apps()
TEST_APPS = ["apps.gateways:gateway_app", "apps.protocol:app", "apps.isolation:app"]


def _load(spec: str) -> App:
    module, _, attr = spec.partition(":")
    app = getattr(importlib.import_module(module), attr)
    assert isinstance(app, App)
    return app


def validate(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The official parser's diagnostics for ``doc``; fails the test on any error."""
    if not (ROOT / "node_modules" / "@asyncapi" / "parser").is_dir():
        pytest.fail("node_modules/@asyncapi/parser is missing: run `npm ci` in the project root")
    proc = subprocess.run(
        ["node", str(VALIDATOR)],
        input=json.dumps(doc),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    diagnostics: list[dict[str, Any]] = json.loads(proc.stdout)
    errors = [d for d in diagnostics if d["severity"] == 0]
    assert not errors, json.dumps(errors, indent=1)
    assert proc.returncode == 0, proc.stderr
    return diagnostics


def test_the_validator_reports_errors() -> None:
    # The check the other tests rely on does fail on a broken document.
    proc = subprocess.run(
        ["node", str(VALIDATOR)],
        input=json.dumps({"asyncapi": "3.0.0", "info": {"title": "x"}, "channels": 1}),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 1
    assert any(d["severity"] == 0 for d in json.loads(proc.stdout))


def test_every_example_with_gateways_is_found() -> None:
    assert "examples.chat.app:app" in EXAMPLE_APPS
    assert "examples.embed_trio:app" in EXAMPLE_APPS


@pytest.mark.parametrize("spec", EXAMPLE_APPS + TEST_APPS)
def test_document_validates_with_the_official_parser(spec: str) -> None:
    doc = _load(spec).asyncapi()
    diagnostics = validate(doc)
    # Only the hint that a newer AsyncAPI version exists, nothing about the document.
    assert {d["code"] for d in diagnostics} <= {"asyncapi-latest-version"}


# --------------------------------------------------------------------------- content


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return _load("apps.protocol:app").asyncapi()


def _deref(doc: dict[str, Any], obj: Any) -> Any:
    while isinstance(obj, dict) and "$ref" in obj:
        node: Any = doc
        for part in obj["$ref"].lstrip("#/").split("/"):
            node = node[part]
        obj = node
    return obj


def _payload(doc: dict[str, Any], ref: dict[str, str]) -> dict[str, Any]:
    message = _deref(doc, ref)
    return dict(message["payload"])


def test_a_channel_per_gateway_with_its_path_parameters(doc: dict[str, Any]) -> None:
    chat = doc["channels"]["ChatGateway"]
    assert chat["address"] == "/chat/{room_id}/{page}"
    assert set(chat["parameters"]) == {"room_id", "page"}
    assert "int" in chat["parameters"]["page"]["description"]
    assert chat["summary"] == "A chat room"
    assert chat["description"] == "Rooms of people who talk."
    assert chat["tags"] == [{"name": "chat"}]
    assert chat["bindings"]["ws"]["query"]["properties"] == {"lang": {"type": "string"}}
    assert doc["channels"]["BinaryGateway"]["address"] == "/bin"


def test_a_receive_operation_per_event_with_its_payload_and_reply(doc: dict[str, Any]) -> None:
    op = doc["operations"]["ChatGateway.chat.send"]
    assert op["action"] == "receive"
    assert op["channel"] == {"$ref": "#/channels/ChatGateway"}
    assert op["summary"] == "Post a message"
    assert op["description"] == "Everyone else in the room receives ``chat.message``."
    assert op["tags"] == [{"name": "messages"}]
    request = _payload(doc, op["messages"][0])
    assert request["properties"]["event"] == {"const": "chat.send"}
    assert request["properties"]["data"] == {"$ref": "#/components/schemas/ChatMessage"}
    assert request["required"] == ["event", "data"]
    message = _deref(doc, op["messages"][0])
    assert message["correlationId"]["location"] == "$message.payload#/id"

    chat_message = doc["components"]["schemas"]["ChatMessage"]
    assert chat_message["required"] == ["text", "author"]
    assert chat_message["properties"]["author"] == {"$ref": "#/components/schemas/Author"}
    assert doc["components"]["schemas"]["Color"]["enum"] == ["green", "red"]

    who = doc["operations"]["ChatGateway.who"]
    reply = _payload(doc, who["reply"]["messages"][0])
    assert reply["properties"]["data"] == {"type": "integer"}
    assert reply["required"] == ["event", "id", "data"]
    assert _deref(doc, who["reply"]["messages"][0])["correlationId"] == message["correlationId"]
    assert "data" not in _payload(doc, who["messages"][0])["required"]  # no Json parameter
    codes = [
        _payload(doc, m)["properties"]["data"]["properties"]["code"]["const"]
        for m in who["reply"]["messages"][1:]
    ]
    assert codes == ["validation_error", "internal_error"]


def test_tagged_unions_and_tuples_in_draft07_form(doc: dict[str, Any]) -> None:
    draw = _payload(doc, doc["operations"]["ChatGateway.draw"]["messages"][0])
    shape = draw["properties"]["data"]
    assert shape["discriminator"] == "type"
    assert {s["$ref"] for s in shape["anyOf"]} == {
        "#/components/schemas/Circle",
        "#/components/schemas/Square",
    }
    anything = doc["operations"]["ChatGateway.anything"]
    data = _payload(doc, anything["reply"]["messages"][0])["properties"]["data"]
    assert data["anyOf"][0]["items"] == [{"type": "integer"}, {"type": "string"}]
    assert "prefixItems" not in json.dumps(doc)


def test_streams_pushes_and_error_frames(doc: dict[str, Any]) -> None:
    count = doc["operations"]["ChatGateway.count"]
    assert _payload(doc, count["reply"]["messages"][0])["properties"]["data"] == {"type": "null"}
    items = doc["operations"]["ChatGateway.count.items"]
    assert items["action"] == "send"
    item = _payload(doc, items["messages"][0])
    assert item["properties"] == {
        "event": {"const": "count"},
        "data": {"$ref": "#/components/schemas/Tick"},
    }
    request = _payload(doc, count["messages"][0])
    assert request["properties"]["data"]["anyOf"] == [{"type": "integer"}, {"type": "null"}]

    push = doc["operations"]["ChatGateway.push.chat.message"]
    assert push["action"] == "send"
    assert _payload(doc, push["messages"][0])["properties"]["data"] == {
        "$ref": "#/components/schemas/Posted"
    }
    assert _payload(doc, doc["operations"]["ChatGateway.push.ping"]["messages"][0])["properties"][
        "data"
    ] == {"type": "null"}

    errors = doc["operations"]["ChatGateway.errors"]
    codes = {
        _payload(doc, m)["properties"]["data"]["properties"]["code"]["const"]
        for m in errors["messages"]
    }
    assert codes == {"invalid_frame", "unknown_event", "validation_error", "internal_error"}


def test_wildcard_and_binary_handlers(doc: dict[str, Any]) -> None:
    other = _payload(doc, doc["operations"]["ChatGateway.wildcard"]["messages"][0])
    assert other["properties"]["event"]["type"] == "string"
    binary = _deref(doc, doc["operations"]["BinaryGateway.binary"]["messages"][0])
    assert binary["contentType"] == "application/octet-stream"


def _changeable_app(*, new_event: bool, new_field: bool) -> App:
    if new_field:

        class Note(msgspec.Struct):
            text: str
            pinned: bool = False

    else:

        class Note(msgspec.Struct):  # type: ignore[no-redef]
            text: str

    async def add(self: Any, body: Any) -> None:
        pass

    # Annotations as objects: this module's string annotations cannot see local classes.
    add.__annotations__ = {"body": Json[Note], "return": None}
    members: dict[str, Any] = {"add": on_message("note.add")(add)}
    if new_event:

        async def count(self: Any) -> int:
            return 0

        count.__annotations__ = {"return": int}
        members["count"] = on_message("note.count")(count)
    notes = ws_controller("/notes")(type("Notes", (), members))
    return App(gateways=[notes])


def test_the_document_follows_the_gateways() -> None:
    before = _changeable_app(new_event=False, new_field=False).asyncapi()
    after = _changeable_app(new_event=True, new_field=True).asyncapi()
    assert "Notes.note.count" not in before["operations"]
    assert after["operations"]["Notes.note.count"]["action"] == "receive"
    reply = _payload(after, after["operations"]["Notes.note.count"]["reply"]["messages"][0])
    assert reply["properties"]["data"] == {"type": "integer"}
    assert "pinned" not in before["components"]["schemas"]["Note"]["properties"]
    assert after["components"]["schemas"]["Note"]["properties"]["pinned"] == {
        "type": "boolean",
        "default": False,
    }
    validate(after)


# --------------------------------------------------------------------------- emits


def test_emits_is_validated_when_the_gateway_is_declared() -> None:
    class NotSerializable:
        pass

    cases: list[tuple[Any, str]] = [
        (["chat.message"], "emits must be a dict of event name -> data type"),
        ({"": int}, "event names must be non-empty str"),
        ({1: int}, "event names must be non-empty str"),
        ({"error": int}, "'error' is reserved"),
        ({"*": int}, "'*' is reserved"),
        ({"chat.message": "Posted"}, "pass the type itself"),
        ({"chat.message": NotSerializable}, "msgspec cannot describe the type of 'chat.message'"),
    ]
    for emits, expected in cases:
        with pytest.raises(DecoratorUsageError) as info:

            @ws_controller("/x", emits=emits)
            class Pushy:
                pass

        assert expected in str(info.value), str(info.value)
        assert "Pushy" in str(info.value)


def test_docs_path_must_be_a_path() -> None:
    with pytest.raises(ConfigurationError, match="docs_path"):
        App(docs_path="docs")


# --------------------------------------------------------------------------- the command


def test_the_command_prints_the_same_document(tmp_path: Path) -> None:
    spec = "examples.chat.app:app"
    proc = subprocess.run(
        [sys.executable, "-m", "wsgate", "asyncapi", spec],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=ENV,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    expected = json.loads(json.dumps(_load(spec).asyncapi()))
    assert json.loads(proc.stdout) == expected

    out = tmp_path / "asyncapi.json"
    proc = subprocess.run(
        [sys.executable, "-m", "wsgate", "asyncapi", spec, "-o", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=ENV,
        timeout=60,
    )
    assert proc.returncode == 0 and proc.stdout == "", proc.stderr
    assert json.loads(out.read_text()) == expected


def test_the_command_says_what_is_wrong() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "wsgate", "asyncapi", "examples.chat.app:nothing"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=ENV,
        timeout=60,
    )
    assert proc.returncode != 0
    assert "has no attribute 'nothing'" in proc.stderr


# --------------------------------------------------------------------------- /docs


def _get(url: str, method: str = "GET") -> tuple[int, str, bytes]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.headers["content-type"], response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["content-type"], exc.read()


@pytest.mark.usefixtures("server_logs_clean")
async def test_docs_are_served_by_real_servers(chat_server: ServerURL) -> None:
    base = chat_server.replace("ws://", "http://")

    status, ctype, body = await anyio.to_thread.run_sync(_get, base + "/docs/asyncapi.json")
    assert (status, ctype) == (200, "application/json")
    assert json.loads(body) == json.loads(json.dumps(_load("examples.chat.app:app").asyncapi()))

    status, ctype, body = await anyio.to_thread.run_sync(_get, base + "/docs")
    assert (status, ctype) == (200, "text/html; charset=utf-8")
    page = body.decode()
    assert "<script" not in page and "http://" not in page and "https://" not in page
    for text in (
        "<code>/chat/{room_id}</code>",
        "ChatGateway.chat.send",
        "Post a message to the room",
        'href="#schema-ChatMessage"',
        'id="schema-Posted"',
        "ChatGateway.push.joined",
        "error: unknown_event",
        "<code>validation_error</code>: <code>data</code>",
        'href="/docs/asyncapi.json"',
    ):
        assert text in page, text

    status, _, _ = await anyio.to_thread.run_sync(_get, base + "/docs/")
    assert status == 200
    status, _, _ = await anyio.to_thread.run_sync(_get, base + "/docs/other")
    assert status == 404
    status, _, _ = await anyio.to_thread.run_sync(
        lambda: _get(base + "/docs/asyncapi.json", "POST")
    )
    assert status == 405
    # The app's own HTTP endpoint still serves everything else.
    status, ctype, body = await anyio.to_thread.run_sync(_get, base + "/")
    assert status == 200 and b"<title>wsgate chat</title>" in body


class Note(msgspec.Struct):
    """A note; *see* the [guide](https://example.org/notes?a=1&b=2)."""

    text: str


@ws_controller("/notes", summary="Notes, `plain` and **bold**")
class NoteGateway:
    """Keeps `notes`.

    Second paragraph: <script>alert(1)</script> and a [trap](javascript:alert(1)).
    """

    @on_message("note.add")
    async def add(self, body: Json[Note]) -> None:
        """Adds a note; the reply is ``null``, see :class:`~wsgate.WebSocketError`."""


async def test_the_docs_page_renders_markdown_from_docstrings() -> None:
    app = App(gateways=[NoteGateway], docs_path="/docs")
    status, body = await call_http(app, "/docs")
    assert status == 200
    page = body.decode()
    for text in (
        "<strong>Notes, <code>plain</code> and <strong>bold</strong></strong>",
        "<p>Keeps <code>notes</code>.</p>",
        "<p>Second paragraph: &lt;script&gt;alert(1)&lt;/script&gt; and a trap",
        "the reply is <code>null</code>, see <code>WebSocketError</code>.",
        '<em>see</em> the <a href="https://example.org/notes?a=1&amp;b=2">guide</a>',
    ):
        assert text in page, text
    assert "`" not in page and "<script>" not in page and "javascript:" not in page
    assert "**" not in page


def test_tags_must_be_lists() -> None:
    with pytest.raises(DecoratorUsageError, match="tags must be a list of str"):
        ws_controller("/x", tags="chat")  # type: ignore[arg-type]
    with pytest.raises(DecoratorUsageError, match="tags must be a list of str"):
        on_message("x", tags="chat")  # type: ignore[arg-type]
