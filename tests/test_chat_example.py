"""What the chat example's server does beyond broadcasting (tests/test_real_servers.py
covers that): member counts in the join/leave pushes, renames, refused blank messages,
acknowledged sends, and its log lines. The page itself is tested in Chromium by
tests/test_browser.py."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
import servers
from servers import Client, ServerURL, wait_for

chat_server = servers.chat_server
server_pool = servers.server_pool
server_logs_clean = servers.server_logs_clean

pytestmark = pytest.mark.usefixtures("anyio_backend", "server_logs_clean")


def _data(frame: dict[str, Any]) -> Any:
    return frame["data"]


async def test_sends_are_acknowledged_and_blank_ones_refused(chat_server: ServerURL) -> None:
    room = f"r{uuid.uuid4().hex[:12]}"
    async with await Client.connect(f"{chat_server}/chat/{room}?user=ann") as ann:
        async with await Client.connect(f"{chat_server}/chat/{room}?user=bob") as bob:
            assert await ann.recv_json() == {
                "event": "joined",
                "data": {"user": "bob", "members": 2},
            }
            # Answered with null once broadcast: the page shows the message as sent then.
            assert await ann.request("chat.send", {"text": "  hi  "}, id=1) == {
                "event": "chat.send",
                "id": 1,
                "data": None,
            }
            assert _data(await bob.recv_json()) == {"room": room, "user": "ann", "text": "hi"}
            blank = await ann.request("chat.send", {"text": " \n\t "}, id=2)
            assert blank["event"] == "error"
            assert blank["data"]["code"] == "refused"
            assert "empty message" in blank["data"]["message"]
            # Nothing reached bob: the next frame he gets answers his own request.
            assert (await bob.request("echo", "x", id=9))["data"] == "x"
            assert bob.skipped == []


async def test_rename_tells_the_room_and_keeps_the_connection(chat_server: ServerURL) -> None:
    room = f"r{uuid.uuid4().hex[:12]}"
    async with await Client.connect(f"{chat_server}/chat/{room}?user=ann") as ann:
        async with await Client.connect(f"{chat_server}/chat/{room}?user=bob") as bob:
            await ann.recv_json()  # bob joined
            renamed = await bob.request("rename", {"user": " robert "}, id=1)
            assert renamed == {"event": "rename", "id": 1, "data": {"user": "robert"}}
            assert await ann.recv_json() == {
                "event": "renamed",
                "data": {"from": "bob", "to": "robert"},
            }
            await bob.send_event("chat.send", {"text": "it is me"})
            assert _data(await ann.recv_json())["user"] == "robert"
            refused = await bob.request("rename", {"user": "   "}, id=2)
            assert refused["data"]["code"] == "refused"
        left = await ann.recv_json()
        assert left == {"event": "left", "data": {"user": "robert", "members": 1}}


async def test_joins_and_leaves_are_logged_with_the_close_code(chat_server: ServerURL) -> None:
    room = f"r{uuid.uuid4().hex[:12]}"
    async with await Client.connect(f"{chat_server}/chat/{room}?user=cat") as cat:
        await cat.request("who", id=1)
    pattern = re.compile(
        rf"join path=/chat/{room} user=cat room={room} members=1\n(?:.*\n)*?"
        rf".*leave path=/chat/{room} user=cat room={room} code=\d+ members=0"
    )

    async def logged() -> bool:
        return pattern.search(chat_server.log()) is not None

    await wait_for(logged, what="the leave log line")
