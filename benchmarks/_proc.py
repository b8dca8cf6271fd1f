"""Reading a server's resource use from ``/proc`` (Linux): CPU time and memory of a
process and its descendants. Stdlib only: the load client imports it too."""

from __future__ import annotations

import os
import resource

__all__ = ["cpu_seconds", "peak_rss", "raise_nofile", "reset_peak_rss", "rss", "tree"]

_TICK = os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out.extend(int(c) for c in f.read().split())
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return out


def tree(pid: int) -> list[int]:
    """``pid`` and every descendant still alive (hypercorn's CLI, for one, runs its
    worker in a child process)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(_children(p))
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of the process tree of ``pid`` (10 ms resolution)."""
    ticks = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return ticks / _TICK


def _status_kib(pid: int, key: str) -> int:
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith(key):
                        total += int(line.split()[1])
                        break
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def rss(pid: int) -> int:
    """Resident set size in bytes, summed over the process tree."""
    return _status_kib(pid, "VmRSS:") * 1024


def peak_rss(pid: int) -> int:
    """Peak resident set size (VmHWM) in bytes, summed over the process tree, since the
    processes started or since :func:`reset_peak_rss`."""
    return _status_kib(pid, "VmHWM:") * 1024


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM to the current RSS (``echo 5 > /proc/PID/clear_refs``); False where
    the kernel does not allow it (then VmHWM is the peak since start)."""
    ok = True
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            ok = False
    return ok


def raise_nofile() -> int:
    """Raise this process's soft open-file limit to its hard limit; returns the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard
