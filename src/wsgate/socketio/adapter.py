"""The Redis Streams adapter: several Socket.IO servers (wsgate or Node) as one cluster.

:class:`RedisStreamsAdapter` is the configuration given to
``@socketio_controller(..., adapter=...)``; the wire format is that of Node's
``@socket.io/redis-streams-adapter`` (0.3, on ``socket.io-adapter``'s ``ClusterAdapter``):

- Lasting messages (broadcasts without acknowledgement, ``SOCKETS_JOIN``,
  ``SOCKETS_LEAVE``, ``DISCONNECT_SOCKETS``) are entries of one stream (``XADD stream
  MAXLEN ~ max_len *``) with the fields ``uid`` (the sending server's namespace
  adapter), ``nsp``, ``type`` (the message type as a decimal string) and ``data``: JSON,
  or base64 of MessagePack when the payload holds binary. Every server reads the stream
  (``XREAD BLOCK ... COUNT read_count``); an entry's id is the offset a client recovers
  from.
- Ephemeral messages (broadcasts with acknowledgement, ``FETCH_SOCKETS``,
  ``SERVER_SIDE_EMIT``) are MessagePack published on ``socket.io#<nsp>#``; responses go
  to the requester's ``socket.io#<nsp>#<uid>#``. The number of servers of a namespace is
  the number of subscribers of its public channel (``PUBSUB NUMSUB``), so a server that
  dies stops being waited for as soon as its connection drops.
- A session kept for recovery is ``SET <session_key_prefix><pid> <base64 MessagePack of
  {sid, pid, rooms, data}> PX <recovery_ms>``, read back (and deleted) when the client
  reconnects to any server, with the packets it missed read from the stream after its
  offset.
"""

from __future__ import annotations

import base64
import contextlib
import enum
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import KW_ONLY, dataclass
from typing import TYPE_CHECKING, Any

import anyio
import msgspec

if TYPE_CHECKING:
    import coredis
    from anyio.abc import TaskGroup

__all__ = ["MessageType", "RedisStreamsAdapter"]

logger = logging.getLogger("wsgate.socketio")

_msgpack_encode = msgspec.msgpack.Encoder().encode
_msgpack_decode = msgspec.msgpack.Decoder().decode
_json_encode = msgspec.json.Encoder().encode
_json_decode = msgspec.json.Decoder().decode


class MessageType(enum.IntEnum):
    """The cluster message types of ``socket.io-adapter``."""

    INITIAL_HEARTBEAT = 1
    HEARTBEAT = 2
    BROADCAST = 3
    SOCKETS_JOIN = 4
    SOCKETS_LEAVE = 5
    DISCONNECT_SOCKETS = 6
    FETCH_SOCKETS = 7
    FETCH_SOCKETS_RESPONSE = 8
    SERVER_SIDE_EMIT = 9
    SERVER_SIDE_EMIT_RESPONSE = 10
    BROADCAST_CLIENT_COUNT = 11
    BROADCAST_ACK = 12
    ADAPTER_CLOSE = 13


_MAY_CONTAIN_BINARY = frozenset(
    {
        MessageType.BROADCAST,
        MessageType.FETCH_SOCKETS_RESPONSE,
        MessageType.SERVER_SIDE_EMIT,
        MessageType.SERVER_SIDE_EMIT_RESPONSE,
        MessageType.BROADCAST_ACK,
    }
)


