"""Gateways behind the handshake checks, served by real servers for
tests/test_guards_servers.py: ``apps.guarded:app`` (the default same-origin policy,
guards, per-connection dependencies, ``handshake_timeout=1.0``; also below
``/no-denial-extension`` as a server without the denial extension would serve it) and
``apps.guarded:limited`` (``max_connections=2``).

What the tests cannot see on the wire (when a dependency's context exited) they ask
through the ``/probe`` gateway.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio

from wsgate import (
    App,
    Header,
    Json,
    WebSocket,
    WebSocketError,
    on_connect,
    on_disconnect,
    on_message,
    ws_controller,
)


class Journal:
    """What happened, by connection key (an app-wide provider)."""

    def __init__(self) -> None:
        self.events: dict[str, list[str]] = {}

    def add(self, key: str, event: str) -> None:
        self.events.setdefault(key, []).append(event)


class User:
    def __init__(self, name: str, admin: bool) -> None:
        self.name = name
        self.admin = admin


USERS = {"t-ann": User("ann", True), "t-bob": User("bob", False)}


def current_user(x_token: Header[str] = "") -> User:
    """Authenticates the handshake (a per-connection dependency)."""
    user = USERS.get(x_token)
    if user is None:
        raise WebSocketError("a valid x-token header is required")
    return user


def is_admin(user: User) -> bool:
    return user.admin


class Resource:
    def __init__(self, key: str) -> None:
        self.key = key


async def resource(key: str, journal: Journal) -> AsyncIterator[Resource]:
    """A per-connection context: entered before @on_connect, exited after
    @on_disconnect."""
    journal.add(key, "enter")
    try:
        yield Resource(key)
    finally:
        journal.add(key, "exit")


@ws_controller("/echo")
class EchoGateway:
    @on_message("echo")
    async def echo(self, body: Json[Any]) -> Any:
        return body


def signed_in(user: User) -> bool:
    """Taking the user is what matters: resolving it refuses unknown tokens."""
    return bool(user.name)


@ws_controller("/secure", guards=[signed_in])
class SecureGateway:
    @on_message("whoami")
    async def whoami(self, user: User) -> str:
        return user.name

    @on_message("admin", guards=[is_admin])
    async def admin(self, user: User) -> str:
        return f"welcome, {user.name}"


@ws_controller("/ctx/{key}")
class ContextGateway:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    @on_connect
    async def connect(self, res: Resource) -> None:
        self.journal.add(res.key, "on_connect")

    @on_message("key")
    async def key_(self, res: Resource) -> str:
        return res.key

    @on_disconnect
    async def gone(self, res: Resource) -> None:
        self.journal.add(res.key, "on_disconnect")


async def never_answers() -> None:
    await anyio.sleep_forever()


@ws_controller("/slow", guards=[never_answers])
class SlowGateway:
    @on_message("echo")
    async def echo(self, body: Json[Any]) -> Any:  # pragma: no cover - never reached
        return body


@ws_controller("/probe")
class ProbeGateway:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    @on_message("events")
    async def events(self, body: Json[str]) -> list[str]:
        return self.journal.events.get(body, [])

    @on_message("stats")
    async def stats(self, ws: WebSocket) -> dict[str, int]:
        return ws.app.stats.as_dict()


guarded_app = App(
    gateways=[EchoGateway, SecureGateway, ContextGateway, SlowGateway, ProbeGateway],
    providers=[Journal],
    dependencies=[current_user, resource],
    # Short enough for the refusal test not to wait long, long enough that the other
    # handshakes (guards, dependencies) never hit it on a loaded machine. The timing
    # itself is tested in-process on the virtual clock (tests/test_guards.py).
    handshake_timeout=1.0,
)


NO_EXTENSION_PREFIX = "/no-denial-extension"


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """``guarded_app``, and the same below ``/no-denial-extension`` as a server without
    the ASGI ``websocket.http.response`` extension would serve it."""
    if scope["type"] == "websocket" and scope["path"].startswith(NO_EXTENSION_PREFIX + "/"):
        extensions = dict(scope.get("extensions") or {})
        extensions.pop("websocket.http.response", None)
        scope = {
            **scope,
            "extensions": extensions,
            "root_path": scope.get("root_path", "") + NO_EXTENSION_PREFIX,
        }
    await guarded_app(scope, receive, send)


@ws_controller("/hold")
class HoldGateway:
    @on_message("ping")
    async def ping(self) -> str:
        return "pong"


limited = App(gateways=[HoldGateway], max_connections=2)
