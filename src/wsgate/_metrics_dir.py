"""Metrics snapshots shared by the worker processes of one service.

With ``WSGATE_METRICS_DIR`` set, each worker keeps the figures its ``/metrics`` would
render (the values, not the text) in ``<dir>/<worker id>.json``, replaced atomically
(written to a temporary file of the same directory, then ``os.replace``): a reader sees
a whole snapshot, the previous one or the next, never a partial file. The worker that
answers a scrape reads every other worker's file (see :mod:`wsgate.metrics`).

Everything here is blocking file I/O on small files: call it through
``anyio.to_thread.run_sync`` from the event loop.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path

import msgspec

__all__ = [
    "METRICS_DIR_ENV",
    "STALE_AFTER",
    "WORKER_ID_ENV",
    "WRITE_INTERVAL",
    "Family",
    "Snapshot",
    "metrics_dir",
    "read_others",
    "worker_id",
    "write_snapshot",
]

#: The directory shared by the workers of one service (set by ``wsgate run``).
METRICS_DIR_ENV = "WSGATE_METRICS_DIR"
#: This worker's name in that directory and in the ``worker`` label (default: the pid).
WORKER_ID_ENV = "WSGATE_WORKER_ID"
#: Seconds between two snapshots of a serving worker.
WRITE_INTERVAL = 1.0
#: A snapshot older than this (by the time written in it) belongs to a worker that is gone.
STALE_AFTER = 3 * WRITE_INTERVAL + 2.0

_ID_OK = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}")
_SUFFIX = ".json"


class Family(msgspec.Struct, array_like=True, frozen=True):
    """One metric family: name, ``counter`` or ``gauge``, HELP text, samples."""

    name: str
    kind: str
    help: str
    samples: list[tuple[dict[str, str], int | float]]


class Snapshot(msgspec.Struct, frozen=True):
    """What one worker's ``/metrics`` would render, at ``time`` (``time.time()``)."""

    worker: str
    pid: int
    time: float
    #: Written at the lifespan shutdown: the worker has stopped serving.
    final: bool
    families: list[Family]


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Snapshot)


def metrics_dir() -> Path | None:
    """``WSGATE_METRICS_DIR`` as a path, or None if it is unset or empty."""
    value = os.environ.get(METRICS_DIR_ENV, "")
    return Path(value) if value else None


def worker_id() -> str:
    """``WSGATE_WORKER_ID``, else this process's pid. Raises ``ValueError`` if it cannot
    name a file."""
    value = os.environ.get(WORKER_ID_ENV, "") or str(os.getpid())
    if not _ID_OK.fullmatch(value):
        raise ValueError(
            f"{WORKER_ID_ENV}={value!r} cannot name a worker: use up to 100 letters, digits, "
            "'_', '-' and '.' (not first), e.g. 1 or web-1"
        )
    return value


def write_snapshot(directory: Path, snapshot: Snapshot) -> None:
    """Replace ``<directory>/<worker>.json`` with ``snapshot``, atomically."""
    data = _encoder.encode(snapshot)
    fd, tmp = tempfile.mkstemp(prefix=f".{snapshot.worker}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, directory / f"{snapshot.worker}{_SUFFIX}")
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_others(directory: Path, own: str) -> list[Snapshot]:
    """Every worker's latest snapshot in ``directory`` but ``own``'s. Files that are not
    snapshots (or vanish while being read) are skipped."""
    found: list[Snapshot] = []
    with os.scandir(directory) as entries:
        names = [e.name for e in entries if e.name.endswith(_SUFFIX) and e.is_file()]
    for name in names:
        worker = name[: -len(_SUFFIX)]
        if worker == own or not _ID_OK.fullmatch(worker):
            continue
        try:
            data = (directory / name).read_bytes()
            snapshot = _decoder.decode(data)
        except (OSError, msgspec.DecodeError):
            continue
        if snapshot.worker == worker:
            found.append(snapshot)
    return found
