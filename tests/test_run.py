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


def _children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def _wait(predicate: object, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_several_processes_share_the_port_replace_a_dead_one_and_stop_together(tmp_path: Path) -> None:
    with FakeSlack() as fake:
        fake.add_user("U0ALICE", "alice")
        general = fake.add_channel("general", ["U0ALICE"], bot_member=True)
        env = {"SLACK_BOT_TOKEN": fake.bot_token, "SLACK_SIGNING_SECRET": "s3cret", "SLACK_API_URL": fake.api_url,
               "SITREP_PROCESSES": "2"}  # fmt: skip
        with sitrep_process(env, tmp_path) as (port, process):
            _wait(lambda: len(_children(process.pid)) == 2)
            first = _children(process.pid)
            # Connections are taken by either process; each opens its own to the fake Slack for auth.test.
            _wait(lambda: len(fake.calls_to("auth.test")) == 2)

            os.kill(min(first), signal.SIGKILL)
            _wait(lambda: len(_children(process.pid)) == 2 and _children(process.pid) != first)
            _wait(lambda: len(fake.calls_to("auth.test")) == 3)  # the new process is up
            driver = SlackDriver(f"http://127.0.0.1:{port}/slack/events", "s3cret", fake)
            for n in range(4):  # new connections, answered whichever process takes them
                driver.close_connection()
                assert driver.command(f"declare sev3 Shared port {n}", user="U0ALICE", channel=general).status == 200
            fake.wait_for(lambda: len([c for c in fake.calls_to("conversations.create") if c.response.get("ok")]) == 4,
                          timeout=20)  # fmt: skip
            for _ in range(8):
                driver.close_connection()
                assert driver.command("help", user="U0ALICE", channel=general).status == 200
            # /metrics counts the requests of both processes, whichever answers (each scrape a new connection).
            assert {_requests_counted(port) for _ in range(10)} == {12.0}

            children = _children(process.pid)
            process.send_signal(signal.SIGTERM)
            assert process.wait(20) == 0
            assert not any(Path(f"/proc/{pid}").exists() and "Z" not in _state(pid) for pid in children)
            output = process.stdout.read().decode() if process.stdout else ""
    lines = _messages(output)
    assert lines.count("stopped") == 3  # each process, then the parent
    assert any("exited with exit code -9; starting another" in line for line in lines)
    assert sum("stopped with exit code 0" in line for line in lines) == 2


def _requests_counted(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("sitrep_slack_requests_total{"))  # fmt: skip


def test_several_processes_told_to_stop_while_starting_stop_cleanly(tmp_path: Path) -> None:
    with FakeSlack() as fake:
        fake.latency = 3.0  # each process is still starting (waiting on auth.test) when the stop comes
        env = {"SLACK_BOT_TOKEN": fake.bot_token, "SLACK_SIGNING_SECRET": "s3cret", "SLACK_API_URL": fake.api_url,
               "SITREP_PROCESSES": "2"}  # fmt: skip
        process = _start(env, tmp_path, free_port())
        try:
            _wait(lambda: len(_children(process.pid)) == 2)
            time.sleep(0.5)
            process.send_signal(signal.SIGTERM)
            assert process.wait(20) == 0
        finally:
            process.kill()
        output = process.stdout.read().decode() if process.stdout else ""
    lines = _messages(output)
    assert lines.count("stopped") == 3, output  # each process, then the parent
    assert sum("stopped with exit code 0" in line for line in lines) == 2, output


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


def test_several_processes_that_cannot_start_stop_with_an_error(tmp_path: Path) -> None:
    """A process killed by a signal is replaced; one failing with an error (here Slack refuses the token) is not
    started again and again: all stop, as a single `sitrep run` would."""
    with FakeSlack() as fake:
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "SITREP_", "DATABASE_URL"))}
        env = {**clean, "SLACK_BOT_TOKEN": "xoxb-not-a-token-the-fake-knows", "SLACK_SIGNING_SECRET": "s3cret",
               "SLACK_API_URL": fake.api_url, "SITREP_PROCESSES": "2"}  # fmt: skip
        process = subprocess.run([SITREP, "run", "--port", str(free_port())], env=env, cwd=tmp_path,
                                 capture_output=True, text=True, timeout=60)  # fmt: skip
    assert process.returncode == 1
    lines = [json.loads(line)["message"] for line in process.stderr.splitlines() if line.startswith("{")]
    assert any("failed; stopping the others" in line for line in lines)
    assert lines[-1] == "stopped"
