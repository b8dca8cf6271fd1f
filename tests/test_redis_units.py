"""The parts of the Redis broadcast group that need no server: reconnect delays, the
names of channels and keys, URLs in messages, the import hint, a link that is not up.

Everything that talks to Redis is tested against a real server in test_redis.py.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from wsgate.broadcast._redis_client import open_client, redact
from wsgate.broadcast._redis_counts import heartbeat_key, members_key
from wsgate.broadcast._redis_link import PubSubLink, channel_prefix, reconnect_delay
from wsgate.broadcast.redis import RedisBroadcastGroup, RedisStats

ROOT = Path(__file__).resolve().parents[1]


# -- reconnect backoff ---------------------------------------------------------------------


def test_reconnect_delay_doubles_from_50ms_up_to_the_cap() -> None:
    def longest(low: float, high: float) -> float:
        return high

    delays = [reconnect_delay(attempt, 1.0, longest) for attempt in range(8)]
    assert delays == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0])
    # However long the outage, the delay stays at the cap (no overflow).
    assert reconnect_delay(10_000, 5.0, longest) == 5.0


def test_reconnect_delay_is_jittered_between_half_and_all_of_it() -> None:
    bounds: list[tuple[float, float]] = []

    def shortest(low: float, high: float) -> float:
        bounds.append((low, high))
        return low

    assert reconnect_delay(3, 5.0, shortest) == pytest.approx(0.2)
    assert bounds == [(0.5, 1.0)]
    # With the default source, workers that failed together spread out.
    rng = random.Random(7)
    delays = {reconnect_delay(4, 5.0, rng.uniform) for _ in range(50)}
    assert all(0.4 <= d <= 0.8 for d in delays)
    assert len(delays) > 40


# -- names in Redis --------------------------------------------------------------------------


def test_channels_and_keys_live_under_the_prefix() -> None:
    group = RedisBroadcastGroup("redis://127.0.0.1:6379", prefix="chat")
    assert group.channel("room 1") == "chat:g:room 1" == channel_prefix("chat") + "room 1"
    assert members_key("chat", "room 1") == "chat:m:room 1"
    assert heartbeat_key("chat", "0af3") == "chat:w:0af3"
    # The three namespaces of one prefix never meet.
    names = {group.channel("x"), members_key("chat", "x"), heartbeat_key("chat", "x")}
    assert len(names) == 3


# -- URLs in logs and errors ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://user:s3cret@db.example:6380/2", "redis://user:***@db.example:6380/2"),
        ("rediss://:s3cret@db.example/0", "rediss://:***@db.example/0"),
        ("redis://db.example:6379", "redis://db.example:6379"),
        ("unix:///run/redis.sock", "unix:///run/redis.sock"),
    ],
)
def test_urls_are_shown_without_their_password(url: str, shown: str) -> None:
    assert redact(url) == shown
    assert "s3cret" not in repr(RedisBroadcastGroup(url))


# -- without coredis -------------------------------------------------------------------------


def test_importing_without_coredis_says_what_to_install() -> None:
    code = (
        "import sys\n"
        "sys.modules['coredis'] = None\n"  # as if it were not installed
        "try:\n"
        "    import wsgate.broadcast.redis\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    path = [str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in path if p)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.stdout.strip() == (
        "wsgate.broadcast.redis needs coredis>=6: pip install 'wsgate[redis]'"
    ), out.stderr


# -- a link that is not up ---------------------------------------------------------------


async def test_a_link_that_is_not_up_keeps_nobody_waiting() -> None:
    calls: list[str] = []

    async def on_connected() -> None:
        calls.append("connected")

    link = PubSubLink(
        open_client("redis://127.0.0.1:1", connect_timeout=1.0, command_timeout=1.0),
        url="redis://127.0.0.1:1",
        channel_prefix=channel_prefix("t"),
        command_timeout=30.0,
        heartbeat_ttl=15.0,
        reconnect_max_delay=1.0,
        stats=RedisStats(),
        wanted=lambda: {"room"},
        has_members=lambda group: True,
        on_message=lambda group, data: calls.append(group),
        on_connected=on_connected,
    )
    assert not link.up and link.last_error is None
    with anyio.fail_after(5):  # well under command_timeout: it must not wait at all
        # A first member joining while Redis is unreachable does not wait for an ack.
        await link.wait_subscribed("room")
        # Shutting down a link that never came up: nothing to unsubscribe or unregister.
        assert await link.shut_down() is False
    assert calls == []
