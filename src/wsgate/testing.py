"""An in-process test client: drives an App through ASGI, no network.

::

    async with TestClient(app) as client:
        async with client.websocket_connect("/chat/1") as ws:
            await ws.send_event("chat.send", {"text": "hi"}, id=1)
            reply = await ws.receive_json()

Works under pytest-trio and under the anyio pytest plugin (trio or asyncio). Every
receive has a timeout (``TestClient(timeout=...)``, 5 s by default) that fails the test
instead of hanging it.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlencode

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from . import status
from .asgi import Message
from .encoding import decode, encode
from .errors import WebSocketRouteNotFoundError

__all__ = ["RouteNotFound", "TestClient", "TestWebSocket", "WebSocketClosed", "WebSocketDenied"]


class WebSocketDenied(Exception):
    """The server refused the handshake: HTTP ``status``, ``body`` and ``headers``.

    A refusal by close before accept is reported as status 403, as servers do.
    """

    def __init__(
        self, status: int, body: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        super().__init__(f"handshake refused with HTTP {status}: {body[:200]!r}")
        self.status = status
        self.body = body
        self.headers = headers or []

    def json(self) -> Any:
        """The body decoded as JSON."""
        return decode(self.body)


class RouteNotFound(WebSocketDenied, WebSocketRouteNotFoundError):
    """The handshake was refused with 404: no gateway serves the path. Both a
    :class:`WebSocketDenied` (status 404) and the
    :class:`~wsgate.errors.WebSocketRouteNotFoundError` the App raised for it."""

    def __init__(
        self, status: int, body: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        WebSocketDenied.__init__(self, status, body, headers)
        try:
            message = str(decode(body)["error"]["message"])
        except Exception:
            message = "no WebSocket endpoint at this path"
        self.message = message
        self.close_code = None
        self.detail = None


class WebSocketClosed(Exception):
    """The server closed the connection with ``code`` and ``reason``."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(
            f"server closed the connection with {code}" + (f": {reason}" if reason else "")
        )
        self.code = code
        self.reason = reason


class TestWebSocket:
    """The client side of one in-process WebSocket connection."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        to_app: MemoryObjectSendStream[Message],
        from_app: MemoryObjectReceiveStream[Message],
        timeout: float,
    ) -> None:
        self._to_app = to_app
        self._from_app = from_app
        self.timeout = timeout
        #: The subprotocol the server accepted, if any.
        self.accepted_subprotocol: str | None = None
        #: Headers the server added to its accept.
        self.accept_headers: list[tuple[bytes, bytes]] = []
        #: ``(code, reason)`` once the server closed the connection.
        self.close_code: int | None = None
        self.close_reason: str = ""
        self._client_closed = False
        # Frames request() read past while looking for its answer, for later receives.
        self._pending: deque[Message] = deque()

    async def _put(self, message: Message) -> None:
        if self._client_closed:
            raise RuntimeError("this test connection is closed")
        await self._to_app.send(message)

    async def send_text(self, data: str) -> None:
        """Send a text frame."""
        await self._put({"type": "websocket.receive", "text": data})

    async def send_bytes(self, data: bytes) -> None:
        """Send a binary frame."""
        await self._put({"type": "websocket.receive", "bytes": data})

    async def send_json(self, data: Any) -> None:
        """Send ``data`` JSON-encoded in a text frame."""
        await self.send_text(encode(data).decode())

    async def send_event(self, event: str, data: Any = None, id: int | str | None = None) -> None:
        """Send a wsgate envelope ``{"event", "data", "id"}``."""
        frame: dict[str, Any] = {"event": event, "data": data}
        if id is not None:
            frame["id"] = id
        await self.send_json(frame)

    async def receive(self, timeout: float | None = None) -> Message:
        """The next raw ASGI message the app sent. Raises :class:`WebSocketClosed` on a close
        and ``TimeoutError`` if nothing comes within the timeout."""
        if self._pending:
            return self._pending.popleft()
        if self.close_code is not None:
            raise WebSocketClosed(self.close_code, self.close_reason)
        limit = self.timeout if timeout is None else timeout
        try:
            with anyio.fail_after(limit):
                message = await self._from_app.receive()
        except TimeoutError:
            raise TimeoutError(f"no frame from the server within {limit}s") from None
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise WebSocketClosed(
                self.close_code or status.WS_1006_ABNORMAL_CLOSURE, self.close_reason
            ) from None
        if message["type"] == "websocket.close":
            self.close_code = message.get("code", status.WS_1000_NORMAL_CLOSURE)
            self.close_reason = message.get("reason") or ""
            raise WebSocketClosed(self.close_code, self.close_reason)
        return message

    async def receive_text(self, timeout: float | None = None) -> str:
        """The next text frame (``AssertionError`` on a binary frame)."""
        message = await self.receive(timeout)
        text = message.get("text")
        assert text is not None, f"expected a text frame, got {message!r}"
        return str(text)

    async def receive_bytes(self, timeout: float | None = None) -> bytes:
        """The next binary frame (``AssertionError`` on a text frame)."""
        message = await self.receive(timeout)
        data = message.get("bytes")
        assert data is not None, f"expected a binary frame, got {message!r}"
        return bytes(data)

    async def receive_json(self, timeout: float | None = None) -> Any:
        """The next text frame, decoded as JSON."""
        return decode(await self.receive_text(timeout))

    async def request(
        self, event: str, data: Any = None, id: int | str = 1, timeout: float | None = None
    ) -> Any:
        """Send an envelope with ``id`` and return the frame answering it (reply or error).

        Frames that arrive before the answer are kept for the next ``receive*()`` calls.
        """
        await self.send_event(event, data, id=id)
        skipped: list[Message] = []
        try:
            while True:
                message = await self.receive(timeout)
                text = message.get("text")
                if text is not None:
                    frame = decode(text)
                    if isinstance(frame, dict) and "id" in frame and frame["id"] == id:
                        return frame
                skipped.append(message)
        finally:
            self._pending.extendleft(reversed(skipped))

    async def wait_closed(self, timeout: float | None = None) -> tuple[int, str]:
        """Wait for the server's close, skipping frames; returns ``(code, reason)``."""
        while True:
            try:
                await self.receive(timeout)
            except WebSocketClosed as closed:
                return closed.code, closed.reason

    async def close(self, code: int = status.WS_1000_NORMAL_CLOSURE, reason: str = "") -> None:
        """Close from the client side: the app receives ``websocket.disconnect``."""
        if self._client_closed:
            return
        if self.close_code is None:
            await self._to_app.send(
                {"type": "websocket.disconnect", "code": code, "reason": reason}
            )
        self._client_closed = True

    @property
    def closed_by_client(self) -> bool:
        """True once :meth:`close` was called (the test closed the connection)."""
        return self._client_closed


