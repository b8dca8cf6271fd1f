"""The history of a group in Redis/Valkey: a stream and a meta hash per group.

Keys (the group in a hash tag, so one group's keys live in one cluster slot):

- ``{prefix}:{<group>}:meta``, a hash: ``epoch`` (8 random bytes in hex, made when the
  hash is missing: the first publish, the history expired, a broker that restarted
  without persistence) and ``offset`` (the last offset, from 1).
- ``{prefix}:{<group>}:log``, a stream: entry id ``<offset>-0``, field ``f``: the frame
  as sent, with its position. Trimmed to about ``size`` entries (``MAXLEN ~``).

Both expire ``ttl`` seconds after the group's last publish. A publish is one script:
it takes the next offset, appends to the stream and PUBLISHes the frame to the group's
channel, so a frame is never live without being in the history, or the other way round,
and offsets are in publish order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..history import History, Position, new_epoch

if TYPE_CHECKING:
    import coredis

__all__ = ["RedisHistory"]

# KEYS: meta, log. ARGV: channel, size, ttl ms, a new epoch, the payload's header, the
# frame up to its offset. Returns {offset, epoch}.
_PUBLISH = """
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[4]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'offset', 0)
end
local offset = redis.call('HINCRBY', KEYS[1], 'offset', 1)
local frame = ARGV[6] .. offset .. ',"epoch":"' .. epoch .. '"}}'
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], offset .. '-0', 'f', frame)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('PUBLISH', ARGV[1], ARGV[5] .. offset .. '\\n' .. frame)
return {offset, epoch}
"""

# KEYS: meta. ARGV: a new epoch, ttl ms. Returns {epoch, offset}; makes the epoch if the
# group has none (so a position handed out now stays valid until the history is lost).
_POSITION = """
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'offset', 0)
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return {epoch, tonumber(redis.call('HGET', KEYS[1], 'offset'))}
"""

# KEYS: meta, log. ARGV: a new epoch, ttl ms, the client's epoch, the client's offset.
# Returns {epoch, offset, entries or false}: the entries after the offset when the epoch
# is the client's and none is missing.
_SINCE = """
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'offset', 0)
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
local offset = tonumber(redis.call('HGET', KEYS[1], 'offset'))
local since = tonumber(ARGV[4])
if epoch ~= ARGV[3] or since > offset or since < 0 then
  return {epoch, offset, false}
end
if since == offset then
  return {epoch, offset, {}}
end
local entries = redis.call('XRANGE', KEYS[2], (since + 1) .. '-0', '+')
if #entries == 0 or entries[1][1] ~= (since + 1) .. '-0' then
  return {epoch, offset, false}
end
return {epoch, offset, entries}
"""


def _items(result: object) -> list[Any]:
    """A script's array answer as a list."""
    if not isinstance(result, list | tuple):
        raise TypeError(f"unexpected answer from a history script: {result!r}")
    return list(result)


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _offset_of(entry_id: object) -> int:
    return int(_text(entry_id).partition("-")[0])


def _frames(entries: object) -> list[tuple[int, str]]:
    frames: list[tuple[int, str]] = []
    for entry in entries or ():  # type: ignore[attr-defined]
        entry_id, fields = entry[0], entry[1]
        # RESP2 answers a flat [field, value, ...] list; RESP3 may answer a mapping.
        if isinstance(fields, dict):
            value = fields.get(b"f", fields.get("f"))
        else:
            value = fields[1]
        frames.append((_offset_of(entry_id), _text(value)))
    return frames


class RedisHistory:
    """The scripts and key names of groups' histories under ``prefix``."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def keys(self, group: str) -> tuple[str, str]:
        """The meta hash and the stream of ``group``."""
        base = f"{self.prefix}:{{{group}}}"
        return f"{base}:meta", f"{base}:log"

    async def publish(
        self,
        client: coredis.Redis[bytes],
        group: str,
        channel: str,
        head: bytes,
        prefix: str,
        config: History,
    ) -> tuple[int, str]:
        """Append and PUBLISH (see the module); the frame's offset and epoch."""
        meta, log = self.keys(group)
        result = await client.eval(
            _PUBLISH,
            keys=[meta, log],
            args=[channel, config.size, _ms(config.ttl), new_epoch(), head, prefix],
        )
        offset, epoch = _items(result)
        return int(offset), _text(epoch)

    async def position(self, client: coredis.Redis[bytes], group: str, ttl: float) -> Position:
        """The epoch and the last offset of ``group`` (an epoch made now lasts ``ttl``)."""
        meta, _ = self.keys(group)
        result = await client.eval(_POSITION, keys=[meta], args=[new_epoch(), _ms(ttl)])
        epoch, offset = _items(result)
        return Position(_text(epoch), int(offset))

    async def last(
        self, client: coredis.Redis[bytes], group: str, limit: int
    ) -> list[tuple[int, str]]:
        """The last ``limit`` frames of ``group``, oldest first."""
        if limit <= 0:
            return []
        _, log = self.keys(group)
        entries = await client.xrevrange(log, count=limit)
        frames = _frames([(e.identifier, {b"f": e.field_values.get(b"f")}) for e in entries])
        frames.reverse()
        return frames

    async def since(
        self, client: coredis.Redis[bytes], group: str, offset: int, epoch: str, ttl: float
    ) -> tuple[Position, list[tuple[int, str]] | None]:
        """The current position and the frames after ``offset`` in ``epoch``; None
        instead of the frames if some are missing (another epoch, trimmed, expired)."""
        meta, log = self.keys(group)
        result = await client.eval(
            _SINCE, keys=[meta, log], args=[new_epoch(), _ms(ttl), epoch, offset]
        )
        here_epoch, here_offset, entries = _items(result)
        here = Position(_text(here_epoch), int(here_offset))
        if entries is None or entries is False:
            return here, None
        return here, _frames(entries)
