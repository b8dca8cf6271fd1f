"""The Origin check that stops cross-site WebSocket hijacking, without I/O.

Browsers send the ``Origin`` of the page that opens a WebSocket, and send the site's
cookies with the handshake whatever that page is. So unless the server checks ``Origin``,
any page on any site can open an authenticated connection in its visitor's name.

:class:`OriginPolicy` is built once from ``App(allowed_origins=...)``:

- ``None`` (the default): same origin. The ``Origin``'s host must equal the ``Host``
  header's host (case-insensitively) and its port (explicit, or 80 for ``http``, 443 for
  ``https``) the ``Host`` header's port; a ``Host`` without a port matches port 80 or
  443, because behind a TLS-terminating proxy the scheme the app sees is not the one
  the browser used. ``X-Forwarded-Host`` is not read unless ``trust_forwarded_host``.
- a list of origins: ``"https://app.example.com"`` (scheme, host, optional port;
  default ports normalised, compared case-insensitively) or ``"https://*.example.com"``
  (one or more subdomain labels of ``example.com``, not ``example.com`` itself).
- ``"*"``: every origin (no protection; only for apps that do not authenticate with
  cookies or other ambient credentials).

A handshake without an ``Origin`` header (a non-browser client) is always allowed: only
browsers attach ambient credentials, and they always send ``Origin``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .errors import ConfigurationError

__all__ = ["OriginPolicy"]

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*$")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_HOW = (
    'write scheme://host[:port] with no path and no trailing slash, e.g. '
    '"https://app.example.com", "http://localhost:8000" or "https://*.example.com" '
    '(any subdomain of example.com); or allowed_origins="*" to allow every origin'
)


@dataclass(frozen=True, slots=True)
class _Origin:
    scheme: str
    host: str  # lowercased; for a pattern, the suffix after "*."
    port: int | None
    wildcard: bool = False


def _split_hostport(text: str) -> tuple[str, int | None] | None:
    """``host[:port]`` (IPv6 in brackets) -> (lowercased host, port or None)."""
    text = text.strip().lower()
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return None
        host, rest = text[: end + 1], text[end + 1 :]
        if rest and not rest.startswith(":"):
            return None
        port_text = rest[1:] if rest else ""
    else:
        host, sep, port_text = text.partition(":")
        if sep and not port_text:
            return None
    if not host:
        return None
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            return None
        return host, int(port_text)
    return host, None


def _parse(text: str) -> _Origin | None:
    """An origin as browsers send it, or an allowed-origin pattern; None if malformed."""
    scheme, sep, rest = text.strip().lower().partition("://")
    if not sep or not _SCHEME.match(scheme) or not rest or any(c in rest for c in "/?#@ \t"):
        return None
    hostport = _split_hostport(rest)
    if hostport is None:
        return None
    host, port = hostport
    if port is None:
        port = _DEFAULT_PORTS.get(scheme)
    wildcard = host.startswith("*.")
    if wildcard:
        host = host[2:]
    if "*" in host:
        return None
    if not host.startswith("["):
        labels = host.split(".")
        if not all(_LABEL.match(label) for label in labels):
            return None
        if wildcard and len(labels) < 2:
            return None  # "*.com" would allow every .com site
    elif wildcard:
        return None
    return _Origin(scheme, host, port, wildcard)


class OriginPolicy:
    """Which ``Origin`` headers a handshake may carry; see the module docstring.

    Raises :class:`~wsgate.errors.ConfigurationError` for a malformed entry, saying how
    to write it.
    """

    __slots__ = ("_exact", "_patterns", "allow_all", "trust_forwarded_host")

    def __init__(
        self, allowed: str | Iterable[str] | None = None, *, trust_forwarded_host: bool = False
    ) -> None:
        #: ``allowed_origins="*"``: no check at all.
        self.allow_all = allowed == "*"
        #: Compare with ``X-Forwarded-Host`` (set by a trusted proxy) instead of ``Host``.
        self.trust_forwarded_host = trust_forwarded_host
        self._exact: frozenset[tuple[str, str, int | None]] | None = None
        self._patterns: tuple[_Origin, ...] = ()
        if allowed is None or self.allow_all:
            return
        if isinstance(allowed, str):
            raise ConfigurationError(
                f"App(allowed_origins={allowed!r}): give a list of origins, e.g. "
                f'allowed_origins=["{allowed}"], or "*" to allow every origin'
            )
        exact: set[tuple[str, str, int | None]] = set()
        patterns: list[_Origin] = []
        for entry in allowed:
            parsed = _parse(entry) if isinstance(entry, str) else None
            if parsed is None or entry.strip() == "*":
                raise ConfigurationError(
                    f"App(allowed_origins=[...]): {entry!r} is not an origin; {_HOW}"
                )
            if parsed.wildcard:
                patterns.append(parsed)
            else:
                exact.add((parsed.scheme, parsed.host, parsed.port))
        self._exact = frozenset(exact)
        self._patterns = tuple(patterns)

    def allows(self, origin: str | None, headers: Mapping[str, str]) -> bool:
        """True if a handshake with this ``Origin`` header (None: none sent) may go on.
        ``headers`` are the request's (case-insensitive: ``Host``,
        ``X-Forwarded-Host``)."""
        if origin is None or self.allow_all:
            return True
        parsed = _parse(origin)
        if parsed is None or parsed.wildcard:
            return False  # "null" (sandboxed frames, file://) and garbage
        if self._exact is None:
            return self._same_origin(parsed, headers)
        if (parsed.scheme, parsed.host, parsed.port) in self._exact:
            return True
        for p in self._patterns:
            if (
                p.scheme == parsed.scheme
                and p.port == parsed.port
                and parsed.host.endswith("." + p.host)
            ):
                return True
        return False

    def _same_origin(self, origin: _Origin, headers: Mapping[str, str]) -> bool:
        host_header: str | None = None
        if self.trust_forwarded_host:
            forwarded = headers.get("x-forwarded-host")
            if forwarded:
                host_header = forwarded.split(",")[0]
        if host_header is None:
            host_header = headers.get("host")
        if not host_header:
            return False
        hostport = _split_hostport(host_header)
        if hostport is None:
            return False
        host, port = hostport
        if host != origin.host:
            return False
        if port is None:
            return origin.port in (80, 443)
        return port == origin.port
