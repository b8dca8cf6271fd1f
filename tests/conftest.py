"""Every async test runs on trio and on asyncio (the anyio pytest plugin).

``WSGATE_BACKENDS=trio`` (or ``asyncio``) narrows the run to one backend; the nox
sessions use it to run the suite once per backend.
"""

from __future__ import annotations

import os

import pytest

BACKENDS = [b.strip() for b in os.environ.get("WSGATE_BACKENDS", "trio,asyncio").split(",") if b.strip()]


@pytest.fixture(params=BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Every coroutine test runs under the anyio plugin (so on each backend above).
    for item in items:
        if isinstance(item, pytest.Function) and _is_coroutine(item.obj):
            item.add_marker(pytest.mark.anyio)


def _is_coroutine(obj: object) -> bool:
    import inspect

    return inspect.iscoroutinefunction(obj)
