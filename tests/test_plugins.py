"""Plug-ins (wsgate.plugins), public names, and the client's renamed classes."""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import httpx
import pytest
from test_imports import import_graph

import wsgate
from wsgate import App, Json, WebSocket, on_message, ws_controller
from wsgate import plugins as plugin_registry
from wsgate.asgi import Receive, Scope, Send
from wsgate.errors import ConfigurationError
from wsgate.plugins import AppSetup
from wsgate.testing import RouteNotFound, TestClient

WAIT = 5.0


class Greeting:
    """A provider the plug-in adds."""

    text = "hello from the plug-in"


def marked(cls: type) -> type:
    """What a plug-in's own decorator would do: mark a class as the plug-in's."""
    cls.is_marked = True  # type: ignore[attr-defined]
    return cls


@marked
class Marked:
    """Not a gateway: the plug-in takes it out of App(gateways=[...])."""


async def hello_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    body = b"mounted by a plug-in"
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def demo_plugin(setup: AppSetup) -> None:
    taken = setup.take_gateways(lambda g: getattr(g, "is_marked", False))
    if not taken:
        return
    setup.provide(Greeting())

    def gateways(container: Any) -> list[type]:
        greeting = container.get(Greeting)

        @ws_controller("/plugin")
        class Generated:
            @on_message("greet")
            async def greet(self, ws: WebSocket) -> str:
                return f"{greeting.text} ({len(taken)} taken)"

        return [Generated]

    setup.add_gateways(gateways)
    setup.on_built(lambda app: app.mount_http("/plugin-http", hello_endpoint))


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plugin_registry, "_registry", dict(plugin_registry._registry))
    plugin_registry.register("demo", demo_plugin)


@ws_controller("/echo")
class Echo:
    @on_message("echo")
    async def echo(self, data: Json[str]) -> str:
        return data


@pytest.mark.usefixtures("registered")
async def test_a_plugin_adds_providers_gateways_and_mounts() -> None:
    app = App(gateways=[Echo, Marked])
    async with TestClient(app) as client, client.websocket_connect("/plugin") as ws:
        reply = await ws.request("greet", timeout=WAIT)
        assert reply["data"] == "hello from the plug-in (1 taken)"
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        response = await http.get("/plugin-http")
    assert response.status_code == 200
    assert response.text == "mounted by a plug-in"


@pytest.mark.usefixtures("registered")
async def test_a_plugin_adds_nothing_when_it_has_nothing_to_do() -> None:
    app = App(gateways=[Echo])  # nothing marked: the plug-in adds nothing
    async with TestClient(app) as client:
        with pytest.raises(RouteNotFound):
            async with client.websocket_connect("/plugin"):
                pass
        async with client.websocket_connect("/echo") as ws:
            assert (await ws.request("echo", "hi", timeout=WAIT))["data"] == "hi"


def test_the_builtin_plugins_are_registered_in_mount_order() -> None:
    names = list(plugin_registry._registry)
    assert names[:4] == ["static", "socketio", "docs", "asyncapi"]


def test_an_unknown_plugin_option_says_which_exist() -> None:
    setup = AppSetup([], [], {"docs_path": None})
    with pytest.raises(ConfigurationError, match="docs_path"):
        setup.option("doc_path")


def test_app_imports_no_plugin() -> None:
    graph = import_graph()
    reached: set[str] = set()
    todo = ["wsgate.app"]
    while todo:
        name = todo.pop()
        if name not in reached:
            reached.add(name)
            todo.extend(graph[name])
    for plugin in ("wsgate.socketio.install", "wsgate.docs", "wsgate.asyncapi", "wsgate.static"):
        assert plugin not in reached, f"wsgate.app reaches {plugin}"


def test_builtin_plugins_still_serve_their_options() -> None:
    app = App(gateways=[Echo], docs_path="/docs", client_path="/wsgate.js")
    assert app.asyncapi()["asyncapi"].startswith("3.")


PUBLIC_MODULES = ("wsgate", "wsgate.client", "wsgate.socketio", "wsgate.testing", "wsgate.broadcast")


def test_no_two_public_classes_share_a_name() -> None:
    seen: dict[str, tuple[str, type]] = {}
    clashes = []
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if not inspect.isclass(obj):
                continue
            if name in seen and seen[name][1] is not obj:
                clashes.append(f"{seen[name][0]}.{name} and {module_name}.{name}")
            seen.setdefault(name, (module_name, obj))
    assert not clashes, clashes


def test_no_public_class_shares_a_name_with_the_runtime() -> None:
    import wsgate.client
    import wsgate.connection
    import wsgate.state

    runtime = {"Connection": wsgate.connection, "ConnectionState": wsgate.state}
    for name in runtime:
        assert name not in wsgate.client.__all__


def test_old_client_names_are_deprecated_aliases() -> None:
    import wsgate.client as client

    with pytest.warns(DeprecationWarning, match="ClientState"):
        old_state = client.ConnectionState
    assert old_state is client.ClientState
    with pytest.warns(DeprecationWarning, match="ClientConnection"):
        from wsgate.client import Connection
    assert Connection is client.ClientConnection
    with pytest.raises(AttributeError):
        _ = client.NoSuchName  # type: ignore[attr-defined]


def test_client_lifecycle_is_connection_state_and_state_is_deprecated() -> None:
    from wsgate.client import ClientState, connect

    conn = connect("ws://127.0.0.1:9/")
    assert conn.connection_state is ClientState.CONNECTING
    with pytest.warns(DeprecationWarning, match="connection_state"):
        assert conn.state is ClientState.CONNECTING


def test_state_is_the_users_bag_on_the_server() -> None:
    app = App(gateways=[Echo])
    assert isinstance(app.state, wsgate.State)
