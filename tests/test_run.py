"""`sitrep run`, the Docker entry command, as a real process: migrations on start, /healthz, a signed request."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.fakeslack import FakeSlack, FakeSocketMode, SlackDriver

SITREP = str(Path(sys.executable).parent / "sitrep")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def sitrep_run(env: dict[str, str], cwd: Path) -> Iterator[int]:
    with sitrep_process(env, cwd) as (port, _process):
        yield port


@contextmanager
def sitrep_process(env: dict[str, str], cwd: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """`sitrep run` on a free port, once /healthz answers 200."""
    port = free_port()
    process = _start(env, cwd, port)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.1)
        yield port, process
    finally:
        process.terminate()
        process.wait(10)


def _start(env: dict[str, str], cwd: Path, port: int) -> subprocess.Popen[bytes]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "SITREP_", "DATABASE_URL"))}
    return subprocess.Popen([SITREP, "run", "--port", str(port)], env={**clean, **env}, cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip


def _messages(output: str) -> list[str]:
    return [json.loads(line)["message"] for line in output.splitlines() if line.startswith("{")]


def test_run_migrates_serves_health_and_answers_signed_requests(tmp_path: Path) -> None:
    with FakeSlack() as fake:
        fake.add_user("U0ALICE", "alice")
        general = fake.add_channel("general", ["U0ALICE"], bot_member=True)
        env = {"SLACK_BOT_TOKEN": fake.bot_token, "SLACK_SIGNING_SECRET": "s3cret", "SLACK_API_URL": fake.api_url}
        with sitrep_run(env, tmp_path) as port:
            assert (tmp_path / "sitrep.db").exists()  # the default SQLite database, migrated on start
            driver = SlackDriver(f"http://127.0.0.1:{port}/slack/events", "s3cret", fake)
            response = driver.command("declare sev3 From a real process", user="U0ALICE", channel=general)
            assert response.status == 200
            fake.wait_for(
                lambda: fake.channel_by_name(f"inc-{time.strftime('%Y%m%d', time.gmtime())}-from-a-real-process")
            )


def test_socket_mode_serves_health_but_not_unverified_slack_requests(tmp_path: Path) -> None:
    with FakeSlack() as fake, FakeSocketMode(fake) as socket_mode:
        env = {"SLACK_BOT_TOKEN": fake.bot_token, "SLACK_APP_TOKEN": fake.app_token, "SLACK_API_URL": fake.api_url}
        with sitrep_run(env, tmp_path) as port:
            socket_mode.wait_for_connection(timeout=10)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                assert response.status == 200
            request = urllib.request.Request(f"http://127.0.0.1:{port}/slack/events", data=b"command=/incident")
            try:
                urllib.request.urlopen(request, timeout=2)
                raise AssertionError("an unverified request was accepted")
            except urllib.error.HTTPError as error:
                assert error.code == 404


def test_sigterm_stops_it_cleanly_as_docker_stop_does(tmp_path: Path) -> None:
    """In a container the process is PID 1, where an unhandled SIGTERM is ignored: sitrep must handle it."""
    with FakeSlack() as fake:
        env = {"SLACK_BOT_TOKEN": fake.bot_token, "SLACK_SIGNING_SECRET": "s3cret", "SLACK_API_URL": fake.api_url}
        with sitrep_process(env, tmp_path) as (_port, process):
            process.send_signal(signal.SIGTERM)
            assert process.wait(10) == 0  # a clean exit, not death by the signal (-15)
            output = process.stdout.read().decode() if process.stdout else ""
    lines = _messages(output)
    assert "stopping: finishing the work in flight" in lines and lines[-1] == "stopped"
