"""The target applications of the server benchmarks (``benchmarks/servers_bench.py``).

Each module exposes ASGI apps that the server launcher (``benchmarks/_serve.py``) loads
by ``module:attribute``. They all speak the same workload:

``/echo``
    A client sends ``{"event":"echo","data":{"room":"lobby","text":"hello world","n":42},"id":n}``
    and waits for ``{"event":"echo","id":n,"data":{...the same object...}}`` (the bare
    echo floor sends the frame back unchanged; python-socketio, driven with raw
    Socket.IO v4 packets, receives ``421["echo",{...}]`` and answers the ack
    ``431[{...}]``).
``/sub``
    Every connection joins the room ``"room"`` (python-socketio: a Socket.IO connection
    whose query string says ``role=sub``).
``/pub``
    The publisher sends ``{"event":"publish","data":{"t":...,"s":...,"p":"xx..."}}``
    (python-socketio: ``42["publish",{...}]``) and the server broadcasts
    ``{"event":"tick","data":{...}}`` (python-socketio: ``42["tick",{...}]``) to every
    member of the room, encoded once.

The apps import their framework lazily: this package is only imported by the server
process, and the peers (Starlette, Litestar, python-socketio) are installed only in the
``bench`` nox session, never as dependencies of wsgate.
"""
