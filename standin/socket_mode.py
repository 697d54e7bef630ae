"""FakeSocketMode: the Socket Mode WebSocket endpoint that apps.connections.open hands out."""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any, Literal, Self

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

from .server import FakeSlack

PayloadType = Literal["slash_commands", "events_api", "interactive"]


class FakeSocketMode:
    """A WebSocket server on 127.0.0.1 speaking Slack's Socket Mode protocol.

    On connect it sends ``{"type": "hello"}``; :meth:`send_envelope` pushes an envelope to the newest
    connection, and every ``{"envelope_id": ..., "payload": ...}`` the app sends back is kept in ``acks``.
    Given a FakeSlack, it registers itself so that apps.connections.open answers with its URL.
    """

    def __init__(self, fake: FakeSlack | None = None) -> None:
        self.fake = fake
        self.acks: dict[str, dict[str, Any]] = {}
        self.sent: list[dict[str, Any]] = []
        self.received: list[Any] = []
        self._connections: list[ServerConnection] = []
        self._cond = threading.Condition()
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        self._server = serve(self._handle, "127.0.0.1", 0)
        self._thread = threading.Thread(target=self._server.serve_forever, name="fakeslack-ws", daemon=True)
        self._thread.start()
        if self.fake is not None:
            self.fake.socket_mode_url = self.url
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        for conn in list(self._connections):
            conn.close()
        self._server.shutdown()
        if self._thread:
            self._thread.join(timeout=5)
        self._server = None
        if self.fake is not None:
            self.fake.socket_mode_url = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server, "FakeSocketMode is not started"
        return f"ws://127.0.0.1:{self._server.socket.getsockname()[1]}/link"

    @property
    def connected(self) -> bool:
        with self._cond:
            return bool(self._connections)

    def _handle(self, conn: ServerConnection) -> None:
        with self._cond:
            self._connections.append(conn)
            self._cond.notify_all()
        try:
            conn.send(
                json.dumps(
                    {
                        "type": "hello",
                        "num_connections": len(self._connections),
                        "debug_info": {"host": "fakeslack"},
                        "connection_info": {"app_id": self.fake.app_id if self.fake else "A0FAKE"},
                    }
                )
            )
            for raw in conn:
                message = json.loads(raw)
                with self._cond:
                    self.received.append(message)
                    if isinstance(message, dict) and "envelope_id" in message:
                        self.acks[message["envelope_id"]] = message
                    self._cond.notify_all()
        except ConnectionClosed:
            pass
        finally:
            with self._cond:
                self._connections.remove(conn)
                self._cond.notify_all()

    def _wait(self, predicate: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no {what} within {timeout:.1f}s")
                self._cond.wait(remaining)

    def wait_for_connection(self, timeout: float = 5.0) -> None:
        self._wait(lambda: self._connections, timeout, "Socket Mode connection")

    def send_envelope(
        self,
        payload_type: PayloadType,
        payload: dict[str, Any],
        *,
        retry_attempt: int = 0,
        retry_reason: str = "",
        timeout: float = 5.0,
    ) -> str:
        """Send an envelope to the app (waiting for a connection first); return its envelope_id."""
        self.wait_for_connection(timeout)
        envelope_id = str(uuid.uuid4())
        envelope: dict[str, Any] = {
            "envelope_id": envelope_id,
            "type": payload_type,
            "payload": payload,
            "accepts_response_payload": payload_type != "events_api",
        }
        if payload_type == "events_api":
            envelope.update(retry_attempt=retry_attempt, retry_reason=retry_reason)
        with self._cond:
            conn = self._connections[-1]
            self.sent.append(envelope)
        conn.send(json.dumps(envelope))
        return envelope_id

    def wait_for_ack(self, envelope_id: str, timeout: float = 5.0) -> dict[str, Any]:
        """The app's acknowledgement ``{"envelope_id": ..., "payload": ...}`` (payload may be absent)."""
        self._wait(lambda: envelope_id in self.acks, timeout, f"ack for envelope {envelope_id}")
        return self.acks[envelope_id]

    def send_disconnect(self, reason: str = "refresh_requested") -> None:
        """Ask the app to reconnect, as Slack does every few hours."""
        self.wait_for_connection()
        with self._cond:
            conn = self._connections[-1]
        conn.send(json.dumps({"type": "disconnect", "reason": reason, "debug_info": {"host": "fakeslack"}}))
