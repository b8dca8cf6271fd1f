"""The server the official Socket.IO and Engine.IO protocol test suites expect.

The suites are ``test-suite/test-suite.js`` in https://github.com/socketio/socket.io-protocol
and https://github.com/socketio/engine.io-protocol (mocha + chai, not published on npm). They
talk to ``http://localhost:3000``: Socket.IO v5 at ``/socket.io`` and plain Engine.IO v4 at
``/engine.io``, both with a 300 ms ping interval, a 200 ms ping timeout and a 1,000,000
byte ``maxPayload``. This app serves both:

- namespace ``/``: on connect, emits ``auth`` with the CONNECT payload (``{}`` without one);
  ``message`` is answered with ``message-back`` and the same arguments;
  ``message-with-ack`` acknowledges with its own arguments; ``emit-with-ack`` sends the
  arguments back as an ``emit-with-ack`` event that asks for an acknowledgement, then emits
  ``emit-with-ack`` again with what the client acknowledged;
- namespace ``/custom``: emits ``auth`` on connect; any other namespace gets
  ``CONNECT_ERROR {"message": "Invalid namespace"}``;
- ``/engine.io``: every message (text or binary) is echoed.

Running the suites against it (outside this repository; they are not vendored here)::

    git clone https://github.com/socketio/socket.io-protocol
    git clone https://github.com/socketio/engine.io-protocol
    (cd socket.io-protocol/test-suite && npm install)    # mocha, chai, chai-string, ws, node-fetch
    (cd engine.io-protocol/test-suite && npm install)

    # from this checkout, one server at a time on port 3000:
    hypercorn --worker-class trio    --bind 127.0.0.1:3000 examples.protocol_suites.app:app
    hypercorn --worker-class asyncio --bind 127.0.0.1:3000 examples.protocol_suites.app:app
    uvicorn --port 3000 examples.protocol_suites.app:app
    python -m examples.protocol_suites          # hypercorn on trio, port 3000

    (cd socket.io-protocol/test-suite && npx mocha --exit test-suite.js)
    (cd engine.io-protocol/test-suite && npx mocha --exit test-suite.js)

or, with both clones in one folder, ``WSGATE_PROTOCOL_SUITES=/that/folder nox -s
protocol_suites`` (all three servers in turn). The results, and what does not pass and
why, are in docs/how-to/socketio.md.

The suites connect to ``localhost``: bind the server where ``localhost`` resolves first
(127.0.0.1 above; Node 18+ may try ``::1`` first, then use ``--bind [::1]:3000`` or set
``NODE_OPTIONS=--dns-result-order=ipv4first``).
"""

from __future__ import annotations

from typing import Any

from wsgate import App
from wsgate.socketio import (
    EngineIOConnection,
    SocketIOConnection,
    engineio_controller,
    on_engineio_message,
    on_socketio_event,
    socketio_controller,
)

#: What the suites assert in the handshake (``pingInterval``, ``pingTimeout``,
#: ``maxPayload``); the connect timeout is short so that a client that never sends a
#: CONNECT is closed well within mocha's 2 s test timeout.
ENGINE = {"ping_interval_ms": 300, "ping_timeout_ms": 200, "max_payload_bytes": 1_000_000}


def _args(value: Any) -> tuple[Any, ...]:
    """An acknowledgement's value (see ``SocketIOConnection.call``) as event arguments."""
    if value is None:
        return ()
    if isinstance(value, tuple):
        return value
    return (value,)


@socketio_controller("/socket.io", namespace="/", connect_timeout_ms=1000, **ENGINE)
class Main:
    """The main namespace."""

    @on_socketio_event("connect")
    async def connect(self, conn: SocketIOConnection) -> None:
        await conn.emit("auth", conn.auth if conn.auth is not None else {})

    @on_socketio_event("message")
    async def message(self, conn: SocketIOConnection, *args: Any) -> None:
        await conn.emit("message-back", *args)

    @on_socketio_event("message-with-ack")
    async def message_with_ack(self, conn: SocketIOConnection, *args: Any) -> tuple[Any, ...]:
        return args

    @on_socketio_event("emit-with-ack")
    async def emit_with_ack(self, conn: SocketIOConnection, *args: Any) -> None:
        answer = await conn.call("emit-with-ack", *args)
        await conn.emit("emit-with-ack", *_args(answer))


@socketio_controller("/socket.io", namespace="/custom", connect_timeout_ms=1000, **ENGINE)
class Custom:
    """The ``/custom`` namespace."""

    @on_socketio_event("connect")
    async def connect(self, conn: SocketIOConnection) -> None:
        await conn.emit("auth", conn.auth if conn.auth is not None else {})


@engineio_controller("/engine.io", **ENGINE)
class Echo:
    """Plain Engine.IO: every message comes back."""

    @on_engineio_message
    async def echo(self, conn: EngineIOConnection, data: str | bytes) -> None:
        await conn.send(data)


app = App(gateways=[Main, Custom, Echo])
