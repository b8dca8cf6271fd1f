"""The error a broadcast across workers raises when the broker cannot be reached."""

from __future__ import annotations

from .. import status
from ..errors import WebSocketError

__all__ = ["BroadcastUnavailableError"]


class BroadcastUnavailableError(WebSocketError):
    """Redis cannot be reached, so the broadcast was not sent to anyone.

    Raised by :meth:`RedisBroadcastGroup.broadcast` while this worker's connection to
    Redis is down (it reconnects by itself) or when the PUBLISH fails, and by
    :meth:`RedisBroadcastGroup.total_member_count` when Redis does not answer. Raised
    out of a message handler, it answers the frame with a ``broadcast_unavailable``
    error; the connection stays open. Raised out of ``@on_connect``, it refuses the
    handshake with HTTP 503 (or a close with 1013, try again later).
    """

    code = "broadcast_unavailable"
    http_status = 503
    default_close_code = status.WS_1013_TRY_AGAIN_LATER
