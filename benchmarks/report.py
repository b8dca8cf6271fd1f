"""``results/peers.md`` and ``results/peers.png`` from the latest results of each
benchmark (``results/peers-{echo,broadcast,memory}.json`` and ``results/dispatch.md``).

``python -m benchmarks.report [DIR]`` rebuilds both without running anything (from and in
DIR, as written by ``--out DIR``; results/ by default). The JSON files
are not committed (``.gitignore``): in a fresh checkout, a benchmark run alone rebuilds
the page with its own section only; ``python -m benchmarks`` rebuilds all of it. Each section
says when it was measured and with which settings; the plot shows the ratios (median
bar, min-max whiskers over the rounds) and, as dashed lines, the goals wsgate is held
to.
"""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
import subprocess
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks._common import RESULTS, markdown_table

__all__ = ["machine", "write"]

ROOT = Path(__file__).resolve().parent.parent
DISTS = (
    "wsgate",
    "anyio",
    "msgspec",
    "trio",
    "hypercorn",
    "wsproto",
    "uvicorn",
    "websockets",
    "h11",
    "starlette",
    "litestar",
    "python-socketio",
    "python-engineio",
    "matplotlib",
)
KIND_ORDER = {"hypercorn-trio": 0, "hypercorn-asyncio": 1, "uvicorn": 2}
TARGET_ORDER = {
    "bare ASGI echo": 0,
    "bare ASGI + JSON": 1,
    "wsgate": 2,
    "Starlette": 3,
    "Litestar": 4,
    "python-socketio": 5,
}
COLORS = {
    "bare ASGI echo": "#999999",
    "bare ASGI + JSON": "#bbbbbb",
    "wsgate": "#d62728",
    "Starlette": "#1f77b4",
    "Litestar": "#9467bd",
    "python-socketio": "#2ca02c",
}
SHORT = {"hypercorn-trio": "trio", "hypercorn-asyncio": "asyncio", "uvicorn": "uvicorn"}
# Goals wsgate is held to (see DESIGN.md and the benchmark's brief).
ECHO_GOAL = 0.85
FANOUT_GOAL = 3.0
ISOLATION_GOAL = 0.9
RSS_GOAL_MB = 50.0
MEMORY_GOAL_KIB = 4.0
STARLETTE_GOAL = 1.0
#: echo servers held to ECHO_GOAL (uvicorn's rows are shown, with no such goal)
ECHO_GOAL_KINDS = ("hypercorn-trio", "hypercorn-asyncio")
#: the window of the slow-consumer runs (and of the fan-out JSON written before the
#: window was varied)
STALL_WINDOW = 4
#: tick sizes the fan-out goals are set for (2,048 B runs belong to the slow consumer)
FANOUT_GOAL_SIZES = (64, 256)


