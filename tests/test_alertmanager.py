"""A real Alertmanager (Debian's prometheus-alertmanager) sends its webhooks to the real bot (SPEC §13.3).

Alerts are pushed through Alertmanager's API v2; Alertmanager groups them and notifies the bot, which keeps one
triage message per group in the fake Slack. Skipped outside CI when the binary is missing (`.ci/run` installs it)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.hooks import WEBHOOK_TOKEN
from tests.test_alerts import AlertBot, alert_bot, buttons, text_of

pytestmark = pytest.mark.e2e

BINARY = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
def alertmanager_config(webhook_url: str) -> str:
    """Alertmanager's configuration: short group_wait/group_interval, the bot as the webhook receiver, and a
    second receiver (for alerts of team "elsewhere") that sends the wrong token."""

    def receiver(name: str, token: str) -> dict[str, Any]:
        webhook = {"url": webhook_url, "send_resolved": True,
                   "http_config": {"authorization": {"type": "Bearer", "credentials": token}}}  # fmt: skip
        return {"name": name, "webhook_configs": [webhook]}

    elsewhere = {"receiver": "wrong-token", "matchers": ['team="elsewhere"']}
    route = {"receiver": "sitrep", "group_by": ["alertname"], "group_wait": "1s", "group_interval": "2s",
             "repeat_interval": "1h", "routes": [elsewhere]}  # fmt: skip
    receivers = [receiver("sitrep", WEBHOOK_TOKEN), receiver("wrong-token", "not-the-token-0123456789")]
    return yaml.safe_dump({"route": route, "receivers": receivers})


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], Any], *, timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll until `check()` is truthy (Alertmanager works on its own timers); fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class Alertmanager:
    def __init__(self, tmp: Path, webhook_url: str) -> None:
        assert BINARY is not None
        self.port = _free_port()
        config = tmp / "alertmanager.yml"
        config.write_text(alertmanager_config(webhook_url))
        self.log = (tmp / "alertmanager.log").open("w")
        self.process = subprocess.Popen(
            [BINARY, f"--config.file={config}", f"--storage.path={tmp / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address="],
            stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_for(self.ready, timeout=20, what="Alertmanager to be ready")

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def push(self, *alerts: dict[str, Any]) -> None:
        """POST /api/v2/alerts, as Prometheus does."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/api/v2/alerts", data=json.dumps(list(alerts)).encode(),
            headers={"Content-Type": "application/json"}, method="POST",
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def am_alert(name: str, instance: str, *, resolved: bool = False, **labels: str) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    data: dict[str, Any] = {
        "labels": {"alertname": name, "instance": instance, "severity": "critical", **labels},
        "annotations": {"summary": f"{name} on {instance}"},
        "generatorURL": f"http://prometheus.example:9090/graph?g0.expr={name}",
    }
    if resolved:
        data["endsAt"] = now
    return data


@pytest.fixture
def alertmanager_bot(database_url: str, tmp_path: Path) -> Iterator[tuple[AlertBot, Alertmanager]]:
    if BINARY is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("prometheus-alertmanager is missing under CI (.ci/run installs it with apt-get)")
        pytest.skip("prometheus-alertmanager is not installed (apt-get install prometheus-alertmanager)")
    for bot in alert_bot(database_url):
        manager = Alertmanager(tmp_path, f"http://127.0.0.1:{bot.bot.server.port}/hooks/alertmanager")
        try:
            yield bot, manager
        finally:
            manager.stop()


def _rejected(bot: AlertBot) -> float:
    text = bot.bot.sitrep.deps.metrics.exposition().decode()
    for line in text.splitlines():
        if line.startswith("sitrep_slack_requests_total{") and 'type="alertmanager"' in line and "http_401" in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_real_alertmanager_keeps_one_triage_message_per_group(
    alertmanager_bot: tuple[AlertBot, Alertmanager],
) -> None:
    bot, manager = alertmanager_bot
    manager.push(am_alert("DiskFull", "db-1"))
    [first] = wait_for(bot.triage_messages, what="the first triage message")
    assert "*DiskFull*: DiskFull on db-1" in text_of(first) and buttons(first)

    manager.push(am_alert("DiskFull", "db-1"), am_alert("DiskFull", "db-2"), am_alert("HighLatency", "web-1"))
    wait_for(lambda: len(bot.triage_messages()) == 2, what="the second group's message")
    disk = wait_for(
        lambda: next((m for m in bot.triage_messages() if "2 of 2 alerts firing" in text_of(m)), None),
        what="the DiskFull message to show both alerts",
    )
    assert disk["ts"] == first["ts"] and "edited" in disk and "instance=db-2" in text_of(disk)

    manager.push(am_alert("DiskFull", "db-1", resolved=True), am_alert("DiskFull", "db-2", resolved=True))
    done = wait_for(
        lambda: next((m for m in bot.triage_messages() if m["ts"] == first["ts"] and "*Resolved*" in text_of(m)), None),
        what="the DiskFull group to be resolved",
    )
    assert buttons(done) == []
    bot.bot.idle()
    posts = [c for c in bot.bot.fake.calls_to("chat.postMessage") if c.args.get("channel") == bot.triage]
    assert len(posts) == 2 and len(bot.triage_messages()) == 2  # one per group, edited, never posted again


def test_a_receiver_with_the_wrong_token_is_refused(alertmanager_bot: tuple[AlertBot, Alertmanager]) -> None:
    bot, manager = alertmanager_bot
    manager.push(am_alert("Elsewhere", "x-1", team="elsewhere"))
    wait_for(lambda: _rejected(bot) >= 1, what="Alertmanager's notification with the wrong token to be refused")
    bot.bot.idle()
    assert bot.triage_messages() == []
