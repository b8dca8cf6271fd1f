"""The app the soak benchmark serves (``benchmarks.soak_app:app``).

``/soak/{room}``: joins the room; ``echo`` answers with its data; ``shout`` broadcasts
its data to the room. ``/control``: what the soak driver samples and the probes of the
memory investigation: ``stats`` (pid, RSS, tasks, connection counters), ``gc_types``
(live objects by type), ``snapshot`` / ``snapshot_diff`` (tracemalloc, once ``trace_start``
started it), ``trim`` (glibc ``malloc_trim(0)``, RSS before and
after).
"""

from __future__ import annotations

import collections
import ctypes
import gc
import os
import sys
import tempfile
import tracemalloc
from typing import Any

import sniffio

from wsgate import App, BroadcastGroup, Json, WebSocket, on_connect, on_message, ws_controller


def rss_kib() -> int:
    """Resident set size of this process, from /proc/self/status."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
            "uordblks", "fordblks", "keepcost",
        )
    ]  # fmt: skip


def heap() -> dict[str, int]:
    """Where the process's heap memory is: glibc's mallinfo2 (``arena``: bytes of the
    main heap and arenas, ``uordblks``: of it in use, ``fordblks``: free but kept,
    ``hblkhd``: mmapped blocks) and pymalloc's own (``pymalloc_arenas``: 1 MiB arenas
    held, ``pymalloc_used``: bytes in allocated blocks)."""
    out: dict[str, int] = {"allocated_blocks": sys.getallocatedblocks()}
    try:
        info = ctypes.CDLL("libc.so.6").mallinfo2
        info.restype = _MallInfo2
        m = info()
        for name in ("arena", "uordblks", "fordblks", "hblkhd"):
            out[name] = int(getattr(m, name))
    except (OSError, AttributeError):
        pass
    # sys._debugmallocstats() writes to the C stderr: catch it in a temporary file.
    with tempfile.TemporaryFile() as tmp:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(tmp.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        text = tmp.read().decode(errors="replace")
    for line in text.splitlines():
        key, _, value = line.partition("=")
        key = key.strip()
        number = value.strip().replace(",", "").split(" ")[0]
        if key == "# arenas allocated current" and number.isdigit():
            out["pymalloc_arenas"] = int(number)
        elif key.startswith("# bytes in allocated blocks") and number.isdigit():
            out["pymalloc_used"] = int(number)
    return out


def task_count() -> int:
    """Tasks alive in this process's event loop."""
    if sniffio.current_async_library() == "trio":
        import trio

        count = 0
        stack = [trio.lowlevel.current_root_task()]
        while stack:
            task = stack.pop()
            count += 1
            for nursery in task.child_nurseries:
                stack.extend(nursery.child_tasks)
        return count
    import asyncio

    return len(asyncio.all_tasks())


@ws_controller("/soak/{room}")
class SoakGateway:
    def __init__(self, rooms: BroadcastGroup) -> None:
        self.rooms = rooms

    @on_connect
    async def join(self, ws: WebSocket, room: str) -> None:
        await self.rooms.subscribe(room, ws)

    @on_message("echo")
    async def echo(self, body: Json[Any]) -> Any:
        return body

    @on_message("shout")
    async def shout(self, room: str, body: Json[Any]) -> None:
        await self.rooms.broadcast(room, {"event": "shout", "data": body})


_snapshots: list[tracemalloc.Snapshot] = []
_types: list[collections.Counter[str]] = []


@ws_controller("/control")
class ControlGateway:
    def __init__(self, rooms: BroadcastGroup) -> None:
        self.rooms = rooms

    @on_message("stats")
    async def stats(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "rss_kib": rss_kib(),
            "tasks": task_count(),
            "gc_objects": len(gc.get_objects()),
            **heap(),
            **_APP.stats.as_dict(),
            **{f"bc_{k}": v for k, v in self.rooms.stats.as_dict().items()},
        }

    @on_message("gc_types")
    async def gc_types(self) -> list[tuple[str, int]]:
        """Live objects by type; the change since the previous call (top 25)."""
        gc.collect()
        now = collections.Counter(type(o).__qualname__ for o in gc.get_objects())
        before = _types[-1] if _types else collections.Counter()
        _types.append(now)
        diff = collections.Counter({k: now[k] - before.get(k, 0) for k in now})
        return [(k, v) for k, v in diff.most_common(25) if v]

    @on_message("trace_start")
    async def trace_start(self) -> bool:
        tracemalloc.start(4)
        return True

    @on_message("snapshot")
    async def snapshot(self) -> bool:
        if not tracemalloc.is_tracing():
            return False
        gc.collect()
        _snapshots.append(tracemalloc.take_snapshot())
        return True

    @on_message("snapshot_diff")
    async def snapshot_diff(self) -> list[str]:
        """The 25 allocation sites that grew most between the last two snapshots."""
        if len(_snapshots) < 2:
            return []
        filters = [tracemalloc.Filter(False, tracemalloc.__file__)]
        old, new = (s.filter_traces(filters) for s in _snapshots[-2:])
        stats = new.compare_to(old, "traceback")
        total = sum(stat.size_diff for stat in stats)
        out = [f"traced memory {total:+d} B in all"]
        for stat in stats[:25]:
            frames = " <- ".join(
                f"{f.filename.rsplit('/', 2)[-1]}:{f.lineno}" for f in stat.traceback[:6]
            )
            out.append(f"{stat.size_diff:+d} B {stat.count_diff:+d} blocks: {frames}")
        return out

    @on_message("trim")
    async def trim(self) -> dict[str, int]:
        """RSS before and after glibc's malloc_trim(0) (returns freed heap to the OS)."""
        gc.collect()
        before = rss_kib()
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except OSError:
            return {"before": before, "after": -1}
        return {"before": before, "after": rss_kib()}


_APP = app = App(gateways=[SoakGateway, ControlGateway])