class TestClient:
    """Drives an ASGI app in-process; runs its lifespan on enter and exit."""

    __test__ = False

    def __init__(
        self,
        app: Any,
        *,
        lifespan: bool = True,
        denial_extension: bool = True,
        timeout: float = 5.0,
        client: tuple[str, int] = ("127.0.0.1", 50000),
    ) -> None:
        self.app = app
        self.lifespan = lifespan
        self.denial_extension = denial_extension
        self.timeout = timeout
        self.client = client
        self._tg: TaskGroup | None = None
        self._lifespan_send: MemoryObjectSendStream[Message] | None = None
        self._lifespan_recv: MemoryObjectReceiveStream[Message] | None = None
        self._lifespan_streams: tuple[Any, ...] = ()

    async def __aenter__(self) -> Self:
        self._tg = await anyio.create_task_group().__aenter__()
        if self.lifespan:
            to_app, app_in = anyio.create_memory_object_stream[Message](math.inf)
            app_out, from_app = anyio.create_memory_object_stream[Message](math.inf)
            self._lifespan_send, self._lifespan_recv = to_app, from_app
            self._lifespan_streams = (to_app, app_in, app_out, from_app)
            scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
            self._tg.start_soon(self.app, scope, app_in.receive, app_out.send)
            await to_app.send({"type": "lifespan.startup"})
            try:
                with anyio.fail_after(self.timeout):
                    reply = await from_app.receive()
                if reply["type"] != "lifespan.startup.complete":
                    raise RuntimeError(f"app startup failed: {reply.get('message')}")
            except BaseException:
                self._tg.cancel_scope.cancel()
                await self._tg.__aexit__(None, None, None)
                for stream in self._lifespan_streams:
                    stream.close()
                raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._tg is not None
        try:
            if self._lifespan_send is not None and self._lifespan_recv is not None:
                with anyio.fail_after(
                    self.timeout + self.app.config.shutdown_timeout
                    if hasattr(self.app, "config")
                    else self.timeout
                ):
                    await self._lifespan_send.send({"type": "lifespan.shutdown"})
                    await self._lifespan_recv.receive()
        finally:
            self._tg.cancel_scope.cancel()
            result = await self._tg.__aexit__(exc_type, exc, tb)
            for stream in self._lifespan_streams:
                stream.close()
        return result

    def websocket_scope(
        self,
        path: str,
        subprotocols: list[str] | None = None,
        headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
        query: Mapping[str, str] | None = None,
        root_path: str = "",
    ) -> dict[str, Any]:
        """The ASGI scope a connection to ``path`` would have."""
        path, _, qs = path.partition("?")
        if query:
            qs = (qs + "&" if qs else "") + urlencode(query)
        hdrs = [(b"host", b"testserver")]
        pairs = headers.items() if isinstance(headers, Mapping) else (headers or ())
        for k, v in pairs:
            hdrs.append((k.lower().encode("latin-1"), v.encode("latin-1")))
        return {
            "type": "websocket",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "scheme": "ws",
            "server": ("testserver", 80),
            "client": self.client,
            "root_path": root_path,
            "path": root_path + path,
            "raw_path": (root_path + path).encode(),
            "query_string": qs.encode(),
            "headers": hdrs,
            "subprotocols": list(subprotocols or []),
            "extensions": {"websocket.http.response": {}} if self.denial_extension else {},
            "state": {},
        }

    @asynccontextmanager
    async def websocket_connect(
        self,
        path: str,
        subprotocols: list[str] | None = None,
        headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
        *,
        query: Mapping[str, str] | None = None,
        root_path: str = "",
    ) -> AsyncIterator[TestWebSocket]:
        """Open a connection; yields a :class:`TestWebSocket` once the app accepted.

        Raises :class:`WebSocketDenied` if the app refused the handshake. On exit the
        client closes (if neither side has) and waits for the app to finish the
        connection, including ``@on_disconnect``; an exception the app raised is re-raised.
        """
        scope = self.websocket_scope(path, subprotocols, headers, query, root_path)
        to_app, app_in = anyio.create_memory_object_stream[Message](math.inf)
        app_out, from_app = anyio.create_memory_object_stream[Message](math.inf)
        ws = TestWebSocket(to_app, from_app, self.timeout)

        async def receive() -> Message:
            try:
                return await app_in.receive()
            except anyio.EndOfStream:
                return {"type": "websocket.disconnect", "code": status.WS_1006_ABNORMAL_CLOSURE}

        async def send(message: Message) -> None:
            if (
                message["type"] == "websocket.close"
                and ws.close_code is None
                and not ws.closed_by_client
            ):
                # As a server does: the peer answers the close, and the app then receives
                # websocket.disconnect.
                to_app.send_nowait(
                    {
                        "type": "websocket.disconnect",
                        "code": message.get("code", status.WS_1000_NORMAL_CLOSURE),
                    }
                )
            try:
                app_out.send_nowait(message)
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                pass

        finished = anyio.Event()
        failure: list[BaseException] = []

        async def run_app() -> None:
            try:
                await self.app(scope, receive, send)
            except Exception as exc:
                failure.append(exc)
            finally:
                app_out.close()
                finished.set()

        if self._tg is None:
            raise RuntimeError(
                "use the TestClient as an async context manager: async with TestClient(app) as client"
            )
        self._tg.start_soon(run_app)
        await to_app.send({"type": "websocket.connect"})
        denied: WebSocketDenied | None = None
        with anyio.fail_after(self.timeout):
            try:
                first = await from_app.receive()
            except anyio.EndOfStream:
                first = {"type": "websocket.http.response.start", "status": 500}
            if first["type"] == "websocket.close":
                denied = WebSocketDenied(403)
            elif first["type"] == "websocket.http.response.start":
                body = b""
                async for message in from_app:
                    body += message.get("body", b"")
                    if not message.get("more_body"):
                        break
                denial = RouteNotFound if first["status"] == 404 else WebSocketDenied
                denied = denial(first["status"], body, list(first.get("headers", [])))

        def close_streams() -> None:
            for stream in (to_app, app_in, app_out, from_app):
                stream.close()

        if denied is not None:
            with anyio.fail_after(self.timeout):
                await finished.wait()
            close_streams()
            if failure:
                raise failure[0]
            raise denied
        assert first["type"] == "websocket.accept", first
        ws.accepted_subprotocol = first.get("subprotocol")
        ws.accept_headers = list(first.get("headers") or [])
        try:
            yield ws
        finally:
            await ws.close()
            hook_time = getattr(getattr(self.app, "config", None), "disconnect_timeout", 0.0)
            with anyio.fail_after(self.timeout + hook_time):
                await finished.wait()
            close_streams()
        if failure:
            raise failure[0]
