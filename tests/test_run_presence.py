"""Presence under ``wsgate run --workers 2`` when a worker is killed.

The real command serves ``tests/apps/presence_run.py`` (``Presence(heartbeat_interval=0.5)``
on the embedded Valkey) with the server's backend equal to the test's; real clients
connect until both workers hold some, each subscribed to the room's presence and tracked
in it. One worker is then killed with SIGKILL (no shutdown: its entries stay in Valkey).
What a user notices: the supervisor starts a new worker, the clients of the other worker
keep being answered, and the killed worker's entries leave the room, as
``presence.diff`` leaves to the subscribers of the surviving worker, within the
heartbeat's bound.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from aioraw import AsyncRawClient
from apps.presence_run import HEARTBEAT
from servers import wait_for
from wsgate_run import RunProcess

APP = "apps.presence_run:app"
ROOM = "lobby"
#: Clients per worker before the kill.
PER_WORKER = 2
#: Slack on top of the documented bound, for a busy machine.
MARGIN = 1.0


class Member:
    """A client of ``/p/{room}``: keeps the room's entries as a client does from
    ``presence.state`` and ``presence.diff``, and the diffs' leaves."""

    def __init__(self, client: AsyncRawClient, user: str) -> None:
        self.client = client
        self.user = user
        self.entries: dict[str, list[Any]] = {}
        self.leaves: dict[str, list[Any]] = {}
        self.joins: dict[str, list[Any]] = {}
        self.replies: dict[int, Any] = {}
        self._next_id = 0

    @classmethod
    async def connect(cls, base: str, user: str) -> Member:
        return cls(await AsyncRawClient.connect(f"{base}/p/{ROOM}?user={user}"), user)

    def _apply(self, frame: dict[str, Any]) -> None:
        event, data = frame.get("event"), frame.get("data")
        if event == "presence.state":
            self.entries = {k: list(v) for k, v in data["entries"].items()}
        elif event == "presence.diff":
            for key, metas in data["joins"].items():
                self.entries.setdefault(key, []).extend(metas)
                self.joins.setdefault(key, []).extend(metas)
            for key, metas in data["leaves"].items():
                for meta in metas:
                    self.entries[key].remove(meta)
                if not self.entries[key]:
                    del self.entries[key]
                self.leaves.setdefault(key, []).extend(metas)
        elif "id" in frame:
            self.replies[frame["id"]] = data

    async def until(self, predicate: Any, *, timeout: float = 10.0, what: str = "") -> None:
        """Read frames (each with a timeout) until ``predicate()`` holds."""
        deadline = time.monotonic() + timeout
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"{self.user}: no {what} within {timeout} s; entries {self.entries}"
                )
            try:
                self._apply(await self.client.receive_json(timeout=left))
            except TimeoutError:
                continue

    async def ask(self, event: str, *, timeout: float = 10.0) -> Any:
        self._next_id += 1
        n = self._next_id
        await self.client.send_json({"event": event, "id": n})
        await self.until(lambda: n in self.replies, timeout=timeout, what=f"answer to {event}")
        return self.replies.pop(n)

    def pids(self) -> set[int]:
        return {meta["pid"] for metas in self.entries.values() for meta in metas}


async def test_a_killed_workers_presence_leaves_and_the_worker_is_restarted(
    tmp_path: Path, anyio_backend_name: str
) -> None:
    options = ["--workers", "2", "--backend", anyio_backend_name]
    with RunProcess(tmp_path, APP, options) as run:
        await anyio.to_thread.run_sync(run.wait_ready, 2)
        base = f"ws://127.0.0.1:{run.port}"
        by_pid: dict[int, list[Member]] = {}
        members: list[Member] = []
        try:
            # The kernel spreads the connections over the two workers.
            with anyio.fail_after(20):
                while len(by_pid) < 2 or any(len(m) < PER_WORKER for m in by_pid.values()):
                    member = await Member.connect(base, f"u{len(members)}")
                    members.append(member)
                    hello = await member.ask("hello")
                    by_pid.setdefault(hello["pid"], []).append(member)
            victim, survivor = by_pid
            watcher, other = by_pid[survivor][:2]
            users = {m.user for m in members}
            await watcher.until(lambda: set(watcher.entries) == users, what="every member")
            assert watcher.pids() == {victim, survivor}
            victims = {m.user for m in by_pid[victim]}

            os.kill(victim, signal.SIGKILL)
            killed_at = time.monotonic()

            # The other worker's clients are answered meanwhile.
            assert (await other.ask("hello"))["pid"] == survivor

            # The killed worker's entries leave the room: its heartbeat expires three
            # intervals after its last beat (at most one interval before the kill), and
            # the survivor removes them at its next beat.
            bound = 4 * HEARTBEAT

            async def gone() -> bool:
                listed: dict[str, list[Any]] = await other.ask("list")
                return not any(m["pid"] == victim for ms in listed.values() for m in ms)

            await wait_for(gone, timeout=bound + 5, what="the killed worker's entries gone")
            listed_gone = time.monotonic() - killed_at
            assert listed_gone < bound + MARGIN, listed_gone

            # ... and the surviving worker's subscriber is told, as leaves.
            await watcher.until(
                lambda: victim not in watcher.pids(), timeout=bound + 5, what="leaves"
            )
            seen_gone = time.monotonic() - killed_at
            assert seen_gone < bound + MARGIN, seen_gone
            assert watcher.leaves == {
                user: [{"user": user, "pid": victim}] for user in sorted(victims)
            }
            assert set(watcher.entries) == users - victims

            # The supervisor restarts the killed worker, which serves and tracks again.
            await anyio.to_thread.run_sync(
                lambda: run.wait_line(rf"worker {victim} exited with -9: restarting it in")
            )
            await anyio.to_thread.run_sync(lambda: run.wait_line(r"\] worker \d+ ready"))
            with anyio.fail_after(20):
                while True:
                    member = await Member.connect(base, f"new{len(members)}")
                    members.append(member)
                    pid = (await member.ask("hello"))["pid"]
                    if pid not in (victim, survivor):
                        break
            assert f"worker {pid} ready" in run.log()
            await watcher.until(lambda: pid in watcher.pids(), what="the new worker's join")
            assert watcher.joins[member.user] == [{"user": member.user, "pid": pid}]
            assert (await other.ask("hello"))["pid"] == survivor
        finally:
            for m in members:
                await m.client.aclose()
        assert await anyio.to_thread.run_sync(run.stop) == 0, run.log()[-3000:]
        assert "Traceback" not in run.log(), run.log()[-3000:]
