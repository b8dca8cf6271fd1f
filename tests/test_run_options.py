"""``wsgate run``'s serving options: ``--certfile``/``--keyfile`` (wss://),
``--proxy-headers`` with ``--forwarded-allow-ips``, ``--root-path``, ``--log-level``,
``--access-log`` and ``--reload``.

The command runs for real (``tests/apps/runopts.py``: ``/who`` answers with the client
address and URL the app sees) with the server's backend equal to the test's. Clients are
the ``websockets`` library's (in a thread, so on either backend), which can send extra
headers, speak TLS and connect from another loopback address.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest
from servers import wait_for
from websockets.exceptions import WebSocketException
from websockets.sync.client import connect
from wsgate_run import RunProcess

from wsgate.cli import main
from wsgate.run import ProxyHeadersMiddleware

APP = "apps.runopts:app"


def request(
    url: str,
    event: str = "who",
    *,
    headers: dict[str, str] | None = None,
    ssl_context: ssl.SSLContext | None = None,
    source: str | None = None,
) -> Any:
    """Open ``url``, send ``event`` and return the answer's data (blocking: run it in a
    thread)."""
    sock = None
    if source is not None:
        import socket

        host, _, port = url.split("/")[2].rpartition(":")
        sock = socket.create_connection((host, int(port)), timeout=10, source_address=(source, 0))
    with connect(
        url, ssl=ssl_context, additional_headers=headers, sock=sock, open_timeout=10
    ) as ws:
        ws.send(json.dumps({"event": event, "data": None, "id": 1}))
        while True:
            frame = json.loads(ws.recv(timeout=10))
            if frame.get("id") == 1:
                return frame["data"]


async def ask(url: str, event: str = "who", **kwargs: Any) -> Any:
    return await anyio.to_thread.run_sync(lambda: request(url, event, **kwargs))


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (PEM), made by openssl."""
    openssl = shutil.which("openssl") or "/usr/bin/openssl"
    if not os.path.exists(openssl):
        pytest.skip("no openssl command to make a certificate with")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


