"""Deployment (issue 6): replicas that start together on one database, and the Docker files read as a whole.

Docker has no engine on the test machines: the Dockerfile and compose file are checked by reading them, and
what the image runs (`sitrep run`) is tested as a real process in tests/test_run.py."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from core.db import is_up_to_date, make_engine

ROOT = Path(__file__).parent.parent

# A replica's start-up, up to the migrations: everything imported and the database reached, then it waits for
# the word and migrates. Separate processes, as replicas are (Alembic keeps per-process global state).
REPLICA = """
import sys
from core.db import make_engine, upgrade
engine = make_engine(sys.argv[1])
with engine.connect():
    pass
print("ready", flush=True)
sys.stdin.readline()
upgrade(engine)
"""


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # replicas share PostgreSQL (SPEC §12)
def test_replicas_starting_together_migrate_once_without_failing(database_url: str) -> None:
    """`docker compose up --scale bot=2` on an empty database: every replica migrates on start, none may fail."""
    replicas = [
        subprocess.Popen(
            [sys.executable, "-c", REPLICA, database_url],
            cwd=ROOT,
            text=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        for _ in range(6)
    ]
    try:
        for replica in replicas:
            assert replica.stdout is not None and replica.stdout.readline() == "ready\n", replica.communicate()
        for replica in replicas:  # all of them are waiting on stdin: let them go at once
            assert replica.stdin is not None
            replica.stdin.write("go\n")
            replica.stdin.flush()
        results = [(replica.wait(60), replica.communicate()[1]) for replica in replicas]
    finally:
        for replica in replicas:
            if replica.poll() is None:
                replica.kill()
    assert [code for code, _ in results] == [0] * len(replicas), [err.splitlines()[-1:] for _, err in results]
    engine = make_engine(database_url)
    try:
        assert is_up_to_date(engine)
    finally:
        engine.dispose()


def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (INSTRUCTION, arguments), continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_the_image_is_two_stage_slim_non_root_healthchecked_and_runs_sitrep() -> None:
    steps = dockerfile()
    stages = [i for i, (op, _) in enumerate(steps) if op == "FROM"]
    assert len(stages) == 2 and all("slim" in steps[i][1] for i in stages)
    final = steps[stages[-1] :]
    users = [args for op, args in final if op == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert any(op == "COPY" and "--from=" in args for op, args in final)
    (health,) = [args for op, args in final if op == "HEALTHCHECK"]
    assert "/healthz" in health and '"python"' in health and "curl" not in health and "wget" not in health
    assert ("ENTRYPOINT", '["sitrep"]') in final and ("CMD", '["run"]') in final  # `run` migrates on start


def test_the_build_copies_every_package_that_pyproject_installs() -> None:
    found = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    packages = [pattern.rstrip("*") for pattern in found["include"]]
    copied = {args.split()[0] for op, args in dockerfile() if op == "COPY" and "--from" not in args}
    for top in {package.split(".")[0] for package in packages}:
        assert top in copied, f"the Dockerfile does not copy {top}/, which pyproject.toml installs"
    copied_words = {word for op, args in dockerfile() if op == "COPY" for word in args.split()}
    assert {"pyproject.toml", "README.md"} <= copied_words
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".env" in ignored and ".venv" in ignored
    assert not {package.split(".")[0] for package in packages} & set(ignored)


def test_the_image_is_reproducible_base_pinned_by_digest_packages_by_the_lock_with_hashes() -> None:
    steps = dockerfile()
    bases = [args.split()[0] for op, args in steps if op == "FROM"]
    assert all(re.fullmatch(r"python:3\.11-slim@sha256:[0-9a-f]{64}", base) for base in bases) and len(set(bases)) == 1
    runs = [args for op, args in steps if op == "RUN"]
    locked = next(i for i, args in enumerate(runs) if "-r requirements.lock" in args)
    assert "--require-hashes" in runs[locked]
    assert any("pip install" in args and "--no-deps" in args and "--no-build-isolation" in args
               for args in runs[locked + 1 :])  # sitrep itself: nothing fetched beyond the lock  # fmt: skip
    assert "refresh:" in (ROOT / "Dockerfile").read_text() and "\nrefresh: lock base-image\n" in (
        ROOT / "Makefile").read_text()  # fmt: skip


def test_the_lock_pins_every_dependency_and_build_tool_with_hashes() -> None:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    text = (ROOT / "requirements.lock").read_text()
    entries = re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)((?: \\\n\s+--hash=sha256:[0-9a-f]{64})+)", text, flags=re.M)
    pins = {canonicalize_name(name): version for name, version, _ in entries}
    assert len(entries) == len(re.findall(r"^[A-Za-z0-9_.-]+==", text, flags=re.M)), "a pin without a hash"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for line in [*project["project"]["dependencies"], *project["build-system"]["requires"]]:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not in requirements.lock: run make lock"
        assert requirement.specifier.contains(pins[name]), f"{name}=={pins[name]} is not {requirement.specifier}"


def test_every_package_data_pattern_ships_a_file() -> None:
    """pyproject promises no file that is not there (it listed `*.ini` for an alembic.ini that never existed)."""
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    for package, patterns in package_data.items():
        for pattern in patterns:
            assert list((ROOT / package.replace(".", "/")).glob(pattern)), f"{package}: {pattern} matches nothing"


def test_compose_runs_the_bot_on_postgresql_and_can_scale_it_to_two() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    bot, db = compose["services"]["bot"], compose["services"]["db"]
    assert db["image"].startswith("postgres:") and "healthcheck" in db
    assert bot["environment"]["DATABASE_URL"].startswith("postgresql://")
    assert bot["depends_on"]["db"]["condition"] == "service_healthy"
    assert "container_name" not in bot  # a fixed name cannot be scaled
    # each replica needs a host port of its own: a range at least two wide
    (ports,) = bot["ports"]
    first, last = re.fullmatch(r"(?:[\d.]+:)?(\d+)-(\d+):3000", str(ports)).groups()  # type: ignore[union-attr]
    assert int(last) - int(first) + 1 >= 2
