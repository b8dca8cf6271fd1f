"""The App's counters in the Prometheus text exposition format (version 0.0.4).

::

    from wsgate.metrics import mount_metrics

    app = App(gateways=[...])
    mount_metrics(app, "/metrics")        # GET /metrics on the same server

or render the text yourself with :func:`prometheus_text`, or serve it elsewhere with
:func:`metrics_app`.

What is exported (every name starts with ``wsgate_``):

- every counter of ``app.stats`` (``wsgate_connections_total``,
  ``wsgate_dropped_frames_total``, ...; gauges such as ``wsgate_connections_open``
  keep their name);
- for every broadcast group provider (``app.broadcasters``), labelled
  ``broadcaster="<class name>"``: its totals ``wsgate_broadcast_<counter>_total``, the
  number of groups and of local members (gauges);
- for a :class:`~wsgate.broadcast.redis.RedisBroadcastGroup`, its ``redis_stats`` as
  ``wsgate_redis_<counter>_total`` and ``wsgate_redis_available`` (1 while connected).

The counter objects are read field by field, so counters added to them later are
exported without a change here. A field is a gauge (a value that goes down) when its
class lists it in a ``gauges`` class attribute or its name ends in ``_open``; every other
field is a counter and gets the ``_total`` suffix.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable
from typing import Any

from .asgi import ASGIApp, Receive, Scope, Send
from .datastructures import Counters

__all__ = ["CONTENT_TYPE", "metrics_app", "mount_metrics", "prometheus_text"]

#: The Content-Type of the text exposition format.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


_GAUGE_SUFFIXES = ("_open",)
_NAME_OK = re.compile(r"[^a-zA-Z0-9_]")


def _is_gauge(cls: type[Counters], name: str) -> bool:
    declared: Iterable[str] = getattr(cls, "gauges", ())
    return name in declared or name.endswith(_GAUGE_SUFFIXES)


_DOCS: dict[type[Counters], dict[str, str]] = {}


def _docs(cls: type[Counters]) -> dict[str, str]:
    """The ``#:`` comment above each field in the class's source, if it can be read."""
    docs = _DOCS.get(cls)
    if docs is not None:
        return docs
    docs = _DOCS[cls] = {}
    for klass in reversed(cls.__mro__):
        try:
            lines = inspect.getsource(klass).splitlines()
        except (OSError, TypeError):
            continue
        pending: list[str] = []
        for line in lines:
            text = line.strip()
            if text.startswith("#:"):
                pending.append(text[2:].strip())
                continue
            m = re.match(r"([A-Za-z_][A-Za-z0-9_]*)\s*:", text)
            if m and pending:
                docs[m.group(1)] = " ".join(pending)
            pending = []
    return docs


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels.items())
    return "{" + inner + "}"


class _Family:
    __slots__ = ("help", "kind", "samples")

    def __init__(self, kind: str, help: str) -> None:
        self.kind = kind
        self.help = help
        self.samples: list[tuple[dict[str, str], int | float]] = []


class _Writer:
    """Collects samples by metric name (one HELP/TYPE block per name, in first-seen
    order, as the format requires)."""

    def __init__(self) -> None:
        self.families: dict[str, _Family] = {}

    def add(
        self, name: str, kind: str, help: str, value: int | float, labels: dict[str, str]
    ) -> None:
        family = self.families.get(name)
        if family is None:
            family = self.families[name] = _Family(kind, help)
        family.samples.append((labels, value))

    def counters(self, prefix: str, stats: Counters, what: str, labels: dict[str, str]) -> None:
        cls = type(stats)
        docs = _docs(cls)
        for field, value in stats.as_dict().items():
            base = _NAME_OK.sub("_", f"{prefix}{field}")
            help = docs.get(field) or f"{what}: {field.replace('_', ' ')}."
            if _is_gauge(cls, field):
                self.add(base, "gauge", help, value, labels)
            else:
                name = base if base.endswith("_total") else f"{base}_total"
                self.add(name, "counter", help, value, labels)

    def render(self) -> str:
        out: list[str] = []
        for name, family in self.families.items():
            out.append(f"# HELP {name} {_escape_help(family.help)}")
            out.append(f"# TYPE {name} {family.kind}")
            for labels, value in family.samples:
                out.append(f"{name}{_labels(labels)} {value}")
        return "\n".join(out) + "\n"


def prometheus_text(app: Any) -> str:
    """The counters of ``app`` (a :class:`~wsgate.App`) in the Prometheus text format
    0.0.4: ``app.stats``, every broadcast group's totals and, for Redis groups,
    ``redis_stats``. Raises ``TypeError`` if ``app`` has no ``stats`` counters."""
    stats = getattr(app, "stats", None)
    if not isinstance(stats, Counters):
        raise TypeError(f"prometheus_text() takes a wsgate App, not {type(app).__name__}")
    w = _Writer()
    w.counters("wsgate_", stats, "Connections", {})
    names: dict[str, int] = {}
    for group in getattr(app, "broadcasters", ()):
        name = type(group).__name__
        n = names[name] = names.get(name, 0) + 1
        labels = {"broadcaster": name if n == 1 else f"{name}#{n}"}
        w.counters("wsgate_broadcast_", group.stats, "Broadcast frames", labels)
        groups = group.groups()
        w.add(
            "wsgate_broadcast_groups",
            "gauge",
            "Groups with at least one member in this process.",
            len(groups),
            labels,
        )
        w.add(
            "wsgate_broadcast_members",
            "gauge",
            "Memberships (connection in a group) in this process.",
            sum(group.member_count(g) for g in groups),
            labels,
        )
        redis_stats = getattr(group, "redis_stats", None)
        if isinstance(redis_stats, Counters):
            w.counters("wsgate_redis_", redis_stats, "Redis traffic", labels)
            w.add(
                "wsgate_redis_available",
                "gauge",
                "1 while this process is connected to Redis, else 0.",
                1 if getattr(group, "available", False) else 0,
                labels,
            )
    return w.render()


def metrics_app(app: Any) -> ASGIApp:
    """An ASGI app answering ``GET`` (and ``HEAD``) with :func:`prometheus_text` of
    ``app``; other methods get 405. Mount it anywhere, or use :func:`mount_metrics`."""

    async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        method = scope.get("method", "GET")
        if method not in ("GET", "HEAD"):
            body = b"Method Not Allowed"
            headers = [(b"content-type", b"text/plain"), (b"allow", b"GET, HEAD")]
            status = 405
        else:
            body = prometheus_text(app).encode()
            headers = [(b"content-type", CONTENT_TYPE.encode())]
            status = 200
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})

    return endpoint


def mount_metrics(app: Any, path: str = "/metrics") -> None:
    """Serve :func:`prometheus_text` of ``app`` at ``path`` on the app's own server (through
    ``app.mount_http``). Raises ``ValueError`` if ``path`` does not start with ``/``."""
    if not path.startswith("/"):
        raise ValueError(f"mount_metrics(path=...) must start with '/', got {path!r}")
    app.mount_http(path, metrics_app(app))