@dataclass(frozen=True, slots=True)
class RedisStreamsAdapter:
    """Join the Socket.IO servers (wsgate or Node with ``@socket.io/redis-streams-adapter``)
    that use the same Redis/Valkey stream into one cluster: rooms, broadcasts (with
    ``skip``), acknowledgements, the cluster operations of
    :class:`~wsgate.socketio.SocketIOServer` and connection state recovery span them all.

    ::

        @socketio_controller("/socket.io", adapter=RedisStreamsAdapter("redis://valkey:6379"))
        class Chat: ...

    :param url: The Redis/Valkey URL; None uses the App's broker (``App(broker=...)``,
        ``WSGATE_BROKER_URL``, the Valkey of ``wsgate run --workers N``). With a broker
        and no adapter given, Socket.IO uses ``RedisStreamsAdapter()`` on it.
    :param stream: The stream's key (Node's ``streamName``).
    :param max_len: The stream is trimmed to about this many entries (``MAXLEN ~``).
    :param read_count: Entries fetched per ``XREAD``.
    :param session_key_prefix: The prefix of the keys of sessions kept for recovery.
    :param heartbeat_interval_ms: Node's option of the same name. The 0.3 adapter counts
        servers by their pub/sub subscription instead of heartbeats; kept for the
        configuration to read the same on both sides.
    :param heartbeat_timeout_ms: As ``heartbeat_interval_ms``; also the longest wait for
        the other servers' answers to a :meth:`~wsgate.socketio.SocketIOServer.fetch_sockets`.
    """

    url: str | None = None
    _: KW_ONLY
    stream: str = "socket.io"
    max_len: int = 10_000
    read_count: int = 100
    session_key_prefix: str = "sio:session:"
    heartbeat_interval_ms: int = 5_000
    heartbeat_timeout_ms: int = 10_000
    #: Node's ``channelPrefix``: the pub/sub channels are ``<prefix>#<nsp>#[<uid>#]``.
    channel_prefix: str = "socket.io"

    def __post_init__(self) -> None:
        if self.url is not None and not isinstance(self.url, str):
            raise TypeError("RedisStreamsAdapter(url) takes a redis:// URL or None")
        for name in ("max_len", "read_count", "heartbeat_interval_ms", "heartbeat_timeout_ms"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"RedisStreamsAdapter({name}=...) must be an int >= 1")
        for name in ("stream", "session_key_prefix", "channel_prefix"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"RedisStreamsAdapter({name}=...) must be a non-empty str")


class ClusterUnavailableError(Exception):
    """Redis could not be reached to send a message to the other servers."""


# -- the wire --------------------------------------------------------------------------------


def new_uid() -> str:
    """A server's id in the cluster (8 random bytes in hex, as Node's ``randomId``)."""
    return secrets.token_hex(8)


def has_binary(value: Any) -> bool:
    """Whether ``value`` holds bytes anywhere (Node's ``hasBinary``)."""
    if isinstance(value, bytes | bytearray | memoryview):
        return True
    if isinstance(value, list | tuple):
        return any(has_binary(v) for v in value)
    if isinstance(value, dict):
        return any(has_binary(v) for v in value.values())
    return False


@dataclass(slots=True)
class ClusterMessage:
    """One message between the servers of a namespace."""

    type: int
    uid: str
    nsp: str
    data: Any = None


def encode_entry(message: ClusterMessage) -> dict[str, str]:
    """The stream entry's fields for ``message`` (Node's ``RedisStreamsAdapter.encode``)."""
    fields = {"uid": message.uid, "nsp": message.nsp, "type": str(int(message.type))}
    data = message.data
    if data:
        if message.type in _MAY_CONTAIN_BINARY and has_binary(data):
            fields["data"] = base64.b64encode(_msgpack_encode(data)).decode("ascii")
        else:
            fields["data"] = _json_encode(data).decode()
    return fields


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def decode_entry(fields: dict[Any, Any]) -> ClusterMessage | None:
    """The message of a stream entry (None: not a message of an adapter)."""
    values = {_text(k): _text(v) for k, v in fields.items()}
    nsp = values.get("nsp")
    if not nsp:
        return None
    raw = values.get("data")
    data: Any = None
    if raw:
        data = _json_decode(raw) if raw.startswith("{") else _msgpack_decode(base64.b64decode(raw))
    return ClusterMessage(int(values.get("type", "0")), values.get("uid", ""), nsp, data)