def machine() -> dict[str, Any]:
    """Cores, CPU model, Python, library versions, git revision, load at start."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for dist in DISTS:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    try:
        rev = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        rev = ""
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": f"{platform.python_version()} ({platform.python_implementation()})",
        "platform": f"{platform.system()} {platform.release()} {platform.machine()}",
        "versions": versions,
        "git": rev,
        "loadavg": os.getloadavg(),
    }


def machine_line(m: dict[str, Any]) -> str:
    """:func:`machine` as one line for a results page."""
    v = ", ".join(f"{k} {val}" for k, val in m["versions"].items() if val)
    return (
        f"{m['cpus']} CPUs ({m['cpu_model']}), {m['platform']}, Python {m['python']}; {v}; "
        f"wsgate at git `{m['git']}`; load average at start "
        + "/".join(f"{x:.1f}" for x in m["loadavg"])
    )


# --------------------------------------------------------------------------- summaries


def _values(row: dict[str, Any], key: str) -> list[float]:
    return [v for v in row.get(key, []) if v is not None]


def _med(row: dict[str, Any], key: str) -> float | None:
    vals = _values(row, key)
    return statistics.median(vals) if vals else None


def _cell(row: dict[str, Any], key: str, spec: str, rng: bool = True) -> str:
    vals = _values(row, key)
    if not vals:
        return "n/a"
    med = f"{statistics.median(vals):{spec}}"
    if not rng or len(vals) < 2:
        return med
    return f"{med} ({min(vals):{spec}}-{max(vals):{spec}})"


def _load(name: str, folder: Path = RESULTS) -> dict[str, Any] | None:
    """``peers-<name>.json`` from ``folder``, with rows from earlier versions completed:
    fan-out rows without a ``window`` ran at 4 broadcasts in flight; echo rows without a
    ``vs_starlette`` get it from the two rate lists, round by round, when both have one
    value per round (no failed run)."""
    path = folder / f"peers-{name}.json"
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    if name == "broadcast":
        for r in data["rows"]:
            r.setdefault("window", STALL_WINDOW)
    if name == "echo":
        rates = {(r["kind"], r["conns"], r["target"]): r.get("rate", []) for r in data["rows"]}
        rounds = data.get("settings", {}).get("rounds")
        for r in data["rows"]:
            if "vs_starlette" in r:
                continue
            mine = r.get("rate", [])
            theirs = rates.get((r["kind"], r["conns"], "Starlette"), [])
            if len(mine) == len(theirs) == rounds:
                r["vs_starlette"] = [
                    a / b if a is not None and b else None
                    for a, b in zip(mine, theirs, strict=True)
                ]
    return data


def _sorted(rows: list[dict[str, Any]], *keys: str) -> list[dict[str, Any]]:
    def key(r: dict[str, Any]) -> tuple[Any, ...]:
        out: list[Any] = []
        for k in keys:
            v = r[k]
            if k == "kind":
                v = KIND_ORDER.get(v, 9)
            elif k == "target":
                v = TARGET_ORDER.get(v, 9)
            out.append(v)
        return tuple(out)

    return sorted(rows, key=key)


def _settings(data: dict[str, Any]) -> str:
    s = ", ".join(f"{k} {v}" for k, v in data["settings"].items())
    return f"Measured {data['date']} ({data['seconds']} s; {s})."


def _failures(data: dict[str, Any]) -> list[str]:
    if not data.get("failures"):
        return []
    return ["", "Failures and server errors:", "", *(f"- {f}" for f in data["failures"])]


# --------------------------------------------------------------------------- tables


def echo_section(data: dict[str, Any]) -> list[str]:
    rows = []
    for r in _sorted(data["rows"], "kind", "conns", "target"):
        rows.append(
            [
                r["kind"],
                str(r["conns"]),
                r["target"],
                _cell(r, "rate", ",.0f"),
                _cell(r, "ratio", ".2f"),
                _cell(r, "vs_starlette", ".2f"),
                _cell(r, "server_cpu_us", ".0f", rng=False),
                _cell(r, "client_cpu", ".2f", rng=False),
            ]
        )
    header = ["server", "conns", "target", "round trips/s", "ratio to floor", "vs Starlette"]
    return [
        "## 1. Echo round trips",
        "",
        _settings(data)
        + " *vs Starlette*: round trips/s over Starlette's on the same server, per round.",
        "",
        markdown_table([*header, "server µs/rt", "client CPU"], rows, left=3),
        *_failures(data),
    ]


def fanout_section(data: dict[str, Any]) -> list[str]:
    rows = []
    base = [r for r in data["rows"] if not r["stall"]]
    for r in _sorted(base, "size", "window", "kind", "target"):
        rows.append(
            [
                f"{r['size']:,} B",
                str(r["window"]),
                r["kind"],
                r["target"],
                _cell(r, "rate", ",.0f"),
                _cell(r, "vs_socketio", ".2f"),
                _cell(r, "p50_ms", ".0f", rng=False),
                _cell(r, "p99_ms", ".0f"),
                _cell(r, "server_cpu_us", ".1f"),
                _cell(r, "cpu_vs_naive", ".2f"),
                _cell(r, "client_cpu", ".2f", rng=False),
            ]
        )
    s = data["settings"]
    header = ["tick", "window", "server", "target", "delivered/s", "x python-socketio"]
    return [
        "## 2. Fan-out",
        "",
        _settings(data)
        + f" {s['members']:,} members, no stalled member; *window*: broadcasts in flight."
        + " The 2,048 B rows are the slow consumer's runs without the stalled member (no"
        + " goal of their own).",
        "",
        markdown_table(
            [*header, "p50 ms", "p99 ms", "server µs/frame", "CPU vs naive", "client CPU"],
            rows,
            left=4,
        ),
    ]


def start_section(data: dict[str, Any]) -> list[str]:
    rows = []
    for r in _sorted(data["rows"], "kind", "start", "target"):
        rows.append(
            [
                r["kind"],
                r["start"],
                r["target"],
                _cell(r, "rate", ",.0f"),
                _cell(r, "p99_ms", ".0f"),
                _cell(r, "server_cpu_us", ".1f"),
                _cell(r, "cpu_vs_naive", ".2f"),
            ]
        )
    s = data["settings"]
    return [
        "## 2b. Fan-out from a primed and an unprimed start",
        "",
        _settings(data)
        + f" {s['members']:,} members, {s['size']:,} B ticks, window {s['window']}; *unprimed*:"
        + f" {s['unprimed broadcasts']} broadcasts from the first frame, to members that never"
        + " received one, all measured; *primed*: as in section 2.",
        "",
        markdown_table(
            [
                *("server", "start", "target", "delivered/s", "p99 ms"),
                *("server µs/frame", "CPU vs naive"),
            ],
            rows,
            left=3,
        ),
        *_failures(data),
    ]


def slow_section(data: dict[str, Any]) -> list[str]:
    by_key = {(r["kind"], r["target"], r["size"], r["window"], r["stall"]): r for r in data["rows"]}
    rows = []
    keys = sorted(
        {(r["kind"], r["target"], r["size"], r["window"]) for r in data["rows"] if r["stall"]},
        key=lambda k: (k[2], k[3], KIND_ORDER.get(k[0], 9), TARGET_ORDER.get(k[1], 9)),
    )
    windows = sorted({k[3] for k in keys})
    for kind, target, size, window in keys:
        off = by_key.get((kind, target, size, window, False), {})
        on = by_key.get((kind, target, size, window, True), {})
        rows.append(
            [
                f"{size:,} B",
                kind,
                target,
                _cell(off, "rate", ",.0f", rng=False),
                _cell(on, "rate", ",.0f", rng=False),
                _cell(on, "vs_no_stall", ".2f"),
                _cell(off, "peak_rss_mb", ".0f", rng=False),
                _cell(on, "peak_rss_mb", ".0f", rng=False),
                _cell(on, "peak_rss_delta_mb", "+.1f"),
            ]
        )
    header = ["tick", "server", "target", "delivered/s", "with stalled member", "others keep"]
    return [
        "## 3. Slow consumer",
        "",
        _settings(data)
        + " One extra member with SO_RCVBUF 4 KiB that never reads after the handshake; "
        + f"{'/'.join(map(str, windows))} broadcasts in flight.",
        "",
        markdown_table(
            [*header, "peak RSS MB", "with stalled", "peak RSS Δ MB"],
            rows,
            left=3,
        ),
        *_failures(data),
    ]


def memory_section(data: dict[str, Any]) -> list[str]:
    rows = []
    for r in _sorted(data["rows"], "kind", "target"):
        rows.append([r["kind"], r["target"], _cell(r, "kib", ".1f"), _cell(r, "over_bare", "+.1f")])
    return [
        "## 4. Memory per idle connection",
        "",
        _settings(data),
        "",
        markdown_table(["server", "target", "KiB/conn", "over bare KiB"], rows, left=2),
        *_failures(data),
    ]


def _dispatch_md(folder: Path) -> Path:
    """``dispatch.md`` in ``folder``, else the one in results/."""
    path = folder / "dispatch.md"
    return path if path.exists() else RESULTS / "dispatch.md"


def dispatch_section(folder: Path = RESULTS) -> list[str]:
    path = _dispatch_md(folder)
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    table = [ln for ln in lines if ln.startswith("|")]
    intro = next((ln for ln in lines if ln.startswith("`python -m benchmarks.dispatch")), "")
    return [
        "## 5. Dispatch hot path (in process)",
        "",
        intro + " From `results/dispatch.md`.",
        "",
        *table,
    ]


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("yes" if ok else "**no**")


def _judge(row: dict[str, Any], key: str, ok: Callable[[float], bool]) -> str:
    m = _med(row, key)
    return _verdict(None if m is None else ok(m))


def goals(
    echo: dict[str, Any] | None, bc: dict[str, Any] | None, mem: dict[str, Any] | None
) -> list[str]:
    """The goals table: one row per goal and case, numbered as in the project's goals
    (1 echo, 2 fan-out, 3 idle memory, 4 slow consumer); *met* is judged on the median
    over the rounds."""
    rows: list[list[str]] = []
    if echo:
        mine = _sorted([r for r in echo["rows"] if r["target"] == "wsgate"], "kind", "conns")
        for r in mine:
            held = r["kind"] in ECHO_GOAL_KINDS
            rows.append(
                [
                    "1",
                    f"echo, {r['kind']}, {r['conns']} conns: ratio to the bare ASGI floor",
                    f">= {ECHO_GOAL}" if held else "none (uvicorn has no 0.85 goal; for reference)",
                    _cell(r, "ratio", ".2f"),
                    _judge(r, "ratio", lambda m: m >= ECHO_GOAL) if held else "n/a",
                ]
            )
        for r in mine:
            rows.append(
                [
                    "1",
                    f"echo, {r['kind']}, {r['conns']} conns: round trips/s over Starlette's",
                    f"> {STARLETTE_GOAL:.1f} (ahead of Starlette)",
                    _cell(r, "vs_starlette", ".2f"),
                    _judge(r, "vs_starlette", lambda m: m > STARLETTE_GOAL),
                ]
            )
    if bc:
        gc_mode = bc["settings"].get("server GC", "default")
        fan = _sorted(
            [r for r in bc["rows"] if r["target"] == "wsgate" and not r["stall"]],
            "size",
            "window",
            "kind",
        )
        for r in fan:
            if r["kind"] not in ECHO_GOAL_KINDS or r["size"] not in FANOUT_GOAL_SIZES:
                continue
            case = f"fan-out 1,000, {r['size']:,} B, window {r['window']}, {r['kind']}"
            rows.append(
                [
                    "2",
                    f"{case}: server CPU per frame over the Starlette naive loop's",
                    "<= 1.0, default GC",
                    _cell(r, "cpu_vs_naive", ".2f")
                    + ("" if gc_mode == "default" else f" (server GC {gc_mode})"),
                    _judge(r, "cpu_vs_naive", lambda m: m <= 1.0)
                    if gc_mode == "default"
                    else "n/a",
                ]
            )
            if r["kind"] == "hypercorn-asyncio":
                rows.append(
                    [
                        "2",
                        f"{case}: delivered/s over python-socketio's",
                        f">= {FANOUT_GOAL:.0f}",
                        _cell(r, "vs_socketio", ".2f"),
                        _judge(r, "vs_socketio", lambda m: m >= FANOUT_GOAL),
                    ]
                )
    if mem:
        for r in _sorted([r for r in mem["rows"] if r["target"] == "wsgate"], "kind"):
            rows.append(
                [
                    "3",
                    f"idle memory, {r['kind']}: KiB per connection over the bare ASGI app",
                    f"<= {MEMORY_GOAL_KIB:.0f} KiB",
                    _cell(r, "over_bare", "+.1f") + " KiB",
                    _judge(r, "over_bare", lambda m: m <= MEMORY_GOAL_KIB),
                ]
            )
    if bc:
        slow = [r for r in bc["rows"] if r["target"] == "wsgate" and r["stall"]]
        for r in _sorted(slow, "size", "window", "kind"):
            m = _med(r, "vs_no_stall")
            d = _med(r, "peak_rss_delta_mb")
            rows.append(
                [
                    "4",
                    f"slow consumer, {r['size']:,} B, window {r['window']}, {r['kind']}: "
                    "others' delivered/s kept; peak RSS growth",
                    f">= {ISOLATION_GOAL}; +{RSS_GOAL_MB:.0f} MB at most",
                    f"{_cell(r, 'vs_no_stall', '.2f')}; {_cell(r, 'peak_rss_delta_mb', '+.1f')} MB",
                    _verdict(
                        None if m is None or d is None else m >= ISOLATION_GOAL and d <= RSS_GOAL_MB
                    ),
                ]
            )
    if not rows:
        return []
    return [
        "## wsgate against its goals",
        "",
        "*met* is judged on the median over the rounds; *measured*: median (min-max).",
        "",
        markdown_table(["#", "figure", "goal", "measured", "met"], rows, left=3),
    ]


# --------------------------------------------------------------------------- plot


def _bars(
    ax: Any,
    groups: Sequence[str],
    series: dict[str, list[tuple[float, float, float] | None]],
    values: bool = False,
) -> None:
    """Grouped bars: ``series[label][i]`` = (median, min, max) for group i, or None;
    ``values`` writes each median above its bar."""
    n = max(len(series), 1)
    width = 0.8 / n
    for j, (label, vals) in enumerate(series.items()):
        xs, ys, lo, hi = [], [], [], []
        for i, v in enumerate(vals):
            if v is None:
                continue
            xs.append(i - 0.4 + width * (j + 0.5))
            ys.append(v[0])
            lo.append(v[0] - v[1])
            hi.append(v[2] - v[0])
        color = COLORS.get(label.split(" (")[0], None)
        ax.bar(xs, ys, width, label=label, color=color, yerr=[lo, hi], capsize=2, ecolor="black")
        if values:
            for x, y in zip(xs, ys, strict=True):
                ax.text(x, y, f"{y:.2f}", ha="center", va="bottom", fontsize=6)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups, fontsize=7)
    ax.tick_params(axis="y", labelsize=7)


def _triple(row: dict[str, Any] | None, key: str) -> tuple[float, float, float] | None:
    if row is None:
        return None
    vals = _values(row, key)
    if not vals:
        return None
    return statistics.median(vals), min(vals), max(vals)


def _goal(ax: Any, y: float, text: str) -> None:
    ax.axhline(y, color="#d62728", linestyle="--", linewidth=0.8)
    ax.text(ax.get_xlim()[1], y, f" {text}", color="#d62728", fontsize=6, va="bottom", ha="right")


def _dispatch_ratios(folder: Path = RESULTS) -> list[tuple[str, tuple[float, float, float]]]:
    path = _dispatch_md(folder)
    if not path.exists():
        return []
    out = []
    pat = re.compile(r"([\d.]+) \(([\d.]+)-([\d.]+)\)\s*\|\s*$")
    for line in path.read_text().splitlines():
        m = pat.search(line)
        if not line.startswith("|") or m is None:
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        label = cells[0] + ("" if cells[1] == "-" else f" ({cells[1]})")
        out.append((label, (float(m[1]), float(m[2]), float(m[3]))))
    return out


def plot(
    echo: dict[str, Any] | None,
    bc: dict[str, Any] | None,
    mem: dict[str, Any] | None,
    path: Path,
    folder: Path = RESULTS,
) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot")
        return None
    fig, axes = plt.subplots(3, 2, figsize=(13, 13))
    (a_echo, a_fan), (a_cpu, a_slow), (a_mem, a_disp) = axes

    if echo:
        idx = {(r["kind"], r["conns"], r["target"]): r for r in echo["rows"]}
        groups = sorted(
            {(r["kind"], r["conns"]) for r in echo["rows"]},
            key=lambda g: (KIND_ORDER.get(g[0], 9), g[1]),
        )
        targets = sorted(
            {r["target"] for r in echo["rows"]} - {"bare ASGI echo"},
            key=lambda t: TARGET_ORDER.get(t, 9),
        )
        _bars(
            a_echo,
            [f"{SHORT.get(k, k)}\n{c} conns" for k, c in groups],
            {t: [_triple(idx.get((k, c, t)), "ratio") for k, c in groups] for t in targets},
        )
        a_echo.set_title("1. Echo round trips/s, ratio to the bare ASGI echo", fontsize=9)
        a_echo.axhline(1.0, color="black", linewidth=0.6)
        _goal(a_echo, ECHO_GOAL, f"wsgate goal {ECHO_GOAL} (hypercorn only)")
        a_echo.legend(fontsize=6, loc="lower left")

    if bc:
        # the fan-out panels show one case: 64 B ticks, window 4 (the titles say so)
        base = [
            r
            for r in bc["rows"]
            if r["size"] == 64 and r["window"] == STALL_WINDOW and not r["stall"]
        ]
        base = _sorted(base, "kind", "target")
        labels = [f"{SHORT.get(r['kind'], r['kind'])}\n{r['target']}" for r in base]
        for ax, key, title, goal, goal_text in (
            (
                a_fan,
                "vs_socketio",
                "2. Fan-out to 1,000 (64 B, window 4), delivered/s, ratio to python-socketio (asyncio)",
                FANOUT_GOAL,
                f"wsgate goal {FANOUT_GOAL:.0f}x",
            ),
            (
                a_cpu,
                "cpu_vs_naive",
                "2. Fan-out (64 B, window 4), server CPU per frame, ratio to Starlette naive loop",
                1.0,
                "wsgate goal: <= 1",
            ),
        ):
            for i, r in enumerate(base):
                t = _triple(r, key)
                if t is None:
                    continue
                ax.bar(
                    i,
                    t[0],
                    0.6,
                    color=COLORS.get(r["target"]),
                    yerr=[[t[0] - t[1]], [t[2] - t[0]]],
                    capsize=3,
                )
            ax.set_xticks(range(len(base)))
            ax.set_xticklabels(labels, fontsize=7)
            ax.tick_params(axis="y", labelsize=7)
            ax.set_title(title, fontsize=9)
            _goal(ax, goal, goal_text)
        stall = [r for r in bc["rows"] if r["stall"] and r["window"] == STALL_WINDOW]
        stall = _sorted(stall, "kind", "target")
        pairs = sorted(
            {(r["kind"], r["target"]) for r in stall},
            key=lambda p: (KIND_ORDER.get(p[0], 9), TARGET_ORDER.get(p[1], 9)),
        )
        sizes = sorted({r["size"] for r in stall})
        idx2 = {(r["kind"], r["target"], r["size"]): r for r in stall}
        _bars(
            a_slow,
            [f"{SHORT.get(k, k)}\n{t}" for k, t in pairs],
            {
                f"{s:,} B ticks": [_triple(idx2.get((k, t, s)), "vs_no_stall") for k, t in pairs]
                for s in sizes
            },
            values=True,
        )
        a_slow.set_title(
            "3. Slow consumer (window 4): delivered/s to the others, ratio to the run without it",
            fontsize=9,
        )
        a_slow.axhline(1.0, color="black", linewidth=0.6)
        _goal(a_slow, ISOLATION_GOAL, f"wsgate goal {ISOLATION_GOAL}")
        a_slow.legend(fontsize=6, loc="lower left")

    if mem:
        rows = _sorted(mem["rows"], "kind", "target")
        for i, r in enumerate(rows):
            t = _triple(r, "kib")
            if t is None:
                continue
            a_mem.bar(
                i,
                t[0],
                0.6,
                color=COLORS.get(r["target"]),
                yerr=[[t[0] - t[1]], [t[2] - t[0]]],
                capsize=3,
            )
            a_mem.text(i, t[0], f"{t[0]:.1f}", ha="center", va="bottom", fontsize=6)
        a_mem.set_xticks(range(len(rows)))
        a_mem.set_xticklabels(
            [f"{SHORT.get(r['kind'], r['kind'])}\n{r['target']}" for r in rows], fontsize=7
        )
        a_mem.tick_params(axis="y", labelsize=7)
        a_mem.set_title("4. Server RSS per idle connection, KiB", fontsize=9)

    disp = _dispatch_ratios(folder)
    if disp:
        for i, (label, (m, lo, hi)) in enumerate(disp):
            color = "#d62728" if label.startswith("wsgate") else "#888888"
            a_disp.barh(i, m, 0.6, color=color, xerr=[[m - lo], [hi - m]], capsize=3)
        a_disp.set_yticks(range(len(disp)))
        a_disp.set_yticklabels([d[0] for d in disp], fontsize=7)
        a_disp.invert_yaxis()
        a_disp.tick_params(axis="x", labelsize=7)
        a_disp.set_title("5. Dispatch in process, frames/s ratio to the msgspec floor", fontsize=9)
    for ax in axes.flat:
        if not ax.has_data():
            ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------- write


def write(folder: Path = RESULTS) -> str:
    """Rebuild ``peers.md`` and ``peers.png`` in ``folder`` (results/ by default) from the
    ``peers-*.json`` there; returns a summary line."""
    echo, bc, mem = _load("echo", folder), _load("broadcast", folder), _load("memory", folder)
    latest = max((d for d in (echo, bc, mem) if d), key=lambda d: d["date"], default=None)
    parts = [
        "# wsgate and its peers under real servers",
        "",
        "Written by `python -m benchmarks` (see `benchmarks/servers_bench.py` for how to "
        "read each figure). Every ratio is computed within a round, between runs seconds "
        "apart, then summarised: median (min-max) over the rounds.",
        "",
    ]
    if latest is not None:
        parts += [f"Machine: {machine_line(latest['machine'])}.", ""]
    parts += [*goals(echo, bc, mem), ""]
    if echo:
        parts += [*echo_section(echo), ""]
    start = _load("fanout-start", folder)
    if bc:
        parts += [*fanout_section(bc), ""]
    if start:
        parts += [*start_section(start), ""]
    if bc:
        parts += [*slow_section(bc), ""]
    if mem:
        parts += [*memory_section(mem), ""]
    parts += [*dispatch_section(folder), "", "![the figures as bar charts](peers.png)", ""]
    folder.mkdir(parents=True, exist_ok=True)
    md = folder / "peers.md"
    md.write_text("\n".join(parts))
    png = plot(echo, bc, mem, folder / "peers.png", folder)
    return f"written to {md}" + (f" and {png}" if png else "")


if __name__ == "__main__":
    import sys

    print(write(Path(sys.argv[1]) if len(sys.argv) > 1 else RESULTS))
