"""The browser client, ``wsgate.js`` and its types ``wsgate.d.ts``, shipped in this
directory as package data and served by ``App(client_path="/wsgate.js")``.

A plug-in (:mod:`wsgate.plugins`), registered when this module is imported: it reads the
App's ``client_path`` option and mounts the two files."""

from __future__ import annotations

import hashlib
from importlib import resources
from typing import TYPE_CHECKING

from ..asgi import Receive, Scope, Send
from ..errors import ConfigurationError
from ..plugins import AppSetup, register

if TYPE_CHECKING:
    from ..app import App

__all__ = ["client_source", "mount_client"]


JS_TYPE = b"text/javascript; charset=utf-8"
DTS_TYPE = b"text/plain; charset=utf-8"


def client_source(name: str = "wsgate.js") -> bytes:
    """The bytes of a file shipped here: ``"wsgate.js"`` or ``"wsgate.d.ts"``. Raises
    ``FileNotFoundError`` for any other name."""
    if name not in ("wsgate.js", "wsgate.d.ts"):
        raise FileNotFoundError(f"wsgate ships wsgate.js and wsgate.d.ts, not {name!r}")
    return resources.files(__name__).joinpath(name).read_bytes()


def mount_client(app: App, client_path: str | None) -> None:
    """Serve ``wsgate.js`` at ``client_path`` (e.g. ``"/wsgate.js"``) and ``wsgate.d.ts``
    beside it (``"/wsgate.d.ts"``) on ``app``; nothing if ``client_path`` is None.
    Raises :class:`~wsgate.errors.ConfigurationError` for a path that does not start with
    ``/`` or end with ``.js``."""
    if client_path is None:
        return
    if not isinstance(client_path, str) or not client_path.startswith("/"):
        raise ConfigurationError(
            f"App(client_path=...) must be an absolute URL path like '/wsgate.js', "
            f"got {client_path!r}"
        )
    if not client_path.endswith(".js") or client_path == "/.js":
        raise ConfigurationError(
            f"App(client_path=...) must end with '.js' (the types are served beside it "
            f"with '.d.ts'), got {client_path!r}"
        )
    types_path = client_path[: -len(".js")] + ".d.ts"
    app.mount_http(client_path, _StaticFile(client_path, client_source("wsgate.js"), JS_TYPE))
    app.mount_http(types_path, _StaticFile(types_path, client_source("wsgate.d.ts"), DTS_TYPE))


class _StaticFile:
    """An ASGI endpoint answering GET and HEAD at exactly one path with one file,
    revalidated by ETag."""

    def __init__(self, path: str, body: bytes, content_type: bytes) -> None:
        self.path = path
        self.body = body
        self.etag = b'"' + hashlib.sha256(body).hexdigest()[:16].encode() + b'"'
        self.content_type = content_type

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "/")
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :] or "/"
        if path != self.path:
            await _respond(send, 404, [(b"content-type", b"text/plain")], b"Not Found")
            return
        method = scope.get("method", "GET")
        if method not in ("GET", "HEAD"):
            await _respond(send, 405, [(b"allow", b"GET, HEAD")], b"Method Not Allowed")
            return
        headers = [
            (b"content-type", self.content_type),
            (b"etag", self.etag),
            (b"cache-control", b"no-cache"),
        ]
        for name, value in scope.get("headers", ()):
            if name == b"if-none-match" and self.etag in value.split(b", "):
                await _respond(send, 304, headers, b"")
                return
        await _respond(send, 200, headers, b"" if method == "HEAD" else self.body, len(self.body))


async def _respond(
    send: Send,
    status: int,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    length: int | None = None,
) -> None:
    if status != 304:
        headers = [
            *headers,
            (b"content-length", str(len(body) if length is None else length).encode()),
        ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def plugin(setup: AppSetup) -> None:
    """The browser-client plug-in: ``App(client_path=...)`` serves ``wsgate.js`` there."""
    client_path = setup.option("client_path")
    if client_path is not None:
        setup.on_built(lambda app: mount_client(app, client_path))


register("static", plugin)