async def test_tls_serves_wss(
    tmp_path: Path, anyio_backend_name: str, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    options = ["--backend", anyio_backend_name, "--certfile", str(cert), "--keyfile", str(key)]
    with RunProcess(tmp_path, APP, options) as run:
        log = await anyio.to_thread.run_sync(run.wait_ready)
        assert f"listening on https://127.0.0.1:{run.port}" in log
        trusting = ssl.create_default_context(cafile=str(cert))
        w = await ask(f"wss://127.0.0.1:{run.port}/who", ssl_context=trusting)
        assert w["url"] == f"wss://127.0.0.1:{run.port}/who"
        # A client that does not trust the certificate is refused by its own TLS.
        with pytest.raises(ssl.SSLCertVerificationError):
            await ask(f"wss://127.0.0.1:{run.port}/who", ssl_context=ssl.create_default_context())
        assert await anyio.to_thread.run_sync(run.stop) == 0
    # No access log unless asked for.
    assert '"GET /who' not in run.log()


def test_a_certificate_that_does_not_load_is_refused_at_once(tmp_path: Path) -> None:
    bad = tmp_path / "cert.pem"
    bad.write_text("not a certificate")
    with pytest.raises(SystemExit, match="cannot load the TLS certificate .* PEM files"):
        main(["run", APP, "--certfile", str(bad), "--bind", "127.0.0.1:0"])
    with pytest.raises(SystemExit, match="--keyfile goes with --certfile"):
        main(["run", APP, "--keyfile", str(bad), "--bind", "127.0.0.1:0"])


async def test_proxy_headers_from_a_trusted_proxy_give_the_client_address(
    tmp_path: Path, anyio_backend_name: str
) -> None:
    options = [
        "--backend", anyio_backend_name, "--access-log",
        "--proxy-headers", "--forwarded-allow-ips", "127.0.0.1,10.0.0.0/8",
    ]  # fmt: skip
    headers = {"X-Forwarded-For": "203.0.113.7, 10.1.2.3", "X-Forwarded-Proto": "https"}
    with RunProcess(tmp_path, APP, options) as run:
        await anyio.to_thread.run_sync(run.wait_ready)
        url = f"ws://127.0.0.1:{run.port}/who"
        # From 127.0.0.1, a trusted proxy: the rightmost untrusted address of the chain
        # (10.1.2.3 is a trusted proxy too) and the scheme the proxy's client used.
        trusted = await ask(url, headers=headers)
        assert trusted["client"] == ["203.0.113.7", 0]
        assert trusted["url"].startswith("wss://")
        # The access log names the same client.
        await anyio.to_thread.run_sync(lambda: run.wait_line(r'203\.0\.113\.7:0 - - .*"GET /who'))
        # From 127.0.0.2, which is no trusted proxy: its headers are ignored.
        untrusted = await ask(url, headers=headers, source="127.0.0.2")
        assert untrusted["client"][0] == "127.0.0.2"
        assert untrusted["url"].startswith("ws://")
        assert await anyio.to_thread.run_sync(run.stop) == 0


async def test_root_path_is_the_prefix_the_app_is_served_under(
    tmp_path: Path, anyio_backend_name: str
) -> None:
    options = ["--backend", anyio_backend_name, "--root-path", "/api"]
    with RunProcess(tmp_path, APP, options) as run:
        log = await anyio.to_thread.run_sync(run.wait_ready)
        assert f"listening on http://127.0.0.1:{run.port}/api;" in log
        w = await ask(f"ws://127.0.0.1:{run.port}/api/who", headers={"X-Forwarded-For": "1.2.3.4"})
        assert w["path"] == "/who"
        assert w["url"] == f"ws://127.0.0.1:{run.port}/api/who"
        # Without --proxy-headers, X-Forwarded-For means nothing.
        assert w["client"][0] == "127.0.0.1"
        assert await anyio.to_thread.run_sync(run.stop) == 0


async def test_access_log_has_a_line_per_handshake(tmp_path: Path, anyio_backend_name: str) -> None:
    with RunProcess(tmp_path, APP, ["--backend", anyio_backend_name, "--access-log"]) as run:
        await anyio.to_thread.run_sync(run.wait_ready)
        await ask(f"ws://127.0.0.1:{run.port}/who")
        await ask(f"ws://127.0.0.1:{run.port}/who")
        log = await anyio.to_thread.run_sync(
            lambda: run.wait_line(r'127\.0\.0\.1:\d+ - - \[.*\] "GET /who 1\.1" 101', count=2)
        )
        assert "Running on" in log  # info level by default
        assert await anyio.to_thread.run_sync(run.stop) == 0


async def test_log_level_warning_omits_the_info_lines(
    tmp_path: Path, anyio_backend_name: str
) -> None:
    options = ["--backend", anyio_backend_name, "--access-log", "--log-level", "warning"]
    with RunProcess(tmp_path, APP, options) as run:
        url = f"ws://127.0.0.1:{run.port}/who"

        async def answers() -> bool:
            try:
                return bool(await ask(url))
            except OSError:
                return False

        await wait_for(answers, timeout=20, what="the server to answer")
        assert await anyio.to_thread.run_sync(run.stop) == 0
    log = run.log()
    for info in ("listening on", "workers ready", "Running on", '"GET /who', "stopped"):
        assert info not in log, log


RELOADED = """
from wsgate import App, on_message, ws_controller

VERSION = {version}


@ws_controller("/v")
class V:
    @on_message("version")
    async def version(self) -> int:
        return VERSION


app = App(gateways=[V])
"""


async def test_reload_restarts_the_worker_when_a_source_file_changes(
    tmp_path: Path, anyio_backend_name: str
) -> None:
    source = tmp_path / "reloadme.py"

    def write(text: str) -> None:
        mtime = source.stat().st_mtime if source.exists() else 0.0
        source.write_text(text)
        os.utime(source, (mtime + 2, mtime + 2))  # a new mtime even on a coarse clock

    write(RELOADED.format(version=1))
    options = ["--backend", anyio_backend_name, "--reload"]
    with RunProcess(tmp_path, "reloadme:app", options, cwd=tmp_path, pythonpath=[tmp_path]) as run:
        await anyio.to_thread.run_sync(run.wait_ready)
        url = f"ws://127.0.0.1:{run.port}/v"
        assert await ask(url, "version") == 1

        def serving(version: int) -> Any:
            async def check() -> bool:
                try:
                    return bool(await ask(url, "version") == version)
                except (OSError, WebSocketException):  # restarting
                    return False

            return check

        write(RELOADED.format(version=2))
        await wait_for(serving(2), timeout=15, what="version 2")
        assert "reloadme.py changed: restarting the workers" in run.log()
        # A change that breaks the app: the worker cannot start, the command waits for
        # the next change instead of exiting.
        write("this is not python\n")
        await anyio.to_thread.run_sync(
            lambda: run.wait_line("before it was ready: waiting for a change to restart it")
        )
        write(RELOADED.format(version=3))
        await wait_for(serving(3), timeout=15, what="version 3")
        assert await anyio.to_thread.run_sync(run.stop) == 0


def test_reload_takes_one_worker() -> None:
    with pytest.raises(SystemExit, match="--reload runs one worker"):
        main(["run", APP, "--reload", "--workers", "2"])


def test_malformed_options_say_how_to_fix_them() -> None:
    with pytest.raises(SystemExit, match="--forwarded-allow-ips takes addresses or networks"):
        main(["run", APP, "--proxy-headers", "--forwarded-allow-ips", "10.0.0.0/8,proxy"])
    with pytest.raises(SystemExit, match="--root-path starts with /"):
        main(["run", APP, "--root-path", "api"])


async def test_proxy_headers_middleware_follows_the_trusted_chain() -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(dict(scope))

    async def call(mw: ProxyHeadersMiddleware, scope_type: str, peer: str, *headers: Any) -> Any:
        await mw(
            {"type": scope_type, "scheme": "ws", "client": (peer, 5000), "headers": list(headers)},
            None,  # type: ignore[arg-type]
            None,  # type: ignore[arg-type]
        )
        return seen[-1]["client"], seen[-1]["scheme"]

    xff = b"x-forwarded-for"
    mw = ProxyHeadersMiddleware(app, "127.0.0.1, 10.0.0.0/8")
    # Several header lines are one chain; the rightmost untrusted address is the client.
    assert await call(mw, "websocket", "127.0.0.1", (xff, b"198.51.100.1"), (xff, b"10.0.0.2")) == (
        ("198.51.100.1", 0),
        "ws",
    )
    # A chain of trusted proxies only: the leftmost.
    assert (await call(mw, "websocket", "10.9.9.9", (xff, b"10.0.0.1, 127.0.0.1")))[0] == (
        "10.0.0.1",
        0,
    )
    # X-Forwarded-Proto: https is wss for a WebSocket, stays https for HTTP.
    proto = (b"x-forwarded-proto", b"https")
    assert (await call(mw, "websocket", "127.0.0.1", proto))[1] == "wss"
    assert (await call(mw, "http", "127.0.0.1", proto))[1] == "https"
    # An untrusted peer's headers change nothing; "*" trusts any peer.
    assert await call(mw, "websocket", "192.0.2.1", (xff, b"1.1.1.1"), proto) == (
        ("192.0.2.1", 5000),
        "ws",
    )
    anyone = ProxyHeadersMiddleware(app, "*")
    assert (await call(anyone, "websocket", "192.0.2.1", (xff, b"1.1.1.1")))[0] == ("1.1.1.1", 0)
