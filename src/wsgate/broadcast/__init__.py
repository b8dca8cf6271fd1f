"""Broadcast groups: named sets of connections that receive the same frames.

:class:`BroadcastGroup` keeps its groups in this process. ``wsgate.broadcast.redis``
holds :class:`~wsgate.broadcast.redis.RedisBroadcastGroup`, the same API across workers.
"""

from .memory import BroadcastGroup, GroupStats

__all__ = ["BroadcastGroup", "GroupStats"]
