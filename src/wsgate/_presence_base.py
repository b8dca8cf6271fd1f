"""What :mod:`wsgate.presence` and its Redis store share: the error and the record of a
change (a module of their own so that neither imports the other at run time)."""

from __future__ import annotations

from .broadcast.errors import BroadcastUnavailableError

__all__ = ["PresenceUnavailableError", "Record"]

#: A change of one entry: ("+" joined / "-" left, ref, stored value).
Record = tuple[str, str, bytes]


class PresenceUnavailableError(BroadcastUnavailableError):
    """The broker did not answer a presence read (:meth:`Presence.list`,
    :meth:`Presence.count`, :meth:`Presence.subscribe`). Raised out of a message handler
    it answers the frame with a ``presence_unavailable`` error."""

    code = "presence_unavailable"
