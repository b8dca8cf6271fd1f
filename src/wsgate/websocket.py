"""The WebSocket connection object handed to handlers."""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from . import status
from .connection import QUEUED, REPLACED, Connection, Overflow
from .datastructures import Address, Headers, QueryParams, State
from .encoding import decode as _json_decode
from .encoding import encode as _json_encode
from .errors import WebSocketDisconnect, WebSocketStateError

if TYPE_CHECKING:
    from .app import App

__all__ = ["WebSocket", "WebSocketState"]

T = TypeVar("T")
Message = dict[str, Any]


def truncate_reason(reason: str) -> str:
    """``reason`` cut to the 123 bytes of UTF-8 a close frame can carry."""
    data = reason.encode()
    return reason if len(data) <= 123 else data[:123].decode(errors="ignore")


class WebSocketState(enum.IntEnum):
    """Where a connection is in its life."""

    #: The handshake arrived; neither accepted nor refused yet.
    CONNECTING = 0
    #: Accepted: frames flow both ways.
    CONNECTED = 1
    #: Closed by either side, or refused.
    DISCONNECTED = 2


def _header_pairs(headers: Mapping[str, str] | Iterable[tuple[str, str]] | None) -> list[Any]:
    if headers is None:
        return []
    items = headers.items() if isinstance(headers, Mapping) else headers
    out = []
    for k, v in items:
        out.append(
            (
                k.encode("latin-1") if isinstance(k, str) else k,
                v.encode("latin-1") if isinstance(v, str) else v,
            )
        )
    return out


