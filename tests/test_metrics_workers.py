"""One scrape answers for every worker: two server processes of tests/apps/ops.py share
``WSGATE_METRICS_DIR`` (as ``wsgate run --workers 2`` sets it), each with its own
``WSGATE_WORKER_ID``, and whichever of them takes the scrape reports both, each series
labelled ``worker``. Parsed with the Prometheus client library's own parser."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import servers
from aioraw import AsyncRawClient
from prometheus_client.parser import text_string_to_metric_families
from test_metrics import parse, scrape, value

from wsgate import App
from wsgate._metrics_dir import Family, Snapshot, write_snapshot
from wsgate.metrics import (
    METRICS_DIR_ENV,
    STALE_AFTER,
    WORKER_ID_ENV,
    WRITE_INTERVAL,
    mount_metrics,
)
from wsgate.testing import TestClient

server_kind = servers.server_kind

#: How long another worker's new figures may take to show (one write interval, plus
#: room for a loaded machine).
PROPAGATION = 3 * WRITE_INTERVAL


class Workers:
    """Two workers of one service: ``"1"`` and ``"2"``, sharing ``directory``."""

    def __init__(self, directory: Path, procs: dict[str, servers.ServerProcess]) -> None:
        self.directory = directory
        self.procs = procs

    def url(self, worker: str) -> str:
        url = self.procs[worker].url
        assert url is not None
        return url


@pytest.fixture
def workers(
    server_kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Workers]:
    directory = tmp_path / "metrics"
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    monkeypatch.setenv(METRICS_DIR_ENV, str(directory))
    procs: dict[str, servers.ServerProcess] = {}
    try:
        for worker in ("1", "2"):
            # ServerProcess passes on this process's environment.
            monkeypatch.setenv(WORKER_ID_ENV, worker)
            procs[worker] = servers.ServerProcess(server_kind, "apps.ops:app", log_dir)
            procs[worker].start()
        yield Workers(directory, procs)
    finally:
        for proc in procs.values():
            proc.stop()
    for worker, proc in procs.items():
        assert proc.url is not None
        bad = [line for line in proc.url.log().splitlines() if servers.UNEXPECTED_LOG.search(line)]
        assert not bad, f"worker {worker} logged errors: {bad}"


async def connect(url: str, n: int) -> list[AsyncRawClient]:
    clients = [await AsyncRawClient.connect(f"{url}/room/w") for _ in range(n)]
    for c in clients:
        await c.request("hello")  # accepted and served
    return clients


async def close(clients: list[AsyncRawClient]) -> None:
    for c in clients:
        await c.send_frame(0x8, b"\x03\xe8")
        await c.wait_close()


def workers_seen(metrics: dict[str, Any], name: str) -> dict[str, float]:
    """worker -> value of the unlabelled-but-for-worker series ``name``."""
    out = {}
    for labels, v in metrics.get(name, ("", "", {}))[2].items():
        d = dict(labels)
        if set(d) == {"worker"}:
            out[d["worker"]] = v
    return out


async def test_one_scrape_answers_for_every_worker(workers: Workers) -> None:
    one, two = workers.url("1"), workers.url("2")
    on_one = await connect(one, 2)
    on_two = await connect(two, 1)

    # The scraped worker's own figures are fresh; the other's come from its snapshot.
    metrics = await scrape(one)
    assert value(metrics, "wsgate_connections_open", worker="1") == 2
    assert value(metrics, "wsgate_connections", worker="1") == 2

    async def two_seen_from_one() -> dict[str, Any] | None:
        m = await scrape(one)
        ok = workers_seen(m, "wsgate_connections_open").get("2") == 1
        return m if ok else None

    metrics = await servers.wait_for(
        two_seen_from_one, timeout=PROPAGATION, what="worker 2's connection in worker 1's scrape"
    )
    assert workers_seen(metrics, "wsgate_connections") == {"1": 2, "2": 1}
    assert value(metrics, "wsgate_broadcast_members", worker="2", broadcaster="BroadcastGroup") == 1
    # Every series names its worker, and each family is declared once.
    for name, (_kind, _help, samples) in metrics.items():
        for labels in samples:
            assert "worker" in dict(labels), (name, labels)
    async with httpx.AsyncClient(timeout=5) as http:
        text = (await http.get(one.replace("ws://", "http://") + "/metrics")).text
    declared = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")]
    assert len(declared) == len(set(declared))
    assert [f.name for f in text_string_to_metric_families(text)] == list(metrics)

    # New connections on worker 2: its own scrape sees them at once, worker 1's within
    # the write interval.
    on_two += await connect(two, 2)
    assert workers_seen(await scrape(two), "wsgate_connections") == {"1": 2, "2": 3}

    async def three_on_two() -> bool:
        return workers_seen(await scrape(one), "wsgate_connections").get("2") == 3

    started = time.monotonic()
    await servers.wait_for(three_on_two, timeout=PROPAGATION, what="worker 2's new count")
    assert time.monotonic() - started < PROPAGATION

    await close(on_one + on_two)

    async def all_closed() -> bool:
        seen = workers_seen(await scrape(two), "wsgate_connections_open")
        return seen == {"1": 0, "2": 0}

    await servers.wait_for(all_closed, timeout=PROPAGATION, what="both workers at 0 open")


async def test_a_stopped_worker_keeps_its_counters_not_its_gauges(workers: Workers) -> None:
    one, two = workers.url("1"), workers.url("2")
    await close(await connect(two, 2))
    await close(await connect(one, 1))

    async def two_counted() -> bool:
        return workers_seen(await scrape(one), "wsgate_connections").get("2") == 2

    await servers.wait_for(two_counted, timeout=PROPAGATION, what="worker 2's count")

    workers.procs["2"].stop()  # its lifespan shutdown writes a last snapshot
    metrics = await scrape(one)
    assert workers_seen(metrics, "wsgate_connections") == {"1": 1, "2": 2}
    assert workers_seen(metrics, "wsgate_connections_open") == {"1": 0}
    members = metrics["wsgate_broadcast_members"][2]
    assert {dict(labels)["worker"] for labels in members} == {"1"}

    # Started again under the same id, worker 2 replaces its file: its counters start
    # again from 0 (a reset, for Prometheus) and its gauges are back.
    workers.procs["2"].start()

    async def two_restarted() -> dict[str, Any] | None:
        m = await scrape(one)
        return m if workers_seen(m, "wsgate_connections_open").get("2") == 0 else None

    metrics = await servers.wait_for(two_restarted, timeout=PROPAGATION, what="worker 2 again")
    assert workers_seen(metrics, "wsgate_connections") == {"1": 1, "2": 0}


# ------------------------------------------------------------------ in-process


async def get_metrics(app: App) -> dict[str, Any]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app({"type": "http", "method": "GET", "path": "/metrics", "headers": []}, receive, send)
    assert sent[0]["status"] == 200, sent
    return parse(sent[1]["body"].decode())


def listing(directory: Path) -> list[Path]:
    return list(directory.iterdir())


def ghost(worker: str, written: float) -> Snapshot:
    """A snapshot as another worker of the service writes it."""
    return Snapshot(
        worker,
        1,
        written,
        False,
        [
            Family("wsgate_connections_open", "gauge", "Open.", [({}, 3)]),
            Family("wsgate_connections_total", "counter", "Total.", [({}, 7)]),
        ],
    )


async def test_a_silent_worker_keeps_its_counters_not_its_gauges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(METRICS_DIR_ENV, str(tmp_path))
    monkeypatch.setenv(WORKER_ID_ENV, "web-1")
    now = time.time()
    write_snapshot(tmp_path, ghost("alive", now))
    write_snapshot(tmp_path, ghost("gone", now - STALE_AFTER - 1))
    (tmp_path / "notes.json").write_text("not a snapshot")  # other files are ignored
    (tmp_path / ".web-2.abc.tmp").write_text("{")  # nor half-written ones
    app = App()
    mount_metrics(app)
    async with TestClient(app):
        assert (tmp_path / "web-1.json").exists()  # written at startup
        metrics = await get_metrics(app)
    assert workers_seen(metrics, "wsgate_connections") == {"alive": 7, "gone": 7, "web-1": 0}
    assert workers_seen(metrics, "wsgate_connections_open") == {"alive": 3, "web-1": 0}


async def test_without_a_metrics_dir_a_worker_answers_for_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(METRICS_DIR_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    app = App()
    mount_metrics(app)
    async with TestClient(app):
        metrics = await get_metrics(app)
    assert metrics["wsgate_connections"][2] == {(): 0.0}
    assert listing(tmp_path) == []


async def test_a_worker_id_that_cannot_name_a_file_fails_the_startup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(METRICS_DIR_ENV, str(tmp_path))
    monkeypatch.setenv(WORKER_ID_ENV, "../web")
    app = App()
    mount_metrics(app)
    with pytest.raises(RuntimeError, match=r"WSGATE_WORKER_ID='\.\./web' cannot name a worker"):
        async with TestClient(app):
            pass
