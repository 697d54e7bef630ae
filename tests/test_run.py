"""`sitrep run`, the Docker entry command, as a real process: migrations on start, /healthz, a signed request."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import PG_ADMIN_URL
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
            metrics = _get(port, "/metrics")[1]
    # The standard collectors of every Prometheus client are there, with sitrep's own.
    for name in ("process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds",
                 "python_info", "python_gc_objects_collected_total", "sitrep_slack_requests_total"):  # fmt: skip
        assert f"\n{name}" in metrics, name


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


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:  # not listening yet
        return 0, ""


def _lines(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


def _poll(predicate: object, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@contextmanager
def logged_run(env: dict[str, str], cwd: Path) -> Iterator[tuple[int, subprocess.Popen[bytes], Path]]:
    """`sitrep run` on a free port, its log in a file, without waiting for it to be healthy."""
    port, log = free_port(), cwd / "sitrep.log"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "SITREP_", "DATABASE_URL"))}
    with log.open("wb") as out:
        process = subprocess.Popen([SITREP, "run", "--port", str(port)], env={**clean, **env}, cwd=cwd,
                                   stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        yield port, process, log
    finally:
        process.terminate()
        process.wait(10)


@contextmanager
def door(port: int, to: tuple[str, int]) -> Iterator[None]:
    """A service coming up at 127.0.0.1:port: from now on connections there reach `to` (byte for byte)."""
    listener = socket.create_server(("127.0.0.1", port))

    def pipe(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, target):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def accept() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(to)
            for ends in ((client, upstream), (upstream, client)):
                threading.Thread(target=pipe, args=ends, daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield
    finally:
        listener.close()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # an empty one: no reminders due in it
def test_database_and_slack_down_at_start_are_waited_for_then_it_serves(tmp_path: Path, database_url: str) -> None:
    """Issue 13.1/13.2: no crash, no restart loop: one line per attempt, /healthz 503 until both have answered."""
    database, slack = free_port(), free_port()
    url = sa.make_url(database_url).set(host="127.0.0.1", port=database).render_as_string(hide_password=False)
    with FakeSlack() as fake:
        fake.add_user("U0ALICE", "alice")
        general = fake.add_channel("general", ["U0ALICE"], bot_member=True)
        env = {"SLACK_BOT_TOKEN": fake.bot_token, "SLACK_SIGNING_SECRET": "s3cret", "DATABASE_URL": url,
               "SLACK_API_URL": f"http://127.0.0.1:{slack}/api/"}  # fmt: skip
        with logged_run(env, tmp_path) as (port, process, log):
            waits = lambda what: [line for line in _lines(log)  # noqa: E731
                                  if str(line["message"]).startswith(what) and "unreachable" in str(line["message"])]
            _poll(lambda: len(waits("the database at")) >= 2, "two attempts at the database")
            assert _get(port, "/healthz") == (503, "starting: waiting for the database\n")
            pg = sa.make_url(PG_ADMIN_URL)
            with door(database, (pg.host or "127.0.0.1", pg.port or 5432)):
                _poll(lambda: len(waits("Slack at")) >= 2, "two attempts at Slack")
                assert _get(port, "/healthz") == (503, f"starting: waiting for Slack at {env['SLACK_API_URL']}\n")
                assert process.poll() is None
                with door(slack, ("127.0.0.1", int(fake.api_url.split(":")[2].split("/")[0]))):
                    _poll(lambda: _get(port, "/healthz")[0] == 200, "healthy", timeout=40)
                    driver = SlackDriver(f"http://127.0.0.1:{port}/slack/events", "s3cret", fake)
                    assert driver.command("help", user="U0ALICE", channel=general).status == 200
                    driver.close_connection()
    lines = _lines(log)
    attempts = waits("the database at") + waits("Slack at")
    assert all(line["level"] == "warning" and "trying again in" in str(line["message"]) for line in attempts)
    assert "Connection refused" in str(attempts[0]["message"]) and "password" not in str(attempts[0]["message"])
    # One line per attempt: nothing else was logged while waiting (no traceback, no library's own error line).
    ready = next(i for i, line in enumerate(lines) if str(line["message"]).startswith("ready"))
    assert [line["message"] for line in lines[:ready] if line not in attempts] == [
        f"listening on port {port}", f"database at {sa.make_url(url).render_as_string()} is up to date"]
    assert not any(line["level"] in ("error", "critical") for line in lines)


def test_a_token_slack_refuses_is_one_line_and_exit_code_2(tmp_path: Path) -> None:
    """Issue 13.1: invalid_auth is no reason to try again."""
    with FakeSlack() as fake:
        env = {"SLACK_BOT_TOKEN": "xoxb-not-a-token-the-fake-knows", "SLACK_SIGNING_SECRET": "s3cret",
               "SLACK_API_URL": fake.api_url}  # fmt: skip
        with logged_run(env, tmp_path) as (_port, process, log):
            assert process.wait(30) == 2
    errors = [line for line in _lines(log) if line["level"] != "info"]
    assert [line["message"] for line in errors] == [
        "Slack refused SLACK_BOT_TOKEN (invalid_auth): set the app's Bot User OAuth Token (xoxb-…) of this workspace"]
    assert len(fake.calls_to("auth.test")) == 1


def test_an_idle_bot_logs_nothing_at_info_after_start_up(tmp_path: Path) -> None:
    """Issue 13.4: at debug level the scheduler's ticks show (so they happen); none of what an idle bot logs is
    at info or above once it is ready. Start-up itself is a few lines, without alembic's set-up. (A tick much
    shorter than an idle tick's work, 2 to 5 ms, would make APScheduler warn that it skipped one: rightly.)"""
    with FakeSlack() as fake:
        env = {"SLACK_BOT_TOKEN": fake.bot_token, "SLACK_SIGNING_SECRET": "s3cret", "SLACK_API_URL": fake.api_url,
               "SITREP_TICK": "0.25s", "SITREP_LOG_LEVEL": "debug"}  # fmt: skip
        with logged_run(env, tmp_path) as (port, _process, log):
            ticks = lambda: [line for line in _lines(log) if str(line["message"]).startswith('Running job "tick')]  # noqa: E731
            _poll(lambda: len(ticks()) >= 20, "20 ticks")
            assert _get(port, "/healthz")[0] == 200
            lines = _lines(log)
    ready = next(i for i, line in enumerate(lines) if str(line["message"]).startswith("ready"))
    assert all(line["level"] == "debug" for line in lines[ready + 1 :]), [
        line for line in lines[ready + 1 :] if line["level"] != "debug"]
    assert {line["logger"] for line in lines if str(line["logger"]).startswith(("alembic", "apscheduler"))} and all(
        line["level"] == "debug" for line in lines if str(line["logger"]).startswith(("alembic", "apscheduler")))

    (tmp_path / "sitrep.db").unlink()
    with FakeSlack() as fake:  # at the default level, start-up (with the migrations) is these lines
        env = {"SLACK_BOT_TOKEN": fake.bot_token, "SLACK_SIGNING_SECRET": "s3cret", "SLACK_API_URL": fake.api_url}
        with logged_run(env, tmp_path) as (port, _process, log):
            _poll(lambda: _get(port, "/healthz")[0] == 200, "healthy")
            started = len(_lines(log))
    messages = [str(line["message"]) for line in _lines(log)]
    assert messages[:started] == [
        f"listening on port {port}", "database at sqlite:///sitrep.db is up to date",
        f"ready: Slack's requests on port {port} at /slack/events"]  # fmt: skip
    assert messages[started:] == ["stopping: finishing the work in flight", "stopped"]