def encode_pubsub(message: ClusterMessage) -> bytes:
    """An ephemeral message or a response as published (MessagePack of the whole)."""
    out: dict[str, Any] = {"type": int(message.type)}
    if message.data is not None:
        out["data"] = message.data
    out["uid"] = message.uid
    out["nsp"] = message.nsp
    return _msgpack_encode(out)


def decode_pubsub(payload: bytes) -> ClusterMessage | None:
    """The message of a pub/sub payload (None: not one)."""
    value = _msgpack_decode(payload)
    if not isinstance(value, dict) or not isinstance(value.get("nsp"), str):
        return None
    return ClusterMessage(
        int(value.get("type", 0)), str(value.get("uid", "")), value["nsp"], value.get("data")
    )


def encode_session(session: dict[str, Any]) -> str:
    """A session as kept for recovery: base64 of its MessagePack."""
    return base64.b64encode(_msgpack_encode(session)).decode("ascii")


def decode_session(raw: bytes | str) -> dict[str, Any] | None:
    value = _msgpack_decode(base64.b64decode(raw))
    return value if isinstance(value, dict) else None


def next_offset(offset: str) -> str:
    """The smallest stream id after ``offset`` (an exclusive XRANGE start)."""
    ms, _, seq = offset.partition("-")
    return f"{ms}-{int(seq) + 1}"


def valid_offset(offset: Any) -> bool:
    if not isinstance(offset, str):
        return False
    ms, sep, seq = offset.partition("-")
    return bool(sep) and ms.isdigit() and seq.isdigit()


# -- the link to Redis -----------------------------------------------------------------------

OnMessage = Callable[[ClusterMessage, str | None], Awaitable[None]]