class WebSocket:
    """A live WebSocket connection.

    Built by the runtime for each connection and passed to handlers that declare a
    ``ws: WebSocket`` parameter; user code never instantiates it.

    Once accepted, sends go through a bounded outbox drained by the connection's writer
    task (``send_*`` waits while it is full), and receives come from the reader task
    through a bounded channel. In a gateway with ``@on_message`` handlers the runtime owns
    the receive side; in a gateway without them, ``@on_connect`` may loop over
    ``receive_*()`` / ``iter_*()`` itself.
    """

    __slots__ = (
        "__weakref__",
        "_accepted",
        "_app",
        "_conn",
        "_connection_state",
        "_headers",
        "_peer_left",
        "_query_params",
        "_runtime_receives",
        "_scope",
        "_state",
        "accepted_subprotocol",
        "close_code",
        "close_reason",
        "path_params",
        "path_template",
    )

    def __init__(
        self,
        scope: Mapping[str, Any],
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
        *,
        app: App,
        path_template: str = "",
        path_params: dict[str, Any] | None = None,
        outbound_queue: int | None = None,
        overflow: Overflow | None = None,
    ) -> None:
        self._scope = scope
        self._app = app
        cfg = app.config
        self._conn = Connection(
            self,
            receive,
            send,
            outbound_size=outbound_queue or cfg.outbound_queue,
            inbound_size=cfg.inbound_queue,
            policy=overflow or cfg.overflow,
            stats=app.stats,
            grace=cfg.disconnect_grace,
        )
        self._accepted = False
        self._connection_state = WebSocketState.CONNECTING
        self._peer_left = False
        self._runtime_receives = False
        self._headers: Headers | None = None
        self._query_params: QueryParams | None = None
        self._state: State | None = None
        #: The route template that matched, e.g. ``"/chat/{room_id}"``.
        self.path_template = path_template
        #: Path parameters, converted per the route's converters.
        self.path_params: dict[str, Any] = path_params or {}
        #: The subprotocol chosen in :meth:`accept`, if any.
        self.accepted_subprotocol: str | None = None
        #: The close code once the connection is closed (by either side), else None.
        self.close_code: int | None = None
        #: The close reason once closed ("" if none was given).
        self.close_reason: str = ""

    def __repr__(self) -> str:
        return f"<WebSocket {self.path!r} {self._connection_state.name}>"

    # -- properties ------------------------------------------------------------------

    @property
    def scope(self) -> Mapping[str, Any]:
        """The raw ASGI scope."""
        return self._scope

    @property
    def connection_state(self) -> WebSocketState:
        """CONNECTING, CONNECTED or DISCONNECTED."""
        return self._connection_state

    @property
    def path(self) -> str:
        """The request path, below the app's ``root_path``."""
        path: str = self._scope.get("path", "/")
        root: str = self._scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :] or "/"
        return path

    @property
    def headers(self) -> Headers:
        """Handshake request headers: case-insensitive, multi-valued (``getlist``)."""
        if self._headers is None:
            self._headers = Headers.from_scope(self._scope)
        return self._headers

    @property
    def query_params(self) -> QueryParams:
        """Query string parameters, multi-valued (``getlist``)."""
        if self._query_params is None:
            self._query_params = QueryParams.from_scope(self._scope)
        return self._query_params

    @property
    def url(self) -> str:
        """The full URL of the connection, e.g. ``ws://host:8000/chat/1?x=1``."""
        scope = self._scope
        scheme = scope.get("scheme", "ws")
        host = self.headers.get("host")
        if host is None:
            server = scope.get("server")
            if server:
                h, p = server[0], server[1]
                default = 443 if scheme in ("wss", "https") else 80
                host = h if p in (None, default) else f"{h}:{p}"
            else:
                host = "localhost"
        qs = scope.get("query_string", b"")
        url = f"{scheme}://{host}{scope.get('root_path', '')}{self.path}"
        if qs:
            url += "?" + qs.decode("latin-1")
        return url

    @property
    def client(self) -> Address | None:
        """The peer's ``(host, port)``, if the server gives it."""
        c = self._scope.get("client")
        return Address(c[0], c[1]) if c else None

    @property
    def subprotocols(self) -> tuple[str, ...]:
        """Subprotocols the client offered, in its order of preference."""
        return tuple(self._scope.get("subprotocols", ()))

    @property
    def state(self) -> State:
        """Per-connection state: set attributes in ``@on_connect``, read them anywhere."""
        if self._state is None:
            self._state = State()
        return self._state

    @property
    def app_state(self) -> State:
        """The App's state (``App.state``), shared by every connection."""
        return self._app.state

    @property
    def app(self) -> App:
        """The :class:`~wsgate.App` serving this connection."""
        return self._app

    # -- state changes ---------------------------------------------------------------

    def _peer_closed(self, code: int, reason: str) -> None:
        self._peer_left = True
        if self._connection_state is not WebSocketState.DISCONNECTED:
            self._connection_state = WebSocketState.DISCONNECTED
            self.close_code = code
            self.close_reason = reason

    def _server_closed(self, code: int, reason: str) -> None:
        if self._connection_state is not WebSocketState.DISCONNECTED:
            self._connection_state = WebSocketState.DISCONNECTED
            self.close_code = code
            self.close_reason = reason

    def _state_error(self, action: str) -> Exception:
        st = self._connection_state
        if st is WebSocketState.CONNECTING:
            return WebSocketStateError(
                f"cannot {action}: the connection is CONNECTING; accept() it first (or "
                "return from @on_connect and let the runtime accept it)"
            )
        if self._peer_left:
            return WebSocketDisconnect(self.close_code or 1005, self.close_reason)
        return WebSocketStateError(
            f"cannot {action}: the connection is DISCONNECTED (closed by the server with "
            f"code {self.close_code})"
        )

    # -- handshake -------------------------------------------------------------------

    async def accept(
        self,
        subprotocol: str | None = None,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    ) -> None:
        """Complete the handshake, optionally choosing a ``subprotocol`` and adding
        response ``headers`` (a mapping or a list of pairs).

        The runtime calls this for you when ``@on_connect`` returns normally. Raises
        :class:`~wsgate.errors.WebSocketStateError` if the connection is not CONNECTING,
        and ``ValueError`` if ``subprotocol`` is not one the client offered.
        """
        if self._connection_state is not WebSocketState.CONNECTING:
            raise WebSocketStateError(
                f"cannot accept: the connection is {self._connection_state.name}, not CONNECTING"
            )
        if subprotocol is not None and subprotocol not in self.subprotocols:
            raise ValueError(
                f"subprotocol {subprotocol!r} was not offered by the client "
                f"(offered: {list(self.subprotocols)})"
            )
        message: Message = {"type": "websocket.accept", "subprotocol": subprotocol}
        if headers is not None:
            message["headers"] = _header_pairs(headers)
        conn = self._conn
        await conn.send(message)
        self._connection_state = WebSocketState.CONNECTED
        self._accepted = True
        self.accepted_subprotocol = subprotocol
        conn.outbox.start()
        if conn.reader_on_accept:
            conn.start_reader_task()

    async def deny(
        self,
        status_code: int = 403,
        body: bytes | str = b"",
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    ) -> None:
        """Refuse the handshake with an HTTP response.

        Uses the ASGI ``websocket.http.response`` extension where the server offers it;
        elsewhere falls back to a close before accept, which servers turn into HTTP 403.
        """
        if self._connection_state is not WebSocketState.CONNECTING:
            raise WebSocketStateError(
                f"cannot deny: the connection is {self._connection_state.name}; deny() only "
                "works before accept()"
            )
        self._connection_state = WebSocketState.DISCONNECTED
        self.close_code = status.WS_1008_POLICY_VIOLATION
        self.close_reason = f"HTTP {status_code}"
        send = self._conn.send
        if "websocket.http.response" not in self._scope.get("extensions", {}):
            await send({"type": "websocket.close", "code": status.WS_1008_POLICY_VIOLATION})
            return
        data = body.encode() if isinstance(body, str) else body
        pairs = _header_pairs(headers)
        if not any(k.lower() == b"content-length" for k, _ in pairs):
            pairs.append((b"content-length", str(len(data)).encode()))
        await send(
            {"type": "websocket.http.response.start", "status": status_code, "headers": pairs}
        )
        await send({"type": "websocket.http.response.body", "body": data, "more_body": False})

    # -- receiving -------------------------------------------------------------------

    async def receive(self) -> Message:
        """The next raw ASGI ``websocket.receive`` message.

        Raises :class:`~wsgate.errors.WebSocketDisconnect` when the peer has closed.
        """
        conn = self._conn
        if self._connection_state is not WebSocketState.CONNECTED and not (
            # Frames that arrived before the peer left are still delivered.
            self._peer_left and conn.reader_task and len(conn.inbox)
        ):
            raise self._state_error("receive")
        if self._runtime_receives:
            raise WebSocketStateError(
                "cannot receive: this gateway has @on_message handlers, so the runtime "
                "reads every frame and dispatches it; take the data as a handler parameter "
                "(e.g. body: Json[T]) or remove the @on_message handlers to loop over "
                "receive_*() in @on_connect"
            )
        if conn.reader_task:
            message = await conn.inbox.get()
            if message is None:
                raise WebSocketDisconnect(self.close_code or 1005, self.close_reason)
            return message
        # No reader task (inside @on_connect of a dispatching gateway): read directly.
        message = await conn.receive()
        if message["type"] == "websocket.disconnect":
            self._peer_closed(message.get("code", 1005), message.get("reason") or "")
            conn.outbox.finish(discard=True)
            raise WebSocketDisconnect(self.close_code or 1005, self.close_reason)
        return message

    async def receive_text(self) -> str:
        """The next text frame. A binary frame raises ``TypeError`` (no silent decoding)."""
        message = await self.receive()
        text = message.get("text")
        if text is None:
            raise TypeError(
                "received a binary frame where a text frame was expected; use receive_bytes()"
            )
        return str(text)

    async def receive_bytes(self) -> bytes:
        """The next binary frame. A text frame raises ``TypeError`` (no silent encoding)."""
        message = await self.receive()
        data = message.get("bytes")
        if data is None:
            raise TypeError(
                "received a text frame where a binary frame was expected; use receive_text()"
            )
        return bytes(data)

    async def receive_json(self) -> Any:
        """The next text frame, decoded as JSON (``msgspec.DecodeError`` if it is not)."""
        return _json_decode(await self.receive_text())

    async def receive_as(self, type: type[T]) -> T:
        """The next text frame, decoded and validated straight into ``type`` with msgspec.

        Raises :class:`~wsgate.errors.WebSocketValidationError` listing the failing paths.
        """
        text = await self.receive_text()
        from .frames import decode_as

        return decode_as(text, type, self._app.config.max_json_depth)

    async def iter_text(self) -> AsyncIterator[str]:
        """Text frames until the peer closes."""
        try:
            while True:
                yield await self.receive_text()
        except WebSocketDisconnect:
            return

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        """Binary frames until the peer closes."""
        try:
            while True:
                yield await self.receive_bytes()
        except WebSocketDisconnect:
            return

    async def iter_json(self) -> AsyncIterator[Any]:
        """JSON-decoded text frames until the peer closes."""
        try:
            while True:
                yield await self.receive_json()
        except WebSocketDisconnect:
            return

    async def __aiter__(self) -> AsyncIterator[str | bytes]:
        """Frames (``str`` for text, ``bytes`` for binary) until the peer closes."""
        try:
            while True:
                message = await self.receive()
                text = message.get("text")
                yield text if text is not None else bytes(message.get("bytes") or b"")
        except WebSocketDisconnect:
            return

    # -- sending ---------------------------------------------------------------------

    async def send(self, message: Message) -> None:
        """Queue a raw ASGI ``websocket.send`` message; waits while the outbox is full."""
        if self._connection_state is not WebSocketState.CONNECTED:
            raise self._state_error("send")
        outbox = self._conn.outbox
        if not outbox.put_nowait(message) and not await outbox.put(message):
            raise self._state_error("send")

    async def send_text(self, data: str) -> None:
        """Send a text frame."""
        if not isinstance(data, str):
            raise TypeError(
                f"send_text() takes str, not {type(data).__name__}; use send_bytes() or send_json()"
            )
        await self.send({"type": "websocket.send", "text": data})

    async def send_bytes(self, data: bytes | bytearray | memoryview) -> None:
        """Send a binary frame."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(
                f"send_bytes() takes bytes, not {type(data).__name__}; use send_text() or send_json()"
            )
        await self.send({"type": "websocket.send", "bytes": bytes(data)})

    async def send_json(self, data: Any, mode: Literal["text", "binary"] = "text") -> None:
        """Encode ``data`` as JSON with msgspec and send it as a text (or binary) frame.

        Structs, dataclasses, attrs classes, datetimes, UUIDs, Decimals, enums, sets and
        objects with ``model_dump()`` (Pydantic) are handled.
        """
        payload = _json_encode(data)
        if mode == "text":
            await self.send({"type": "websocket.send", "text": payload.decode()})
        elif mode == "binary":
            await self.send({"type": "websocket.send", "bytes": payload})
        else:
            raise ValueError(f"mode must be 'text' or 'binary', not {mode!r}")

    def send_nowait(self, message: Message) -> bool:
        """Queue a raw ASGI send message without waiting (the fan-out path).

        When the outbox is full the connection's overflow policy decides: drop a frame or
        close this slow consumer. Returns True if the frame was queued.
        """
        if self._connection_state is not WebSocketState.CONNECTED:
            return False
        return self._conn.offer(message) in (QUEUED, REPLACED)

    async def close(self, code: int = status.WS_1000_NORMAL_CLOSURE, reason: str = "") -> None:
        """Close the connection; idempotent.

        After accept, frames already queued are sent first, then the close frame; the
        connection's handlers are then cancelled and ``@on_disconnect`` runs. Before
        accept, the handshake is refused with this close (servers answer HTTP 403).
        ``code`` and ``reason`` are kept on :attr:`close_code` / :attr:`close_reason`.
        """
        st = self._connection_state
        if st is WebSocketState.DISCONNECTED:
            return
        reason = truncate_reason(reason)
        self._connection_state = WebSocketState.DISCONNECTED
        self.close_code = code
        self.close_reason = reason
        if st is WebSocketState.CONNECTING:
            await self._conn.send({"type": "websocket.close", "code": code, "reason": reason})
            return
        self._conn.close_nowait(code, reason, discard=False)
