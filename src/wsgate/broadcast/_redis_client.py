"""The coredis client as the Redis broadcast modules use it: the import (with the hint to
install the extra), how the client is opened, the errors a Redis call can raise, and the
URL as logs and errors show it (without the password)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import anyio

try:
    import coredis
    from coredis.exceptions import RedisError
    from coredis.retry import NoRetryPolicy
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "wsgate.broadcast.redis needs coredis>=6: pip install 'wsgate[redis]'"
    ) from exc

__all__ = ["REDIS_ERRORS", "open_client", "redact"]

#: What a command to Redis raises when Redis is unreachable, slow or refuses it.
REDIS_ERRORS = (
    RedisError,
    TimeoutError,
    OSError,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.EndOfStream,
)


def open_client(
    url: str, *, connect_timeout: float, command_timeout: float
) -> coredis.Redis[bytes]:
    """A client for ``url`` (not connected yet: enter it as an async context manager)."""
    client: coredis.Redis[bytes] = coredis.Redis.from_url(
        url,
        decode_responses=False,
        # No retries: a PUBLISH retried after a timeout could be delivered twice.
        retry_policy=NoRetryPolicy(),
        connect_timeout=connect_timeout,
        stream_timeout=command_timeout,
    )
    return client


def redact(url: str) -> str:
    """``url`` with its password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