class StreamsLink:
    """One App's connection to the stream and channels of one adapter configuration.

    ``handlers`` maps a namespace to the coroutine that handles its messages (with the
    stream entry's id, None for pub/sub); ``uids`` maps it to its adapter uid.
    """

    def __init__(self, config: RedisStreamsAdapter, url: str) -> None:
        self.config = config
        self.url = url
        self.handlers: dict[str, OnMessage] = {}
        self.uids: dict[str, str] = {}
        self._client: coredis.Redis[bytes] | None = None
        self._stack: AsyncExitStack | None = None
        self._tg: TaskGroup | None = None

    def add_namespace(self, nsp: str, handler: OnMessage) -> str:
        """Take part in the cluster for ``nsp``; its adapter uid."""
        if nsp in self.handlers:
            from ..errors import ConfigurationError

            raise ConfigurationError(
                f"two Socket.IO paths serve namespace {nsp!r} with the same adapter; give "
                "one of them a RedisStreamsAdapter(stream=...) of its own"
            )
        uid = new_uid()
        self.handlers[nsp] = handler
        self.uids[nsp] = uid
        return uid

    def public_channel(self, nsp: str) -> str:
        return f"{self.config.channel_prefix}#{nsp}#"

    def private_channel(self, nsp: str, uid: str) -> str:
        return f"{self.config.channel_prefix}#{nsp}#{uid}#"

    @property
    def client(self) -> coredis.Redis[bytes]:
        if self._client is None:
            raise RuntimeError("the Socket.IO adapter is not running (outside the App's lifespan)")
        return self._client

    async def start(self) -> None:
        """Connect, subscribe to the namespaces' channels and start reading the stream
        from its current end."""
        from ..broadcast._redis_client import open_client

        stack = AsyncExitStack()
        try:
            client = open_client(self.url, connect_timeout=5.0, command_timeout=5.0)
            await stack.enter_async_context(client)
            reader = open_client(self.url, connect_timeout=5.0, command_timeout=15.0)
            await stack.enter_async_context(reader)
            self._client = client
            last = await client.xrevrange(self.config.stream, "+", "-", count=1)
            offset = _text(last[0].identifier) if last else "0-0"
            tg = await stack.enter_async_context(anyio.create_task_group())
            stack.callback(tg.cancel_scope.cancel)
            self._tg = tg
            subscribed = anyio.Event()
            tg.start_soon(self._pubsub_loop, client, subscribed)
            with anyio.fail_after(5.0):
                await subscribed.wait()
            tg.start_soon(self._read_loop, reader, offset)
        except BaseException as exc:
            self._client = None
            await stack.aclose()
            from ..broadcast._redis_client import REDIS_ERRORS, redact

            if isinstance(exc, REDIS_ERRORS):
                raise ClusterUnavailableError(
                    f"the Socket.IO adapter could not reach Redis at {redact(self.url)}: "
                    f"{exc!r}; start Redis/Valkey there, or give RedisStreamsAdapter(url) "
                    "or the App's broker the right URL"
                ) from exc
            raise
        self._stack = stack

    async def stop(self) -> None:
        stack, self._stack = self._stack, None
        self._client = None
        self._tg = None
        if stack is not None:
            await stack.aclose()

    def spawn(self, work: Callable[[], Awaitable[Any]]) -> None:
        """Run ``work`` in the link's task group (an answer to another server)."""
        tg = self._tg
        if tg is not None:
            tg.start_soon(_guarded, work)

    # -- loops ---------------------------------------------------------------------------

    async def _pubsub_loop(self, client: coredis.Redis[bytes], subscribed: anyio.Event) -> None:
        from coredis.patterns.pubsub import PubSub

        channels = [self.public_channel(n) for n in self.handlers]
        channels += [self.private_channel(n, u) for n, u in self.uids.items()]
        attempt = 0
        while True:
            try:
                pubsub: PubSub[bytes] = PubSub(
                    client.connection_pool,
                    ignore_subscribe_messages=True,
                    retry_policy=None,
                    subscription_timeout=5.0,
                )
                async with pubsub:
                    await pubsub.subscribe(*channels)
                    subscribed.set()
                    attempt = 0
                    while True:
                        message = await pubsub.get_message()
                        if message is None or message["type"] != "message":
                            continue
                        data = message["data"]
                        if isinstance(data, bytes):
                            await self._dispatch_pubsub(data)
            except Exception as exc:
                from ..broadcast._redis_link import reconnect_delay

                logger.warning("Socket.IO adapter: pub/sub connection lost: %r", _leaf(exc))
                await anyio.sleep(reconnect_delay(attempt, 2.0))
                attempt += 1

    async def _dispatch_pubsub(self, payload: bytes) -> None:
        try:
            message = decode_pubsub(payload)
        except (msgspec.DecodeError, ValueError, TypeError):
            logger.debug("Socket.IO adapter: ignored a malformed pub/sub message")
            return
        if message is None:
            return
        handler = self.handlers.get(message.nsp)
        if handler is not None and message.uid != self.uids.get(message.nsp):
            try:
                await handler(message, None)
            except ClusterUnavailableError as exc:
                logger.warning("%s", exc)
            except Exception:
                logger.exception("Socket.IO adapter: handling a %s failed", message.type)

    async def _read_loop(self, reader: coredis.Redis[bytes], offset: str) -> None:
        from ..broadcast._redis_link import reconnect_delay

        stream = self.config.stream
        attempt = 0
        while True:
            try:
                result = await reader.xread(
                    {stream: offset}, count=self.config.read_count, block=5000
                )
                attempt = 0
            except Exception as exc:
                logger.warning("Socket.IO adapter: reading the stream failed: %r", _leaf(exc))
                await anyio.sleep(reconnect_delay(attempt, 2.0))
                attempt += 1
                continue
            if not result:
                continue
            for entries in result.values():
                for entry in entries:
                    entry_id = _text(entry.identifier)
                    offset = entry_id
                    try:
                        message = decode_entry(dict(entry.field_values))
                    except (msgspec.DecodeError, ValueError, TypeError):
                        logger.debug("Socket.IO adapter: ignored malformed entry %s", entry_id)
                        continue
                    if message is None:
                        continue
                    handler = self.handlers.get(message.nsp)
                    if handler is None or message.uid == self.uids.get(message.nsp):
                        continue
                    try:
                        await handler(message, entry_id)
                    except ClusterUnavailableError as exc:
                        logger.warning("%s", exc)
                    except Exception:
                        logger.exception("Socket.IO adapter: handling entry %s failed", entry_id)

    # -- commands ------------------------------------------------------------------------

    @contextlib.contextmanager
    def _redis(self, what: str) -> Iterator[None]:
        """Redis's errors as :class:`ClusterUnavailableError` saying what failed."""
        from ..broadcast._redis_client import REDIS_ERRORS, redact

        try:
            yield
        except REDIS_ERRORS as exc:
            raise ClusterUnavailableError(
                f"Socket.IO adapter: could not {what} at {redact(self.url)}: {_leaf(exc)!r}"
            ) from exc

    async def add(self, message: ClusterMessage) -> str:
        """XADD ``message``; its entry id. Raises :class:`ClusterUnavailableError` when
        Redis cannot be reached."""
        from coredis.tokens import PureToken

        fields = encode_entry(message)
        with self._redis(f"add to the stream {self.config.stream!r}"):
            entry_id = await self.client.xadd(
                self.config.stream,
                fields,
                identifier="*",
                trim_strategy=PureToken.MAXLEN,
                trim_operator=PureToken.APPROXIMATELY,
                threshold=self.config.max_len,
            )
        return _text(entry_id)

    async def publish(self, message: ClusterMessage) -> None:
        """PUBLISH a request to the namespace's servers."""
        with self._redis("publish to the other servers"):
            await self.client.publish(self.public_channel(message.nsp), encode_pubsub(message))

    async def respond(self, requester: str, message: ClusterMessage) -> None:
        channel = self.private_channel(message.nsp, requester)
        with self._redis("answer another server"):
            await self.client.publish(channel, encode_pubsub(message))

    async def server_count(self, nsp: str) -> int:
        """The servers of ``nsp`` in the cluster, this one included."""
        channel = self.public_channel(nsp)
        with self._redis("count the servers"):
            counts = await self.client.pubsub_numsub(channel)
        for key, value in counts.items():
            if _text(key) == channel:
                return int(value)
        return 0

    async def persist_session(self, pid: str, session: dict[str, Any], ttl_ms: int) -> None:
        key = self.config.session_key_prefix + pid
        with self._redis("keep a session for recovery"):
            await self.client.set(key, encode_session(session), px=ttl_ms)

    async def restore_session(
        self, nsp: str, pid: str, offset: str
    ) -> tuple[dict[str, Any], list[tuple[str, ClusterMessage]]] | None:
        """The session kept for ``pid`` (taken: deleted) and the stream's entries of
        ``nsp`` after ``offset``; None when the session expired or the offset is gone."""
        if not valid_offset(offset):
            return None
        with self._redis("restore a session"):
            return await self._restore_session(nsp, pid, offset)

    async def _restore_session(
        self, nsp: str, pid: str, offset: str
    ) -> tuple[dict[str, Any], list[tuple[str, ClusterMessage]]] | None:
        client = self.client
        raw = await client.getdel(self.config.session_key_prefix + pid)
        there = await client.xrange(self.config.stream, offset, offset)
        if not raw or not there:
            return None
        session = decode_session(raw)
        if session is None:
            return None
        entries: list[tuple[str, ClusterMessage]] = []
        for _ in range(100):  # as Node: a bound on a stream that grows while it is read
            batch = await client.xrange(self.config.stream, next_offset(offset), "+")
            if not batch:
                break
            for entry in batch:
                offset = _text(entry.identifier)
                message = decode_entry(dict(entry.field_values))
                if message is not None and message.nsp == nsp:
                    entries.append((offset, message))
        return session, entries


def _leaf(exc: BaseException) -> BaseException:
    """The first exception inside (nested) exception groups, for messages."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


async def _guarded(work: Callable[[], Awaitable[Any]]) -> None:
    try:
        await work()
    except ClusterUnavailableError as exc:
        logger.warning("%s", exc)
    except Exception:
        logger.exception("Socket.IO adapter: answering another server failed")
