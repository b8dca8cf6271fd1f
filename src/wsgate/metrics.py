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

Several worker processes (``wsgate run --workers N``, or gunicorn, uvicorn or hypercorn
with several workers) answer for the whole service when ``WSGATE_METRICS_DIR`` names a
directory shared by them (``wsgate run`` sets it): each worker writes a snapshot of its
figures there (``<dir>/<WSGATE_WORKER_ID or pid>.json``, at lifespan startup, every
second while serving, at shutdown), and the worker that answers a scrape renders its own
fresh figures and every other worker's latest snapshot, each series labelled
``worker="<id>"`` (``sum without (worker) (...)`` in PromQL for the service's total). A
worker whose snapshot is older than :data:`STALE_AFTER` seconds, or that wrote its
shutdown snapshot, is gone: its counters are still reported with their last values (so
the service's sums never go down), its gauges are not. A worker started again with the
same id replaces the file, and its counters start again from 0 (a counter reset, which
Prometheus handles). Without ``WSGATE_METRICS_DIR`` a worker answers for itself.
"""

from __future__ import annotations

import inspect
import logging
import os
import re
import time
import weakref
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from . import _metrics_dir as shared
from ._metrics_dir import METRICS_DIR_ENV, STALE_AFTER, WORKER_ID_ENV, WRITE_INTERVAL
from .app import App
from .asgi import ASGIApp, Receive, Scope, Send
from .datastructures import Counters

__all__ = [
    "CONTENT_TYPE",
    "METRICS_DIR_ENV",
    "STALE_AFTER",
    "WORKER_ID_ENV",
    "WRITE_INTERVAL",
    "metrics_app",
    "mount_metrics",
    "prometheus_text",
]

logger = logging.getLogger("wsgate")

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

    def snapshot(self, worker: str, *, final: bool = False) -> shared.Snapshot:
        families = [
            shared.Family(name, f.kind, f.help, list(f.samples))
            for name, f in self.families.items()
        ]
        return shared.Snapshot(worker, os.getpid(), time.time(), final, families)

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
    ``redis_stats``. Raises ``TypeError`` if ``app`` has no ``stats`` counters.

    These are this process's figures, whatever ``WSGATE_METRICS_DIR`` says (the endpoint
    of :func:`metrics_app` and :func:`mount_metrics` answers for every worker)."""
    return _collect(app).render()


def _collect(app: Any) -> _Writer:
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
    return w


def _worker_order(snapshot: shared.Snapshot) -> tuple[int, int, str]:
    worker = snapshot.worker
    return (0, int(worker), "") if worker.isdigit() else (1, 0, worker)


def _render_workers(snapshots: list[shared.Snapshot], now: float) -> str:
    """Every worker's series labelled ``worker="<id>"``; a gone worker's gauges left out."""
    w = _Writer()
    for snapshot in sorted(snapshots, key=_worker_order):
        gone = snapshot.final or now - snapshot.time > STALE_AFTER
        for family in snapshot.families:
            if gone and family.kind == "gauge":
                continue
            for labels, value in family.samples:
                w.add(
                    family.name,
                    family.kind,
                    family.help,
                    value,
                    {"worker": snapshot.worker, **labels},
                )
    return w.render()


class _Workers:
    """The side of one App's metrics endpoint that is shared with the other workers
    through ``WSGATE_METRICS_DIR``: snapshots written at startup, every
    :data:`WRITE_INTERVAL` while serving and at shutdown; scrapes that read them."""

    def __init__(self, app: App) -> None:
        self._app = weakref.ref(app)
        self._pid = 0  # the process the settings below were read in
        self._directory: Path | None = None
        self._worker = ""
        self._lock: anyio.Lock | None = None
        self._failing = False

    def _configure(self) -> Path | None:
        # Read in the worker itself: an app imported before the fork (gunicorn --preload)
        # must not name its workers after the parent's pid.
        pid = os.getpid()
        if self._pid != pid:
            directory = shared.metrics_dir()
            if directory is not None:
                self._worker = shared.worker_id()
                try:
                    directory.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise OSError(
                        f"{METRICS_DIR_ENV}={str(directory)!r}: cannot create the metrics "
                        f"directory ({exc}); point it at a writable directory, or unset it "
                        "to serve each worker's own metrics"
                    ) from exc
            self._directory = directory
            self._pid = pid
        return self._directory

    def _snapshot(self, *, final: bool = False) -> shared.Snapshot:
        app = self._app()
        if app is None:  # pragma: no cover - the App holds the hooks that call this
            raise RuntimeError("the App of this metrics endpoint is gone")
        return _collect(app).snapshot(self._worker, final=final)

    async def _write(self, directory: Path, *, final: bool = False) -> None:
        # Snapshots are taken and written in turn, so a file never goes back in time.
        if self._lock is None:
            self._lock = anyio.Lock()
        async with self._lock:
            snapshot = self._snapshot(final=final)
            await anyio.to_thread.run_sync(shared.write_snapshot, directory, snapshot)

    async def startup(self) -> None:
        self._lock = anyio.Lock()  # one per event loop the App is served on
        directory = self._configure()
        if directory is not None:
            await self._write(directory)

    async def serve(self) -> None:
        directory = self._directory
        if directory is None:
            return
        while True:
            await anyio.sleep(WRITE_INTERVAL)
            await self._write_logged(directory)

    async def shutdown(self) -> None:
        directory = self._directory
        if directory is not None and self._pid == os.getpid():
            await self._write_logged(directory, final=True)

    async def _write_logged(self, directory: Path, *, final: bool = False) -> None:
        try:
            await self._write(directory, final=final)
        except Exception as exc:  # the writer outlives a full disk, and logs it once
            if not self._failing:
                logger.warning(
                    "wsgate cannot write its metrics snapshot to %s: %s",
                    directory,
                    exc,
                    exc_info=not isinstance(exc, OSError),
                )
            self._failing = True
        else:
            self._failing = False

    async def text(self, app: Any) -> str:
        directory = self._configure()
        if directory is None:
            return prometheus_text(app)
        if self._lock is None:
            self._lock = anyio.Lock()
        async with self._lock:
            own = self._snapshot()

            def exchange() -> list[shared.Snapshot]:
                shared.write_snapshot(directory, own)
                return shared.read_others(directory, own.worker)

            others = await anyio.to_thread.run_sync(exchange)
        return _render_workers([own, *others], time.time())


_WORKERS: weakref.WeakKeyDictionary[App, _Workers] = weakref.WeakKeyDictionary()


def _workers(app: Any) -> _Workers | None:
    """The App's shared-metrics side, set up once per App (its lifespan hooks added)."""
    if not isinstance(app, App):
        return None
    workers = _WORKERS.get(app)
    if workers is None:
        workers = _WORKERS[app] = _Workers(app)
        app.add_lifespan(startup=workers.startup, shutdown=workers.shutdown, serve=workers.serve)
    return workers


def metrics_app(app: Any) -> ASGIApp:
    """An ASGI app answering ``GET`` (and ``HEAD``) with :func:`prometheus_text` of
    ``app``; other methods get 405. Mount it anywhere, or use :func:`mount_metrics`.

    With ``WSGATE_METRICS_DIR`` set (read at the lifespan startup of ``app``, a
    :class:`~wsgate.App`), the answer covers every worker writing to that directory,
    each series labelled ``worker="<id>"`` (see the module's documentation)."""
    workers = _workers(app)

    async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        method = scope.get("method", "GET")
        if method not in ("GET", "HEAD"):
            body = b"Method Not Allowed"
            headers = [(b"content-type", b"text/plain"), (b"allow", b"GET, HEAD")]
            status = 405
        else:
            text = await workers.text(app) if workers is not None else prometheus_text(app)
            body = text.encode()
            headers = [(b"content-type", CONTENT_TYPE.encode())]
            status = 200
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})

    return endpoint


def mount_metrics(app: Any, path: str = "/metrics") -> None:
    """Serve :func:`prometheus_text` of ``app`` at ``path`` on the app's own server (through
    ``app.mount_http``), for every worker of the service when ``WSGATE_METRICS_DIR`` is set
    (see :func:`metrics_app`). Raises ``ValueError`` if ``path`` does not start with ``/``."""
    if not path.startswith("/"):
        raise ValueError(f"mount_metrics(path=...) must start with '/', got {path!r}")
    app.mount_http(path, metrics_app(app))