def test_export_where_there_is_no_database_says_so_and_creates_nothing(tmp_path: Path) -> None:
    """Issue 13.3."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "SITREP_", "DATABASE_URL"))}
    for url, says in [
        (None, "sitrep: there is no database at sqlite:///sitrep.db (DATABASE_URL; `sitrep run` or `sitrep db "
               "upgrade` creates one)"),
        ("sqlite:///elsewhere/x.db", "sitrep: there is no database at sqlite:///elsewhere/x.db"),
        ("banana", "sitrep: DATABASE_URL: use sqlite:///FILE or postgresql://USER:PASSWORD@HOST:PORT/DATABASE"),
        (f"postgresql://postgres:hush@127.0.0.1:{free_port()}/x", "sitrep: the database at postgresql://postgres:***@"),
    ]:  # fmt: skip
        env = {**clean, **({"DATABASE_URL": url} if url else {})}
        done = subprocess.run([SITREP, "export", "INC-1"], env=env, cwd=tmp_path, capture_output=True, text=True,
                              timeout=60)  # fmt: skip
        assert done.returncode == 2 and done.stdout == "", (url, done)
        assert done.stderr.startswith(says) and done.stderr.count("\n") == 1, (url, done.stderr)
        assert "hush" not in done.stderr
    assert list(tmp_path.iterdir()) == []
