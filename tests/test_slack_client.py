"""The one WebClient keeps a connection per thread open, and still behaves as slack_sdk's urllib transport:
the retry handlers see 429 and 5xx, and a connection the server closed while idle is reopened."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError

from bot.settings import Settings
from bot.slack_client import make_client


class _Slack(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.peers: list[tuple[str, int]] = []
        self.answers: list[tuple[int, dict[str, str], dict[str, Any]]] = []
        self.drop_after_answer = False
        self.calls = 0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Slack

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.peers.append(self.client_address)
        self.server.calls += 1
        status, headers, body = self.server.answers.pop(0) if self.server.answers else (200, {}, {"ok": True})
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)
        if self.server.drop_after_answer:
            self.close_connection = True  # as a server closing an idle connection: no "Connection: close"


@pytest.fixture
def slack() -> Iterator[_Slack]:
    server = _Slack()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _client(server: _Slack) -> Any:
    host, port = server.server_address[:2]
    settings = Settings(
        slack_bot_token="xoxb-test", slack_signing_secret="s", slack_api_url=f"http://{host}:{port}/api/"
    )
    return make_client(settings)


def test_calls_from_one_thread_share_one_connection(slack: _Slack) -> None:
    client = _client(slack)
    for _ in range(5):
        assert client.api_test()["ok"] is True
    assert slack.calls == 5
    assert len(set(slack.peers)) == 1


def test_each_thread_has_its_own_connection(slack: _Slack) -> None:
    client = _client(slack)
    threads = [threading.Thread(target=lambda: [client.api_test() for _ in range(3)]) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert slack.calls == 9
    assert len(set(slack.peers)) == 3


def test_a_connection_closed_by_the_server_is_reopened(slack: _Slack) -> None:
    slack.drop_after_answer = True
    client = _client(slack)
    for _ in range(3):
        assert client.api_test()["ok"] is True
    assert slack.calls == 3  # each call reached Slack exactly once
    assert len(set(slack.peers)) == 3


def test_429_is_retried_after_retry_after(slack: _Slack) -> None:
    slack.answers = [(429, {"Retry-After": "0"}, {"ok": False, "error": "ratelimited"})] * 2
    client = _client(slack)
    assert client.api_test()["ok"] is True
    assert slack.calls == 3


def test_5xx_is_retried_then_reported(slack: _Slack) -> None:
    slack.answers = [(500, {}, {"ok": False, "error": "fatal_error"})] * 3
    client = _client(slack)
    with pytest.raises(SlackApiError) as raised:
        client.api_test()
    assert raised.value.response.status_code == 500
    assert slack.calls == 3  # the first try and two retries


def test_an_error_answer_is_a_slack_api_error(slack: _Slack) -> None:
    slack.answers = [(200, {}, {"ok": False, "error": "channel_not_found"})]
    client = _client(slack)
    with pytest.raises(SlackApiError) as raised:
        client.conversations_history(channel="C1")
    assert raised.value.response["error"] == "channel_not_found"
    assert client.api_test()["ok"] is True  # the connection is still good
    assert len(set(slack.peers)) == 1
