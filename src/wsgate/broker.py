"""The App's broker: where its broadcast groups, history and presence meet across
processes.

``App(broker=None)`` reads ``WSGATE_BROKER_URL``; without it everything stays in the
process (``memory://``). A Redis/Valkey URL (``redis://``, ``rediss://``,
``unix:///path/to/socket``) makes the App's default :class:`~wsgate.BroadcastGroup`,
every ``BroadcastGroup`` subclass registered as a provider without a URL of its own, and
:class:`~wsgate.Presence` span every worker that uses the same server::

    app = App(gateways=[ChatGateway], broker="redis://localhost:6379")

``wsgate run --workers N`` starts an embedded Valkey and sets ``WSGATE_BROKER_URL`` for
its workers, so nothing needs to be set up.

A provider takes part by implementing :class:`UsesBroker`: the App calls
``use_broker(url)`` on every provider instance that has the method, once, before the
lifespan starts; a provider that was given a URL of its own keeps it.
"""

from __future__ import annotations

import os
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit

from .errors import ConfigurationError

__all__ = ["BROKER_ENV", "MEMORY", "UsesBroker", "is_memory", "resolve_broker"]

#: The environment variable ``App(broker=None)`` reads.
BROKER_ENV = "WSGATE_BROKER_URL"
#: The in-process broker: nothing leaves the process.
MEMORY = "memory://"

_SCHEMES = ("memory", "redis", "rediss", "unix")


@runtime_checkable
class UsesBroker(Protocol):
    """A provider that meets other processes through the App's broker."""

    def use_broker(self, url: str) -> None:
        """Use ``url`` (already validated; never ``memory://``) unless this provider
        was given a URL of its own."""
        ...


def resolve_broker(url: str | None) -> str:
    """The broker URL an ``App(broker=url)`` uses: ``url``, else ``WSGATE_BROKER_URL``,
    else ``memory://``. Raises :class:`~wsgate.errors.ConfigurationError` for a URL
    wsgate cannot use."""
    source = "App(broker=...)"
    if url is None:
        url = os.environ.get(BROKER_ENV, "").strip() or MEMORY
        source = BROKER_ENV
    if not isinstance(url, str):
        raise ConfigurationError(f"{source} takes a URL string, not {type(url).__name__}")
    scheme = urlsplit(url).scheme.lower()
    if scheme not in _SCHEMES:
        raise ConfigurationError(
            f"{source}={url!r}: the broker URL must start with memory://, redis://, "
            "rediss:// or unix:///path/to/socket"
        )
    if scheme == "unix" and not urlsplit(url).path:
        raise ConfigurationError(f"{source}={url!r}: a unix:// URL needs the socket's path")
    return MEMORY if scheme == "memory" else url


def is_memory(url: str) -> bool:
    """Whether ``url`` keeps everything in the process."""
    return urlsplit(url).scheme.lower() == "memory"
