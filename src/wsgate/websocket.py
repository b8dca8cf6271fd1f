"""The WebSocket connection object handed to handlers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from . import status
from .asgi import Message, denial_messages, strip_root_path
from .connection import Connection
from .datastructures import Address, Headers, QueryParams, State
from .encoding import decode as _json_decode
from .encoding import encode as _json_encode
from .errors import WebSocketDisconnect, WebSocketStateError
from .frames import decode_as
from .queues import Offer
from .state import Phase, Receiver, WebSocketState, truncate_reason

if TYPE_CHECKING:
    from .app import App

__all__ = ["WebSocket", "WebSocketState"]

T = TypeVar("T")


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

    A facade over the connection's runtime (:mod:`wsgate.connection`): once accepted,
    sends are written by one sender at a time (``send_*`` waits while the connection's
    bounded outbox is full), and receives come from the connection's reader. In a gateway
    with ``@on_message`` handlers the runtime owns the receive side; in a gateway without
    them, ``@on_connect`` may loop over ``receive_*()`` / ``iter_*()`` itself.
    """

    __slots__ = (
        "__weakref__",
        "_app",
        "_conn",
        "_headers",
        "_query_params",
        "_scope",
        "_state",
        "accepted_subprotocol",
        "path_params",
        "path_template",
    )

    def __init__(
        self,
        scope: Mapping[str, Any],
        conn: Connection,
        *,
        app: App,
        path_template: str = "",
        path_params: dict[str, Any] | None = None,
    ) -> None:
        self._scope = scope
        self._app = app
        self._conn = conn
        self._headers: Headers | None = None
        self._query_params: QueryParams | None = None
        self._state: State | None = None
        #: The route template that matched, e.g. ``"/chat/{room_id}"``.
        self.path_template = path_template
        #: Path parameters, converted per the route's converters.
        self.path_params: dict[str, Any] = path_params or {}
        #: The subprotocol chosen in :meth:`accept`, if any.
        self.accepted_subprotocol: str | None = None

    def __repr__(self) -> str:
        return f"<WebSocket {self.path!r} {self.connection_state.name}>"

    # -- properties ------------------------------------------------------------------

    @property
    def scope(self) -> Mapping[str, Any]:
        """The raw ASGI scope."""
        return self._scope

    @property
    def runtime(self) -> Connection:
        """The runtime connection under this WebSocket: the seam that protocols built on
        wsgate (its Engine.IO/Socket.IO server among them) use to read frames with the
        App's limits applied, offer or send frames, spawn tasks in the connection's task
        group and close it. A broadcast group delivers to it. Handlers never need it."""
        return self._conn

    @property
    def connection_state(self) -> WebSocketState:
        """CONNECTING, CONNECTED or DISCONNECTED."""
        return self._conn.lifecycle.public

    @property
    def close_code(self) -> int | None:
        """The close code once the connection is closed (by either side), else None."""
        return self._conn.lifecycle.close_code

    @property
    def close_reason(self) -> str:
        """The close reason once closed ("" if none was given)."""
        return self._conn.lifecycle.close_reason

    @property
    def path(self) -> str:
        """The request path, below the app's ``root_path``."""
        return strip_root_path(self._scope)

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
        if self._conn.lifecycle.phase is not Phase.CONNECTING:
            raise WebSocketStateError(
                f"cannot accept: the connection is {self.connection_state.name}, not CONNECTING"
            )
        if subprotocol is not None and subprotocol not in self.subprotocols:
            raise ValueError(
                f"subprotocol {subprotocol!r} was not offered by the client "
                f"(offered: {list(self.subprotocols)})"
            )
        message: Message = {"type": "websocket.accept", "subprotocol": subprotocol}
        if headers is not None:
            message["headers"] = _header_pairs(headers)
        await self._conn.accept(message)
        self.accepted_subprotocol = subprotocol

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
        if self._conn.lifecycle.phase is not Phase.CONNECTING:
            raise WebSocketStateError(
                f"cannot deny: the connection is {self.connection_state.name}; deny() only "
                "works before accept()"
            )
        data = body.encode() if isinstance(body, str) else body
        await self._conn.send_refusal(
            denial_messages(self._scope, status_code, data, _header_pairs(headers)),
            status.WS_1008_POLICY_VIOLATION,
            f"HTTP {status_code}",
        )

    # -- receiving -------------------------------------------------------------------

    async def receive(self) -> Message:
        """The next raw ASGI ``websocket.receive`` message.

        Raises :class:`~wsgate.errors.WebSocketDisconnect` when the peer has closed.
        """
        conn = self._conn
        state = conn.lifecycle
        if state.phase is not Phase.OPEN and not (
            # Frames that arrived before the peer left are still delivered.
            state.peer_left and state.receiver is Receiver.OWNER and len(conn.inbox)
        ):
            raise state.error("receive")
        message = await conn.receive()
        if message is None:
            raise WebSocketDisconnect(
                state.close_code or status.WS_1005_NO_STATUS_RECEIVED, state.close_reason
            )
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
        """Send a raw ASGI ``websocket.send`` message after what is queued; waits while
        the outbox is full. Raises :class:`~wsgate.errors.WebSocketDisconnect` if the
        peer has left, :class:`~wsgate.errors.WebSocketStateError` if the connection is
        not open; :class:`ValueError` for any other message type (close with
        :meth:`close`, so the lifecycle knows)."""
        if message.get("type") != "websocket.send":
            raise ValueError(
                f"send() takes 'websocket.send' messages, not {message.get('type')!r}; "
                "close the connection with ws.close(code, reason)"
            )
        await self._conn.send(message)

    async def send_text(self, data: str) -> None:
        """Send a text frame."""
        if not isinstance(data, str):
            raise TypeError(
                f"send_text() takes str, not {type(data).__name__}; use send_bytes() or send_json()"
            )
        await self._conn.send({"type": "websocket.send", "text": data})

    async def send_bytes(self, data: bytes | bytearray | memoryview) -> None:
        """Send a binary frame."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(
                f"send_bytes() takes bytes, not {type(data).__name__}; use send_text() or send_json()"
            )
        await self._conn.send({"type": "websocket.send", "bytes": bytes(data)})

    async def send_json(self, data: Any, mode: Literal["text", "binary"] = "text") -> None:
        """Encode ``data`` as JSON with msgspec and send it as a text (or binary) frame.

        Structs, dataclasses, attrs classes, datetimes, UUIDs, Decimals, enums, sets and
        objects with ``model_dump()`` (Pydantic) are handled.
        """
        payload = _json_encode(data)
        if mode == "text":
            await self._conn.send({"type": "websocket.send", "text": payload.decode()})
        elif mode == "binary":
            await self._conn.send({"type": "websocket.send", "bytes": payload})
        else:
            raise ValueError(f"mode must be 'text' or 'binary', not {mode!r}")

    def send_nowait(self, message: Message) -> bool:
        """Queue a raw ASGI send message without waiting (the fan-out path).

        When the outbox is full the connection's overflow policy decides: drop a frame or
        close this slow consumer. Returns True if the frame was queued.
        """
        conn = self._conn
        if conn.lifecycle.phase is not Phase.OPEN:
            return False
        return conn.offer(message) in (Offer.QUEUED, Offer.REPLACED)

    async def close(self, code: int = status.WS_1000_NORMAL_CLOSURE, reason: str = "") -> None:
        """Close the connection; idempotent.

        After accept, frames already queued are sent first, then the close frame; the
        connection's handlers are then cancelled and ``@on_disconnect`` runs. Before
        accept, the handshake is refused with this close (servers answer HTTP 403).
        ``code`` and ``reason`` are kept on :attr:`close_code` / :attr:`close_reason`.
        """
        await self._conn.close(code, truncate_reason(reason))
