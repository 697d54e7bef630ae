"""Issue 6: `sitrep demo` plays a whole incident with no workspace, no tokens and no network, ending with a PIR;
issue 14.5: the incident comes from an Alertmanager alert and pages PagerDuty (local stand-ins)."""

from __future__ import annotations

import html
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).parent.parent / "README.md"


SITREP = str(Path(sys.executable).parent / "sitrep")
CLEAN = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "SITREP_", "DATABASE_URL"))}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("demo")


@pytest.fixture(scope="module")
def transcript(folder: Path) -> str:
    """One run of `sitrep demo --keep demo.db` for this file, with every Slack, sitrep and database setting
    removed: a real process, as an operator types it."""
    done = subprocess.run([SITREP, "demo", "--keep", "demo.db"], env=CLEAN, cwd=folder, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_kept_database_exports_incident_1_whose_pir_is_the_one_posted(transcript: str, folder: Path) -> None:
    """Issue 13.9: the round trip the README shows, `sitrep export INC-1` then `sitrep pir`, on the demo's
    database; the PIR is the one the demo printed (posted in the channel), character for character."""
    assert (folder / "demo.db").is_file()
    env = {**CLEAN, "DATABASE_URL": "sqlite:///demo.db"}
    export = subprocess.run([SITREP, "export", "INC-1", "-o", "inc-1.json"], env=env, cwd=folder,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert export.returncode == 0 and export.stderr == "", export.stderr
    pir = subprocess.run([SITREP, "pir", "inc-1.json"], env=CLEAN, cwd=folder, capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    assert pir.returncode == 0, pir.stderr
    posted = transcript.split("The post-incident review sitrep posted (Markdown):\n" + "=" * 100 + "\n", 1)[1]
    posted = posted.split("\nThe demo's database is in demo.db", 1)[0]
    assert html.unescape(pir.stdout).strip() == posted.strip()
    assert "try `DATABASE_URL=sqlite:///demo.db sitrep export INC-1 -o inc-1.json`" in transcript


def test_keep_refuses_a_file_that_exists(tmp_path: Path) -> None:
    (tmp_path / "mine.db").write_bytes(b"precious")
    done = subprocess.run([SITREP, "demo", "--keep", "mine.db"], env=CLEAN, cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == "sitrep: mine.db exists already: --keep names a new file for the demo's database\n"
    assert (tmp_path / "mine.db").read_bytes() == b"precious"


def test_the_demo_runs_without_tokens_and_ends_with_a_pir(transcript: str) -> None:
    text = transcript
    assert "jane: submits the declare form as prefilled" in text
    assert "sitrep (only to @jane): INC-1 declared as SEV2" in text
    assert "sitrep uploaded INC-1-pir.md" in text
    story = text.split("The post-incident review sitrep posted", 1)[0]
    # a tagged message is filed silently, and the transcript says so; a missed update brings a reminder
    assert 'alice: uses the shortcut "Add to incident timeline"\n' in story
    assert "sitrep files it in the timeline as mitigation" in story
    assert "*A status update is due* for *INC-1* (SEV1)" in story and "@jane @bob, please post an update." in story
    assert "[Post update] [Snooze 15m]" in story
    # a severity change that moves the next update's due time says so (issue 13.7)
    assert re.search(r"changed the severity from SEV2 to \*SEV1\*: 12,500 users affected and payments failing · "
                     r"the next status update is now due by \d\d:\d\d \(SEV1 asks for one every 15 min\)\n", story)
    pir = text.split("The post-incident review sitrep posted (Markdown):", 1)[1]
    assert "# Post-incident review: Payment service degradation" in pir
    assert "ORM 3.2.0 opens 3x more connections per request than 3.1.2" in pir
    assert "| Alert on connection pool use at 70% | alice | P1 |" in pir
    assert "Rolled back user-api to v2.3.9" in pir and "@bob" in pir and "<@U0" not in pir


def test_the_readme_transcript_is_what_the_demo_prints(transcript: str) -> None:
    """The excerpt in the README is real: each of its lines is a line of the demo, in the same order."""
    block = README.read_text().split("<!-- demo transcript", 1)[1].split("```\n", 2)[1]
    lines = [line for line in block.splitlines() if line.strip()]
    assert len(lines) >= 10
    demo = transcript.splitlines()
    at = 0
    for line in lines:
        # the story runs on today's date and the last two hours: dates and times are the demo's own
        pattern = re.compile(re.sub(r"\d+", r"\\d+", re.escape(line)) + "$")
        found = next((i for i in range(at, len(demo)) if pattern.match(demo[i])), None)
        assert found is not None, f"not in the demo's output (after line {at}): {line}"
        at = found + 1


def steps(transcript: str) -> dict[str, str]:
    """The story's steps: what someone did (the line) -> everything printed until the next step."""
    story = transcript.split("The post-incident review sitrep posted", 1)[0]
    found = {}
    for chunk in story.split("\n\n")[1:]:
        did, _, said = chunk.partition("\n")
        found[did] = said
    return found


def test_an_alert_from_alertmanager_becomes_the_incident(transcript: str) -> None:
    """Alertmanager's notification (over HTTP, with the demo's bearer token) posts one triage message; Jane's
    Declare opens the form prefilled from the alert; submitting it declares INC-1 and links the alert group."""
    story = steps(transcript)
    alert = story["(Alertmanager posts to /hooks/alertmanager: PaymentErrors is firing on payments-api-1 and -2)"]
    assert alert.startswith("  sitrep in #alerts: :rotating_light: *Firing* · 2 of 2 alerts firing · Alertmanager\n")
    assert alert.count(":red_circle: *PaymentErrors*: Payment service degradation") == 2
    assert "instance=payments-api-2 · severity=critical" in alert and alert.rstrip().endswith("[Declare] [Dismiss]")
    assert story["jane: presses [Declare] on the alert"] == (
        '  sitrep opens the declare form for @jane, prefilled from the alert: SEV2 "Payment service degradation"')
    declared = story["jane: submits the declare form as prefilled"]
    assert "sitrep in #incidents: :rotating_light: *INC-1* SEV2: Payment service degradation" in declared
    assert re.search(r"  sitrep edits its message in #alerts: .*\n      :link: Declared as \*INC-1\* · "
                     r"#inc-\d+-payment-service-degradation: its timeline gets this group's changes\.\n", declared)
    assert "sitrep files the alert in the timeline as trigger, at" in declared
    resolved = story["(Alertmanager posts to /hooks/alertmanager: PaymentErrors is resolved)"]
    assert resolved.startswith("  sitrep edits its message in #alerts: :white_check_mark: *Resolved* · 0 of 2 ")
    assert re.search(r"the alert in the timeline as note, at \d\d:\d\d: Alert group resolved: PaymentErrors", resolved)
    assert transcript.count("sitrep in #alerts:") == 1  # one triage message, edited in place


def test_the_declare_pages_pagerduty_once_and_the_resolve_resolves_it(transcript: str, folder: Path) -> None:
    """The outbox delivers to the stand-in PagerDuty on the story's clock: one accepted trigger at the SEV2
    declare (raising to SEV1 pages no more), told in the channel, and one resolve with the same key."""
    story = steps(transcript)
    declared = story["jane: submits the declare form as prefilled"]
    assert re.search(r"  PagerDuty got: trigger sitrep-INC-1 \(error\), accepted\n  sitrep in #inc-\d+-payment-"
                     r"service-degradation: :pager: PagerDuty accepted the page for \*INC-1\* \(dedup key "
                     r"`sitrep-INC-1`\)\.", declared)
    resolve = next(said for did, said in story.items() if did.startswith("jane: /incident resolve "))
    assert resolve.rstrip().endswith("sitrep uploaded INC-1-pir.md\n  PagerDuty got: resolve sitrep-INC-1, accepted")
    pages = [line.strip() for line in transcript.splitlines() if "PagerDuty got:" in line]
    assert pages == ["PagerDuty got: trigger sitrep-INC-1 (error), accepted",
                     "PagerDuty got: resolve sitrep-INC-1, accepted"]  # fmt: skip
    with sqlite3.connect(folder / "demo.db") as db:  # the kept database: what the outbox did
        rows = db.execute("SELECT integration, operation, state, attempts FROM outbox ORDER BY id").fetchall()
    assert rows == [("pagerduty", "trigger", "delivered", 1), ("pagerduty", "resolve", "delivered", 1)]


def test_the_demos_pagerduty_runs_without_jsonschema() -> None:
    """A plain `pip install .` has no jsonschema: the stand-in then checks PagerDuty's documented rules only,
    and still accepts what sitrep sends (the tests' fake requires jsonschema: tests/fakepagerduty.py)."""
    script = """
import sys, json, urllib.request
sys.modules["jsonschema"] = None  # as if not installed
from standin.pagerduty import SCHEMA_CHECKS, event_problems, running
assert not SCHEMA_CHECKS
assert event_problems({"routing_key": "k", "event_action": "resolve"}) == [
    "dedup_key: required for resolve and acknowledge"]
with running() as pd:
    body = {"routing_key": pd.routing_key, "event_action": "trigger", "dedup_key": "sitrep-INC-1",
            "payload": {"summary": "s", "source": "sitrep", "severity": "error"}}
    request = urllib.request.Request(pd.events_url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    assert urllib.request.urlopen(request, timeout=10).status == 202
    assert pd.events("trigger") == [body] and not pd.refused
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], env=CLEAN, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout == "ok\n", done.stderr
