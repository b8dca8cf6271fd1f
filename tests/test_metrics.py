"""wsgate.metrics: the App's counters scraped over HTTP from real servers and parsed with
the Prometheus client library's own parser (text format 0.0.4)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import servers
from aioraw import AsyncRawClient
from prometheus_client.parser import text_string_to_metric_families
from redis_server import RedisServer

from wsgate import App, WebSocket, on_connect, ws_controller
from wsgate.broadcast.redis import RedisBroadcastGroup
from wsgate.datastructures import Counters
from wsgate.metrics import CONTENT_TYPE, metrics_app, mount_metrics, prometheus_text
from wsgate.testing import TestClient

server_pool = servers.server_pool
server_logs_clean = servers.server_logs_clean


@pytest.fixture(scope="module", params=servers.SERVER_PARAMS)
def ops_server(request: pytest.FixtureRequest, server_pool: servers.ServerPool) -> str:
    """tests/apps/ops.py (metrics at /metrics) under each server kind."""
    return server_pool.get(request.param, "apps.ops:app")


def parse(text: str) -> dict[str, tuple[str, str, dict[tuple[tuple[str, str], ...], float]]]:
    """family name -> (type, help, {labels: value}), checking the format on the way."""
    out: dict[str, Any] = {}
    for family in text_string_to_metric_families(text):
        assert family.name.startswith("wsgate_"), family.name
        assert family.documentation, f"{family.name} has no HELP"
        assert family.type in ("counter", "gauge"), (family.name, family.type)
        samples = {}
        for s in family.samples:
            if family.type == "counter":
                assert s.name == family.name + "_total", s.name
            samples[tuple(sorted(s.labels.items()))] = s.value
        out[family.name] = (family.type, family.documentation, samples)
    return out


def value(metrics: dict[str, Any], name: str, **labels: str) -> float:
    return float(metrics[name][2][tuple(sorted(labels.items()))])


async def scrape(base: str) -> dict[str, Any]:
    url = base.replace("ws://", "http://") + "/metrics"
    async with httpx.AsyncClient(timeout=5) as http:
        response = await http.get(url)
    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE
    return parse(response.text)


async def test_scrape_from_a_real_server(ops_server: str, server_logs_clean: None) -> None:
    before = await scrape(ops_server)
    assert before["wsgate_connections_open"][0] == "gauge"
    assert before["wsgate_connections"][0] == "counter"
    assert before["wsgate_broadcast_delivered"][0] == "counter"
    assert before["wsgate_broadcast_members"][0] == "gauge"
    open0 = value(before, "wsgate_connections_open")
    total0 = value(before, "wsgate_connections")
    delivered0 = value(before, "wsgate_broadcast_delivered", broadcaster="BroadcastGroup")

    clients = [await AsyncRawClient.connect(f"{ops_server}/room/metrics") for _ in range(3)]
    for c in clients:
        await c.request("hello")
    assert await clients[0].request("say", "hi", id=2) == 3
    during = await scrape(ops_server)
    assert value(during, "wsgate_connections_open") == open0 + 3
    assert value(during, "wsgate_connections") == total0 + 3
    assert value(during, "wsgate_broadcast_members", broadcaster="BroadcastGroup") >= 3
    assert (
        value(during, "wsgate_broadcast_delivered", broadcaster="BroadcastGroup")
        == delivered0 + 3
    )

    for c in clients:
        await c.send_frame(0x8, b"\x03\xe8")
        await c.wait_close()

    async def back_to_before() -> bool:
        return value(await scrape(ops_server), "wsgate_connections_open") == open0

    await servers.wait_for(back_to_before, what="connections_open back to its value")


async def test_other_methods_are_refused() -> None:
    app = App()
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await metrics_app(app)({"type": "http", "method": "POST", "path": "/metrics"}, receive, send)
    assert sent[0]["status"] == 405


class FutureStats(Counters):
    """Counters as a later version may have them."""

    __slots__ = ("connections_open", "idle_closes", "refusals", "streams_running")
    gauges = frozenset({"streams_running"})
    connections_open: int
    #: Connections closed for being idle.
    idle_closes: int
    refusals: int
    streams_running: int


def test_every_counter_field_is_exported_whatever_it_is() -> None:
    stats = FutureStats()
    stats.idle_closes = 4
    stats.streams_running = 2
    metrics = parse(prometheus_text(SimpleNamespace(stats=stats, broadcasters=())))
    assert metrics["wsgate_idle_closes"][:2] == ("counter", "Connections closed for being idle.")
    assert value(metrics, "wsgate_idle_closes") == 4
    assert metrics["wsgate_refusals"][0] == "counter"
    assert metrics["wsgate_streams_running"][0] == "gauge"
    assert value(metrics, "wsgate_streams_running") == 2
    assert metrics["wsgate_connections_open"][0] == "gauge"


def test_not_an_app_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match="takes a wsgate App"):
        prometheus_text(object())
    with pytest.raises(ValueError, match="must start with '/'"):
        mount_metrics(App(), "metrics")


@ws_controller("/r/{room}")
class RoomGateway:
    def __init__(self, rooms: RedisBroadcastGroup) -> None:
        self.rooms = rooms

    @on_connect
    async def join(self, ws: WebSocket, room: str) -> None:
        await self.rooms.subscribe(room, ws)


async def test_redis_counters_are_exported(redis_server: RedisServer) -> None:
    rooms = RedisBroadcastGroup(redis_server.url, prefix="metrics")
    app = App(gateways=[RoomGateway], providers=[rooms])
    async with TestClient(app) as client, client.websocket_connect("/r/a"):
        await rooms.broadcast("a", {"event": "x"})
        labels = {"broadcaster": "RedisBroadcastGroup"}
        metrics = parse(prometheus_text(app))
        assert value(metrics, "wsgate_redis_published", **labels) == 1
        assert value(metrics, "wsgate_redis_available", **labels) == 1
        assert value(metrics, "wsgate_broadcast_groups", **labels) == 1
        assert metrics["wsgate_redis_reconnects"][0] == "counter"
    metrics = parse(prometheus_text(app))  # after the lifespan shutdown
    assert value(metrics, "wsgate_redis_available", **labels) == 0
