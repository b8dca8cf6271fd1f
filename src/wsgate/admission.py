"""What a handshake must pass: before any gateway code runs, the Origin check and the
connection limits (``App(allowed_origins=, max_connections=,
max_connections_per_client=)``); then, before ``@on_connect``, the guards and the
per-connection dependencies (:func:`authorize`).

:meth:`Admission.admit` does no I/O: it returns the ASGI messages that refuse the
handshake (an HTTP response through the denial extension, else a close before accept)
or None, and the App sends them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from . import status
from .asgi import Message, Scope, denial_messages, strip_root_path
from .datastructures import Headers
from .encoding import encode
from .errors import WebSocketError, WebSocketForbiddenError
from .origin import OriginPolicy
from .plan import GatewayPlan
from .state import Phase
from .stats import Stats

if TYPE_CHECKING:
    from .dependencies import ConnectionDependencies
    from .session import Session

__all__ = ["Admission", "authorize", "refusal_error"]

_JSON_HEADERS = [(b"content-type", b"application/json")]
#: Origin decisions remembered (the cache is emptied when full).
_DECISIONS = 1024


def refusal_error(
    code: str, message: str, *, http_status: int, close_code: int, detail: Any = None
) -> WebSocketError:
    """A :class:`~wsgate.errors.WebSocketError` that refuses a handshake with
    ``http_status`` (denial extension) or ``close_code``."""
    err = WebSocketError(message, close_code=close_code, detail=detail)
    err.code = code
    err.http_status = http_status
    return err


def refusal_messages(scope: Scope, err: WebSocketError) -> list[Message]:
    """The messages that refuse a handshake because of ``err``: HTTP ``err.http_status``
    with a JSON body ``{"error": {"code", "message", "detail"}}`` (denial extension),
    else a close before accept with its close code."""
    body = encode({"error": {"code": err.code, "message": err.message, "detail": err.detail}})
    return denial_messages(
        scope,
        err.http_status,
        body,
        _JSON_HEADERS,
        close_code=err.close_code or err.default_close_code,
    )


class Admission:
    """The Origin policy and the connection counts of one App."""

    __slots__ = (
        "_decisions",
        "_per_client",
        "max_connections",
        "max_per_client",
        "open",
        "origin",
        "own_origin_policy",
        "stats",
    )

    def __init__(
        self,
        *,
        allowed_origins: str | Iterable[str] | None,
        trust_forwarded_host: bool,
        max_connections: int | None,
        max_connections_per_client: int | None,
        stats: Stats,
        own_origin_policy: Iterable[str] = (),
    ) -> None:
        #: Raises ConfigurationError for a malformed origin.
        self.origin = OriginPolicy(allowed_origins, trust_forwarded_host=trust_forwarded_host)
        #: Path prefixes whose endpoint checks Origin itself (a Socket.IO controller with
        #: cors_allowed_origins): the App's policy does not apply there.
        self.own_origin_policy = tuple(p.rstrip("/") for p in own_origin_policy)
        self.max_connections = max_connections
        self.max_per_client = max_connections_per_client
        self.stats = stats
        #: Connections admitted and not released yet (handshakes included).
        self.open = 0
        self._per_client: dict[str, int] = {}
        self._decisions: dict[tuple[bytes, bytes | None, bytes | None], bool] = {}

    def _checks_own_origin(self, scope: Scope) -> bool:
        if not self.own_origin_policy:
            return False
        path = strip_root_path(scope)
        return any(path == p or path.startswith(p + "/") for p in self.own_origin_policy)

    def admit(self, scope: Scope) -> list[Message] | None:
        """None if the handshake may go on (the caller must :meth:`release` it when the
        connection ends), else the messages that refuse it (counted in the stats)."""
        origin_policy = self.origin
        if (
            not origin_policy.allow_all
            and not self._origin_allowed(scope)
            and not self._checks_own_origin(scope)
        ):
            origin = Headers.from_scope(scope).get("origin")
            self.stats.refused_origin += 1
            return refusal_messages(
                scope,
                refusal_error(
                    "origin_not_allowed",
                    f"origin {origin!r} may not open this WebSocket",
                    http_status=403,
                    close_code=status.WS_1008_POLICY_VIOLATION,
                    detail={"origin": origin},
                ),
            )
        refused = self.count(scope)
        if refused is not None:
            return refusal_messages(scope, refused)
        return None

    def count(self, scope: Scope) -> WebSocketError | None:
        """Count the connection of ``scope`` against ``max_connections`` and
        ``max_connections_per_client`` (no Origin check): None if it is counted (the
        caller must :meth:`release` it when the connection ends), else the error that
        refuses it (HTTP 503, counted in the stats). :meth:`admit` uses it for
        WebSockets; the Engine.IO endpoint for long-polling sessions."""
        limit = self.max_connections
        if limit is not None and self.open >= limit:
            self.stats.refused_limit += 1
            return refusal_error(
                "too_many_connections",
                "the server has too many connections; try again later",
                http_status=503,
                close_code=status.WS_1013_TRY_AGAIN_LATER,
            )
        if self.max_per_client is not None:
            key = _client_key(scope)
            if key is not None:
                count = self._per_client.get(key, 0)
                if count >= self.max_per_client:
                    self.stats.refused_limit += 1
                    return refusal_error(
                        "too_many_connections",
                        "this client has too many connections; try again later",
                        http_status=503,
                        close_code=status.WS_1013_TRY_AGAIN_LATER,
                    )
                self._per_client[key] = count + 1
        self.open += 1
        return None

    def _origin_allowed(self, scope: Scope) -> bool:
        origin = host = forwarded = None
        for k, v in scope.get("headers", ()):
            k = k.lower()
            if k == b"origin":
                origin = v
            elif k == b"host":
                host = host or v
            elif k == b"x-forwarded-host":
                forwarded = forwarded or v
        if origin is None:
            return True  # a non-browser client
        # Browsers send a handful of distinct origins: remember the decisions.
        key = (origin, host, forwarded)
        allowed = self._decisions.get(key)
        if allowed is None:
            headers = Headers(
                [
                    (name, value.decode("latin-1"))
                    for name, value in (("host", host), ("x-forwarded-host", forwarded))
                    if value is not None
                ]
            )
            allowed = self.origin.allows(origin.decode("latin-1"), headers)
            if len(self._decisions) >= _DECISIONS:
                self._decisions.clear()
            self._decisions[key] = allowed
        return allowed

    def release(self, scope: Scope) -> None:
        """The connection admitted for ``scope`` ended."""
        self.open -= 1
        if self.max_per_client is not None:
            key = _client_key(scope)
            if key is not None:
                count = self._per_client.get(key, 0) - 1
                if count > 0:
                    self._per_client[key] = count
                else:
                    self._per_client.pop(key, None)


def _client_key(scope: Scope) -> str | None:
    client = scope.get("client")
    return str(client[0]) if client else None



async def authorize(
    plan: GatewayPlan, session: Session, deps: ConnectionDependencies | None
) -> bool:
    """Run the App's and the gateway's guards in order, each after the per-connection
    dependencies it takes, then resolve the gateway's other dependencies. Raises what a
    guard or dependency raised (:class:`~wsgate.errors.WebSocketForbiddenError` for a
    guard returning ``False``); False if a guard answered the handshake itself."""
    state = session.conn.lifecycle
    for guard in plan.guards:
        if deps is not None:
            await deps.ensure(guard, session)
        if await session.call_once(guard) is False:
            raise WebSocketForbiddenError("not allowed to connect")
        if state.phase is not Phase.CONNECTING:
            return False
    if deps is not None:
        await deps.resolve_all(session)
    return state.phase is Phase.CONNECTING
