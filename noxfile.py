"""Sessions: the test suite on each backend, lint and types, the examples, benchmarks.

``nox`` runs the default sessions (tests on trio, tests on asyncio, lint).
"""

from __future__ import annotations

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


def _tests(session: nox.Session, backend: str) -> None:
    session.run("python", "-m", "pytest", *session.posargs, env={"WSGATE_BACKENDS": backend})


@nox.session(python=False)
def lint(session: nox.Session) -> None:
    """ruff on everything, mypy --strict on the package."""
    session.run("python", "-m", "ruff", "check", "src", "tests", "examples", "benchmarks")
    session.run("python", "-m", "mypy", "--strict", "src")


@nox.session(python=False)
def examples(session: nox.Session) -> None:
    """Start each example under a real server and talk to it."""
    session.run("python", "-m", "pytest", "-m", "examples", *session.posargs)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """The benchmarks, wsgate side by side with its peers; results go to
    benchmarks/results/ (peers.md, peers.png). The peers (Starlette, Litestar,
    python-socketio) are installed in this session's own virtualenv only: they are never
    dependencies of wsgate. ``nox -s bench -- --quick`` for a smoke run."""
    session.install(
        "-e",
        ".[trio,hypercorn,uvicorn]",
        "starlette",
        "litestar",
        "python-socketio",
        "matplotlib",
        "websockets",
        "pydantic",  # benchmarks/dispatch.py compares with Pydantic
    )
    session.run("python", "-m", "benchmarks", *session.posargs)


@nox.session(python=False)
def soak(session: nox.Session) -> None:
    """The soak benchmark (not a default session): 1,000 connections with requests,
    broadcasts, churn and a slow consumer under hypercorn trio and asyncio, sampling the
    server's RSS and tasks; ``nox -s soak -- --minutes 3``. Results go to
    benchmarks/results/soak-*.json (findings: benchmarks/results/soak.md)."""
    session.run("python", "-m", "benchmarks.soak", *session.posargs)
