"""What the chat example's server does beyond broadcasting (tests/test_real_servers.py
covers that): member counts in the join/leave pushes, renames, refused blank messages,
acknowledged sends, the room's history, who is online, and its log lines. The page
itself is tested in Chromium by tests/test_browser.py."""

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


async def _next(client: Client, event: str) -> dict[str, Any]:
    """The next frame of ``event`` (presence frames and others are kept in skipped)."""
    while True:
        frame = await client.recv_json()
        if frame["event"] == event:
            return frame
        client.skipped.append(frame)


def _room_frame(frame: dict[str, Any]) -> dict[str, Any]:
    """A frame of the room without its position in the room's history."""
    assert isinstance(frame["pos"]["offset"], int), frame
    return {k: v for k, v in frame.items() if k != "pos"}


async def test_sends_are_acknowledged_and_blank_ones_refused(chat_server: ServerURL) -> None:
    room = f"r{uuid.uuid4().hex[:12]}"
    async with await Client.connect(f"{chat_server}/chat/{room}?user=ann") as ann:
        async with await Client.connect(f"{chat_server}/chat/{room}?user=bob") as bob:
            assert _room_frame(await _next(ann, "joined")) == {
                "event": "joined",
                "data": {"user": "bob", "members": 2},
            }
            # Answered with null once broadcast: the page shows the message as sent then.
            assert await ann.request("chat.send", {"text": "  hi  ", "token": "t1"}, id=1) == {
                "event": "chat.send",
                "id": 1,
                "data": None,
            }
            posted = {"room": room, "user": "ann", "text": "hi", "token": "t1"}
            assert _data(await _next(bob, "chat.message")) == posted
            # The sender gets the room's copy too (its token tells the page it is its own).
            own = next((f for f in ann.skipped if f["event"] == "chat.message"), None)
            assert _data(own or await _next(ann, "chat.message")) == posted
            blank = await ann.request("chat.send", {"text": " \n\t "}, id=2)
            assert blank["event"] == "error"
            assert blank["data"]["code"] == "refused"
            assert "empty message" in blank["data"]["message"]
            # Nothing reached bob: the next frame he gets answers his own request.
            bob.skipped.clear()
            assert (await bob.request("echo", "x", id=9))["data"] == "x"
            assert bob.skipped == []


async def test_rename_tells_the_room_and_keeps_the_connection(chat_server: ServerURL) -> None:
    room = f"r{uuid.uuid4().hex[:12]}"
    async with await Client.connect(f"{chat_server}/chat/{room}?user=ann") as ann:
        async with await Client.connect(f"{chat_server}/chat/{room}?user=bob") as bob:
            await _next(ann, "joined")
            renamed = await bob.request("rename", {"user": " robert "}, id=1)
            assert renamed == {"event": "rename", "id": 1, "data": {"user": "robert"}}
            assert _room_frame(await _next(ann, "renamed")) == {
                "event": "renamed",
                "data": {"from": "bob", "to": "robert"},
            }
            await bob.send_event("chat.send", {"text": "it is me"})
            assert _data(await _next(ann, "chat.message"))["user"] == "robert"
            refused = await bob.request("rename", {"user": "   "}, id=2)
            assert refused["data"]["code"] == "refused"
        left = _room_frame(await _next(ann, "left"))
        assert left == {"event": "left", "data": {"user": "robert", "members": 1}}


async def test_a_new_member_gets_the_history_and_sees_who_is_online(
    chat_server: ServerURL,
) -> None:
    room = f"r{uuid.uuid4().hex[:12]}"
    async with await Client.connect(f"{chat_server}/chat/{room}?user=ann") as ann:
        state = await _next(ann, "presence.state")
        assert state["data"] == {"group": room, "entries": {"ann": [{"user": "ann"}]}}
        for i in range(3):
            await ann.request("chat.send", {"text": f"m{i}"}, id=i + 1)
        async with await Client.connect(f"{chat_server}/chat/{room}?user=bob") as bob:
            diff = await _next(ann, "presence.diff")
            assert diff["data"] == {
                "group": room,
                "joins": {"bob": [{"user": "bob"}]},
                "leaves": {},
            }
            history = (await bob.request("history", id=1))["data"]
            assert [h["data"]["text"] for h in history if h["event"] == "chat.message"] == [
                "m0",
                "m1",
                "m2",
            ]
            assert (await bob.request("who", id=2))["data"] == {"room": room, "members": 2}


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
