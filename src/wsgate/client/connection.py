"""The client's connection: the handshake, the reader, requests, reconnects.

One background task (the supervisor) owns the WebSocket session: it opens it, reads every
frame (answering requests, feeding subscriptions), and when the connection drops waits
the policy's backoff and opens it again. It runs in a task group entered by ``async with
connect(...)`` and cancelled when the block ends.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar, overload

import anyio
import httpx
import msgspec
import wsproto
import wsproto.events
import wsproto.utilities
from anyio.abc import TaskGroup, TaskStatus
from httpx_ws import AsyncWebSocketSession, WebSocketDisconnect, WebSocketNetworkError

from .. import status
from ..history import Position
from . import _handshake, _protocol
from . import recovery as _recovery
from .errors import ConnectError, ConnectionClosed, ConnectionLost
from .policy import ReconnectPolicy
from .presence import PresenceView
from .recovery import Recovery
from .state import ClientState, StateMachine
from .subscription import Stream, Subscribers, Subscription

__all__ = ["ClientConnection", "ClientState", "ClientStats", "connect"]

logger = logging.getLogger("wsgate.client")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ClientStats:
    """Counters of a :class:`ClientConnection` (a snapshot)."""

    #: Successful handshakes (the first one included).
    connects: int
    #: Pushes dropped because a subscription's buffer was full.
    dropped_pushes: int
    #: Replies that came after their request had timed out (discarded).
    late_replies: int
    #: Frames that were not JSON envelopes, and binary frames (ignored).
    invalid_frames: int


def connect(
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    subprotocols: Sequence[str] | None = None,
    reconnect: bool | ReconnectPolicy = True,
    request_timeout: float = 10.0,
    queue_size: int = 100,
    on_reconnect: Callable[[ClientConnection], Awaitable[object]] | None = None,
    on_state_change: Callable[[ClientState], object] | None = None,
    connect_timeout: float = 10.0,
    ping_interval: float | None = 20.0,
    ping_timeout: float | None = 20.0,
    close_timeout: float = 5.0,
    http_client: httpx.AsyncClient | None = None,
    positions: Mapping[str, Position] | None = None,
) -> ClientConnection:
    """A connection to the wsgate endpoint at ``url`` (``ws://``, ``wss://``; the path and
    query string select the gateway and its parameters), to use as ``async with
    connect(url) as conn:``.

    Entering the block performs the first handshake and raises :class:`ConnectError` if
    it fails (the server cannot be reached, or refused with an HTTP status; wsgate's
    ``{"error": ...}`` body is decoded). Leaving the block closes the connection with 1000
    and cancels the background reader.

    - ``headers`` and ``subprotocols`` are sent with every handshake
      (``conn.subprotocol`` is the one the server accepted).
    - ``reconnect``: ``True`` for the default :class:`ReconnectPolicy` (0.5 s to 20 s,
      full jitter), a policy of your own, or ``False`` to close for good when the
      connection drops.
    - ``request_timeout``: the default timeout of :meth:`ClientConnection.request` (seconds).
    - ``queue_size``: the default buffer of each subscription and stream.
    - ``on_reconnect(conn)``: awaited in the background after every successful
      reconnect (not the first connect), e.g. to join rooms again; its exceptions are
      logged.
    - ``on_state_change(state)``: called on every :class:`ClientState` change.
    - ``ping_interval`` / ``ping_timeout``: keepalive pings (``None`` disables); a ping
      not answered in time counts as a dropped connection.
    - ``http_client``: an ``httpx.AsyncClient`` to use (e.g. with TLS settings); by
      default one is created for the connection.
    - ``positions``: ``{group: wsgate.history.Position}`` to present from the first
      handshake on (e.g. ``conn.positions()`` saved by an earlier run), to recover
      what was broadcast to those groups meanwhile. Without it the client presents
      the positions it saw itself, on every reconnect (see
      :meth:`ClientConnection.on_recover`).

    Raises :class:`ValueError` for a URL that is not ``ws://``/``wss://`` or for
    non-positive sizes and timeouts, :class:`TypeError` for ``positions`` that are not
    ``{str: Position}``.
    """
    if reconnect is True:
        policy: ReconnectPolicy | None = ReconnectPolicy()
    elif reconnect is False:
        policy = None
    elif isinstance(reconnect, ReconnectPolicy):
        policy = reconnect
    else:
        raise TypeError(
            f"connect(reconnect=...): expected True, False or a ReconnectPolicy, got {reconnect!r}"
        )
    return ClientConnection(
        url,
        headers=dict(headers or {}),
        subprotocols=list(subprotocols) if subprotocols else None,
        policy=policy,
        request_timeout=request_timeout,
        queue_size=queue_size,
        on_reconnect=on_reconnect,
        on_state_change=on_state_change,
        connect_timeout=connect_timeout,
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        close_timeout=close_timeout,
        http_client=http_client,
        positions=positions,
    )


class ClientConnection:
    """A client connection to a wsgate endpoint; made by :func:`connect`.

    Requests, events and streams may be used from several tasks at once. While the
    connection is reconnecting, :meth:`request` and :meth:`send_event` wait for it (within
    their timeout).
    """

    def __init__(
        self,
        url: str,
        *,
        headers: dict[str, str],
        subprotocols: list[str] | None,
        policy: ReconnectPolicy | None,
        request_timeout: float,
        queue_size: int,
        on_reconnect: Callable[[ClientConnection], Awaitable[object]] | None,
        on_state_change: Callable[[ClientState], object] | None,
        connect_timeout: float,
        ping_interval: float | None,
        ping_timeout: float | None,
        close_timeout: float,
        http_client: httpx.AsyncClient | None,
        positions: Mapping[str, Position] | None = None,
    ) -> None:
        for name, value in (
            ("request_timeout", request_timeout),
            ("connect_timeout", connect_timeout),
            ("close_timeout", close_timeout),
        ):
            if not value > 0:
                raise ValueError(f"connect({name}=...): expected a positive number, got {value!r}")
        if queue_size < 1:
            raise ValueError(f"connect(queue_size=...): expected >= 1, got {queue_size!r}")
        #: The URL as given.
        self.url = url
        self._http_url = _handshake.http_url(url)
        self._headers = headers
        self._subprotocols = subprotocols
        self.policy = policy
        self.request_timeout = request_timeout
        self.queue_size = queue_size
        self._on_reconnect = on_reconnect
        self._connect_timeout = connect_timeout
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._close_timeout = close_timeout
        self._http_client = http_client

        self._machine = StateMachine(on_state_change)
        self._session: AsyncWebSocketSession | None = None
        self._pending: dict[int, _protocol.Pending] = {}
        self._next_id = 0
        self._subscribers = Subscribers(self._closed_error)
        self._positions = _recovery.Positions(
            _recovery.check_positions(positions), self._spawn_callback
        )
        self._tg: TaskGroup | None = None
        self._supervisor_scope: anyio.CancelScope | None = None
        self._close_request: tuple[int, str] | None = None
        self._stopped = anyio.Event()
        #: The accepted subprotocol of the current (or last) connection.
        self.subprotocol: str | None = None
        #: The close code and reason of the last connection that ended (``None`` while
        #: none has; 1006 when one ended without a close frame).
        self.close_code: int | None = None
        self.close_reason: str = ""
        #: Why the connection is closed for good when a handshake failed (else None).
        self.last_error: ConnectError | None = None
        self._connects = 0
        self._late = 0
        self._invalid = 0
        self._presence: dict[str, PresenceView] = {}

    # -- state -----------------------------------------------------------------------

    @property
    def connection_state(self) -> ClientState:
        """Where the connection is in its lifecycle: a :class:`ClientState`
        (``CONNECTING``, ``OPEN``, ``RECONNECTING``, ``CLOSED``). The name is the one the
        server's :attr:`wsgate.WebSocket.connection_state` has: ``.state`` is, across
        wsgate, the user's data bag (``app.state``, ``ws.state``)."""
        return self._machine.state

    @property
    def state(self) -> ClientState:
        """Deprecated: use :attr:`connection_state` (``.state`` names the user's data bag
        elsewhere in wsgate)."""
        warnings.warn(
            "ClientConnection.state is deprecated; use conn.connection_state",
            DeprecationWarning,
            stacklevel=2,
        )
        return self._machine.state

    def _set_state(self, state: ClientState) -> None:
        self._machine.move(state)

    async def wait_for_state(
        self, *states: ClientState, timeout: float | None = None
    ) -> ClientState:
        """Wait until the connection is in one of ``states`` and return that state.

        Raises :class:`TimeoutError` after ``timeout`` seconds, and
        :class:`ConnectionClosed` if the connection closes for good while ``CLOSED`` is
        not one of ``states``. A state that comes and goes while this task is not
        scheduled may be missed: wait for states that last (``OPEN``, ``RECONNECTING``,
        ``CLOSED``)."""
        if not states:
            raise ValueError("wait_for_state(): name at least one ClientState")
        try:
            with anyio.fail_after(timeout):
                while self._machine.state not in states:
                    if self._machine.state is ClientState.CLOSED:
                        raise self._closed_error()
                    await self._machine.changed()
        except TimeoutError:
            names = ", ".join(s.name for s in states)
            raise TimeoutError(
                f"the connection was not {names} within {timeout} s (it is {self._machine.state.name})"
            ) from None
        return self._machine.state

    # -- recovery --------------------------------------------------------------------

    def positions(self) -> dict[str, Position]:
        """The last position seen in each group with history: a copy, ``{group:
        wsgate.history.Position(epoch, offset)}``. Every frame carrying a ``pos`` moves
        its group's position (before any subscription sees it), and so does every
        ``wsgate.recovery`` frame. Presented in every reconnect's URL (query parameter
        ``wsgate.since``); pass it to ``connect(positions=...)`` to recover across a
        restart of the program."""
        return self._positions.snapshot()

    def on_recover(self, fn: Callable[[Recovery], object]) -> Callable[[], None]:
        """Call ``fn(Recovery(group, recovered, missed))`` for every ``wsgate.recovery``
        frame: after a reconnect, once for each group the client had a position in and
        the server subscribed it to again, after the frames it missed there were
        replayed (``recovered`` True, ``missed`` of them, delivered to the subscriptions
        before) or could not be (``recovered`` False: they are lost).

        ``fn`` is called from the connection's reader and must not block; if it returns
        an awaitable (an ``async def``), that runs in the background. Its exceptions are
        logged. Returns a function that removes ``fn``. The frames are also delivered to
        subscriptions of ``"wsgate.recovery"`` with their whole data.

        With ``connect(positions=...)`` the first handshake recovers too: register
        ``fn`` (and subscriptions) before entering the block, as ``conn =
        connect(url, positions=saved); conn.on_recover(fn); async with conn: ...``, so
        that the replay that follows the handshake is not missed."""
        return self._positions.add(fn)

    def _spawn_callback(self, fn: Callable[[], Any]) -> None:
        if self._tg is not None:
            self._tg.start_soon(fn)

    def statistics(self) -> ClientStats:
        """The connection's counters (a frozen snapshot)."""
        return ClientStats(self._connects, self._subscribers.dropped, self._late, self._invalid)

    # -- the block -------------------------------------------------------------------

    async def __aenter__(self) -> ClientConnection:
        if self._tg is not None:
            raise RuntimeError("a ClientConnection can be entered only once; call connect() again")
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        failure: list[BaseException] = []
        try:
            await self._tg.start(self._supervise, failure)
        except BaseException:
            await self._exit_task_group()
            raise
        if failure:
            await self._exit_task_group()
            raise failure[0]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._exit_task_group()

    async def _exit_task_group(self) -> None:
        # Shielded and bounded (the close handshake has close_timeout): the exception that
        # ended the block, if any, propagates as it is, not wrapped in a group.
        assert self._tg is not None
        self._request_close(status.WS_1000_NORMAL_CLOSURE, "")
        self._tg.cancel_scope.shield = True
        await self._tg.__aexit__(None, None, None)

    def _request_close(self, code: int, reason: str) -> None:
        if self._close_request is None and self._machine.state is not ClientState.CLOSED:
            self._close_request = (code, reason)
        if self._supervisor_scope is not None:
            self._supervisor_scope.cancel()

    async def close(self, code: int = status.WS_1000_NORMAL_CLOSURE, reason: str = "") -> None:
        """Close the connection for good with ``code`` and ``reason`` (idempotent) and
        wait until it is ``CLOSED``. Requests still waiting raise
        :class:`ConnectionClosed`; subscriptions and streams end."""
        if self._tg is None:
            raise RuntimeError("close(): the connection was never entered (use async with)")
        self._request_close(code, reason)
        await self._stopped.wait()

    # -- the supervisor --------------------------------------------------------------

    async def _supervise(
        self, failure: list[BaseException], *, task_status: TaskStatus[None]
    ) -> None:
        first = True
        failed_attempts = 0
        try:
            with anyio.CancelScope() as scope:
                self._supervisor_scope = scope
                if self._close_request is not None:
                    scope.cancel()
                async with self._http() as http:
                    while True:
                        try:
                            code, reason = await self._run_session(http, first, task_status)
                        except ConnectError as exc:
                            if first:
                                failure.append(exc)
                                task_status.started()
                                return
                            failed_attempts += 1
                            logger.info("reconnecting to %s failed: %s", self.url, exc)
                            if (
                                self.policy is None
                                or not self.policy.reconnects_after_status(exc.status)
                                or self.policy.gives_up(failed_attempts)
                            ):
                                self.last_error = exc
                                return
                        else:
                            first = False
                            failed_attempts = 0
                            self._connection_ended(code, reason)
                            if self.policy is None or not self.policy.reconnects_after_close(code):
                                return
                        assert self.policy is not None
                        self._set_state(ClientState.RECONNECTING)
                        await anyio.sleep(self.policy.delay(failed_attempts))
        finally:
            self._supervisor_scope = None
            self._closed_for_good()

    def _http(self) -> Any:
        if self._http_client is not None:
            return _handshake.Borrowed(self._http_client)
        return httpx.AsyncClient(timeout=httpx.Timeout(self._connect_timeout))

    async def _run_session(
        self, http: httpx.AsyncClient, first: bool, task_status: TaskStatus[None]
    ) -> tuple[int | None, str]:
        """One connection: handshake (raises :class:`ConnectError`), then read until it
        ends; returns the close code and reason."""
        headers = _handshake.request_headers(self._headers, self._subprotocols)
        connects = self._connects
        url = self._positions.url(self._http_url)  # the positions seen so far
        try:
            async with http.stream("GET", url, headers=headers) as response:
                if response.status_code != 101:
                    body = await response.aread()
                    raise _handshake.refused(response.status_code, body)
                session = AsyncWebSocketSession(
                    response.extensions["network_stream"],
                    keepalive_ping_interval_seconds=self._ping_interval,
                    keepalive_ping_timeout_seconds=self._ping_timeout,
                    response=response,
                )
                async with session:
                    return await self._serve(session, first, task_status)
        except httpx.HTTPError as exc:
            if self._connects != connects:
                # The handshake had succeeded: the connection broke, it was not refused.
                return status.WS_1006_ABNORMAL_CLOSURE, ""
            raise ConnectError(
                f"cannot connect to {self.url}: {exc or type(exc).__name__}"
            ) from exc

    async def _serve(
        self, session: AsyncWebSocketSession, first: bool, task_status: TaskStatus[None]
    ) -> tuple[int | None, str]:
        self._session = session
        self.subprotocol = session.subprotocol
        self._connects += 1
        try:
            async with anyio.create_task_group() as tg:
                self._set_state(ClientState.OPEN)
                if first:
                    task_status.started()
                elif self._on_reconnect is not None:
                    tg.start_soon(self._run_on_reconnect)
                try:
                    result = await self._read(session)
                except anyio.get_cancelled_exc_class():
                    # The program is closing: say goodbye with its code.
                    code, reason = self._close_request or (status.WS_1000_NORMAL_CLOSURE, "")
                    with anyio.move_on_after(self._close_timeout, shield=True):
                        await session.close(code, reason or None)
                    raise
                tg.cancel_scope.cancel()
        finally:
            self._session = None
        return result

    async def _run_on_reconnect(self) -> None:
        assert self._on_reconnect is not None
        try:
            await self._on_reconnect(self)
        except Exception:
            logger.exception("on_reconnect failed for %s", self.url)

    async def _read(self, session: AsyncWebSocketSession) -> tuple[int | None, str]:
        while True:
            try:
                event = await session.receive()
            except WebSocketDisconnect as exc:
                return exc.code, exc.reason
            except WebSocketNetworkError:
                return status.WS_1006_ABNORMAL_CLOSURE, ""
            if isinstance(event, wsproto.events.TextMessage):
                self._on_text(event.data)
            else:
                self._invalid += 1

    def _on_text(self, text: str) -> None:
        try:
            frame = _protocol.decode_frame(text)
        except (msgspec.DecodeError, msgspec.ValidationError):
            self._invalid += 1
            logger.warning("ignoring a frame that is not a wsgate envelope: %.200r", text)
            return
        if len(frame.pos):
            self._positions.saw(frame.pos)
        if frame.id is not None and frame.id in self._pending:
            self._pending.pop(frame.id).resolve(frame)
            return
        if frame.id is not None and isinstance(frame.id, int) and frame.id <= self._next_id:
            self._late += 1  # the reply to a request that gave up waiting
            return
        if frame.event == _recovery.RECOVERY_EVENT and frame.id is None:
            self._positions.recovered(frame.data)
        if self._presence and frame.event.startswith("presence."):
            data = msgspec.json.decode(frame.data)
            for view in list(self._presence.values()):
                view.apply(frame.event, data)
        self._subscribers.deliver(frame.event, frame.data)

    def _connection_ended(self, code: int | None, reason: str) -> None:
        self.close_code, self.close_reason = code, reason
        pending, self._pending = self._pending, {}
        for p in pending.values():
            p.fail(
                ConnectionLost(
                    f"the connection was lost (code {code}) before {p.event!r} was answered; "
                    "the request is not resent",
                    code,
                    reason,
                )
            )
        self._subscribers.connection_dropped(code, reason)

    def _closed_for_good(self) -> None:
        if self._close_request is not None:
            self.close_code, self.close_reason = self._close_request
        self._set_state(ClientState.CLOSED)
        pending, self._pending = self._pending, {}
        for p in pending.values():
            p.fail(self._closed_error())
        self._subscribers.close()
        self._stopped.set()

    def _closed_error(self) -> ConnectionClosed:
        if self._close_request is not None:
            why = "it was closed by the program"
        elif self.last_error is not None:
            why = f"reconnecting failed: {self.last_error}"
        elif self.policy is None:
            why = f"it ended with code {self.close_code} and reconnect=False"
        elif not self.policy.reconnects_after_close(self.close_code):
            why = f"the server closed it with code {self.close_code}, which ends reconnecting"
        else:
            why = f"it ended with code {self.close_code}"
        return ConnectionClosed(
            f"the connection to {self.url} is closed: {why}", self.close_code, self.close_reason
        )

    # -- sending ---------------------------------------------------------------------

    async def _wait_open(self) -> AsyncWebSocketSession:
        if self._tg is None:
            raise RuntimeError(
                "the connection is not open: use it inside `async with connect(url) as conn:`"
            )
        while True:
            if self._machine.state is ClientState.CLOSED:
                raise self._closed_error()
            if self._machine.state is ClientState.OPEN and self._session is not None:
                return self._session
            await self._machine.changed()

    def _timeout(self, timeout: float | None) -> float:
        if timeout is None:
            return self.request_timeout
        if not timeout > 0:
            raise ValueError(f"timeout must be positive (or math.inf), got {timeout!r}")
        return timeout

    @overload
    async def request(
        self, event: str, data: Any = None, *, timeout: float | None = None, type: None = None
    ) -> Any: ...

    @overload
    async def request(
        self, event: str, data: Any = None, *, timeout: float | None = None, type: type[T]
    ) -> T: ...

    @overload
    async def request(
        self, event: str, data: Any = None, *, timeout: float | None = None, type: Any
    ) -> Any: ...

    async def request(
        self, event: str, data: Any = None, *, timeout: float | None = None, type: Any = None
    ) -> Any:
        """Send ``{"event", "data", "id"}`` and return the reply's ``data``, decoded into
        ``type`` with msgspec when given (plain JSON values otherwise).

        ``timeout`` (default: the connection's ``request_timeout``; ``math.inf`` for none)
        covers waiting for a reconnect, sending and the reply.

        Raises :class:`RequestError` for an error frame (``code``, ``message``,
        ``detail``), :class:`DataValidationError` when the reply does not match
        ``type``, :class:`TimeoutError` when no reply came in time (a late reply is
        discarded), :class:`ConnectionLost` when the connection dropped after the request
        was sent (it is not resent after the reconnect: it may not be idempotent), and
        :class:`ConnectionClosed` when the connection is closed for good.
        """
        limit = self._timeout(timeout)
        self._next_id += 1
        id = self._next_id
        text = _protocol.encode(event, data, id)
        pending = _protocol.Pending(event, anyio.Event())
        try:
            with anyio.fail_after(None if math.isinf(limit) else limit):
                session = await self._wait_open()
                self._pending[id] = pending
                await self._send(session, text, event)
                await pending.done.wait()
        except TimeoutError:
            raise TimeoutError(f"no reply to {event!r} within {limit} s") from None
        finally:
            self._pending.pop(id, None)
        return pending.result(type)

    async def send_event(
        self, event: str, data: Any = None, *, timeout: float | None = None
    ) -> None:
        """Send ``{"event", "data"}`` without an id (no reply is expected; an error the
        handler raises comes back only if the server sends one as a push).

        Waits for the connection while it is reconnecting, for at most ``timeout``
        (default ``request_timeout``). Raises :class:`TimeoutError`,
        :class:`ConnectionLost` if the connection dropped while sending, and
        :class:`ConnectionClosed` when it is closed for good."""
        limit = self._timeout(timeout)
        text = _protocol.encode(event, data)
        try:
            with anyio.fail_after(None if math.isinf(limit) else limit):
                session = await self._wait_open()
                await self._send(session, text, event)
        except TimeoutError:
            raise TimeoutError(f"could not send {event!r} within {limit} s") from None

    async def _send(self, session: AsyncWebSocketSession, text: str, event: str) -> None:
        try:
            await session.send_text(text)
        except (WebSocketNetworkError, wsproto.utilities.LocalProtocolError) as exc:
            raise ConnectionLost(
                f"the connection was lost while sending {event!r}", status.WS_1006_ABNORMAL_CLOSURE
            ) from exc

    # -- receiving -------------------------------------------------------------------

    def presence(self, group: str) -> PresenceView:
        """The entries of presence group ``group``, kept up to date from the server's
        ``presence.state`` and ``presence.diff`` events (the server subscribes this
        connection: ``Presence.subscribe(ws, group)``): ``list()``, and callbacks
        ``on_sync``, ``on_join``, ``on_leave``. The same object for the same group; make
        it before the server sends the state (before connecting, or in the same task
        right after) so that the state is not missed."""
        if not isinstance(group, str) or not group:
            raise ValueError(f"presence(group) takes a non-empty group name, not {group!r}")
        view = self._presence.get(group)
        if view is None:
            view = self._presence[group] = PresenceView(group)
        return view

    @overload
    def events(
        self, *events: str, type: None = None, queue_size: int | None = None
    ) -> Subscription[Any]: ...

    @overload
    def events(
        self, *events: str, type: type[T], queue_size: int | None = None
    ) -> Subscription[T]: ...

    @overload
    def events(
        self, *events: str, type: Any, queue_size: int | None = None
    ) -> Subscription[Any]: ...

    def events(
        self, *events: str, type: Any = None, queue_size: int | None = None
    ) -> Subscription[Any]:
        """Subscribe to the pushes of ``events`` (of every event when none is named): an
        async iterator of :class:`Push` (``push.event``, ``push.data`` decoded into
        ``type`` when given) and an async context manager that unsubscribes.

        It is registered at once and survives reconnects. It buffers at most
        ``queue_size`` (default: the connection's) pushes; when full the oldest is
        dropped and counted in ``dropped``. Replies to requests are never delivered
        here; error frames without an id are, as event ``"error"``.
        """
        return Subscription(self._subscribers, events, type, queue_size or self.queue_size)

    @overload
    def stream(
        self,
        event: str,
        data: Any = None,
        *,
        type: None = None,
        timeout: float | None = None,
        queue_size: int | None = None,
    ) -> Stream[Any]: ...

    @overload
    def stream(
        self,
        event: str,
        data: Any = None,
        *,
        type: type[T],
        timeout: float | None = None,
        queue_size: int | None = None,
    ) -> Stream[T]: ...

    @overload
    def stream(
        self,
        event: str,
        data: Any = None,
        *,
        type: Any,
        timeout: float | None = None,
        queue_size: int | None = None,
    ) -> Stream[Any]: ...

    def stream(
        self,
        event: str,
        data: Any = None,
        *,
        type: Any = None,
        timeout: float | None = None,
        queue_size: int | None = None,
    ) -> Stream[Any]:
        """Start the async-generator handler of ``event`` and iterate over its items
        (each ``data`` decoded into ``type`` when given). See :class:`Stream`: there is
        no end-of-stream frame, a lost connection raises :class:`ConnectionLost`, and two
        concurrent streams of one event cannot be told apart."""
        return Stream(
            self, self._subscribers, event, data, type, timeout, queue_size or self.queue_size
        )
