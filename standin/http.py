"""The HTTP plumbing that the stand-ins of outside systems share: a server on a free loopback port, in a thread
of its own, handing each request to the stand-in."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Handle = Callable[[BaseHTTPRequestHandler, str], None]


class LocalServer:
    """`handle(request, method)` answers each request; `keep_alive` speaks HTTP/1.1 (the handler must then send
    Content-Length), without Nagle's wait for the client's delayed ACK between headers and body."""

    def __init__(self, handle: Handle, *, methods: Iterable[str] = ("GET", "POST"), keep_alive: bool = False) -> None:
        def route(method: str) -> Callable[[BaseHTTPRequestHandler], None]:
            return lambda request: handle(request, method)

        attributes: dict[str, Any] = {f"do_{method}": route(method) for method in methods}
        attributes["log_message"] = lambda request, *args: None
        if keep_alive:
            attributes |= {"protocol_version": "HTTP/1.1", "disable_nagle_algorithm": True}
        handler = type("Handler", (BaseHTTPRequestHandler,), attributes)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
