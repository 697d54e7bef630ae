"""Issue 2: classify, timeline and PIR from incident exports, through the real CLI."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bot.offline import main
from core.pir import build_pir, render_markdown
from core.timeline import PHASES

FIXTURES = Path(__file__).parent / "fixtures" / "incident-commander"
FULL = FIXTURES / "sample_incident_data.json"
FLAT = FIXTURES / "sample_incident_pir_data.json"
GOLDEN = Path(__file__).parent / "golden" / "sample_incident_pir.md"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_pir_of_the_sample_states_the_facts(capsys: pytest.CaptureFixture[str]) -> None:
    code, text, _ = run(capsys, "pir", str(FULL))
    assert code == 0
    assert "| Severity | SEV1 |" in text
    assert "ORM 3.2.0 opening 3x more connections per request than previous version 3.1.2" in text
    assert "pool size of 20" in text
    assert "| Time to detect | 5 min | 14:15 trigger:" in text and "| 14:20 detection:" in text
    assert "| Time to declare | 3 min | 14:20 detection:" in text and "| 14:23 declaration:" in text
    assert "| Time to resolve | 2 h 30 min | 14:15 trigger:" in text and "| 16:45 resolution:" in text
    headings = [
        line.removeprefix("### ").split(" (")[0].lower() for line in text.splitlines() if line.startswith("### ")
    ]
    assert headings == list(PHASES)
    for title, owner, priority, due in [
        ("Add connection pool utilization alerting", "alice@company.com", "P1", "2024-01-22"),
        ("Implement canary deployment pipeline", "bob@company.com", "P1", "2024-02-01"),
        ("Load test ORM v3.2.0", "carol@company.com", "P2", "2024-01-29"),
        ("Document connection pool sizing", "alice@company.com", "P2", "2024-02-05"),
        ("Add ORM connection behavior", "carol@company.com", "P3", "2024-02-15"),
    ]:
        row = next(line for line in text.splitlines() if line.startswith(f"| {title}"))
        assert f"| {owner} | {priority} | {due} | open |" in row
    for role, name in [
        ("Incident Commander", "Jane Smith"),
        ("Operations Lead", "Alice Chen"),
        ("Communications Lead", "Bob Kim"),
        ("Database SME", "Carol Davis"),
    ]:
        assert f"| {role} | {name} |" in text


def test_classify_gives_sev1_with_the_rules_in_words_whatever_the_hash_seed() -> None:
    def cli(seed: str, *argv: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "bot.cli", *argv],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        )
        return result.stdout

    for argv in (("classify", str(FULL), "--format", "json"), ("classify", str(FULL)), ("pir", str(FULL))):
        first, second = cli("1", *argv), cli("4242", *argv)
        assert first == second, argv
    data = json.loads(cli("0", "classify", str(FULL), "--format", "json"))
    assert data["severity"] == "SEV1" and data["declared_severity"] == "SEV1"
    assert data["reasons"][0] == "45% of users affected (25% to 75%) gives SEV2."
    assert data["reasons"][1] == "High revenue impact raises it one level, to SEV1."


def test_pir_of_the_flat_shape_uses_its_lessons_and_actions_and_invents_no_whys(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, text, _ = run(capsys, "pir", str(FLAT))
    assert code == 0
    assert "Payment API Database Connection Pool Exhaustion" in text and "| Severity | SEV2 |" in text
    assert "Five whys" not in text and "Why 1" not in text
    assert "Rollback procedure worked effectively - 7 minute rollback time" in text
    assert "| Fix inefficient query for v2.3.2 deployment | unassigned | not set | not set | open |" in text
    assert "| Tom Wilson | " not in text and "| Database Team Lead | Tom Wilson |" in text


def test_a_missing_root_cause_is_left_to_the_commander() -> None:
    data = json.loads(FULL.read_text())
    del data["resolution"]["root_cause"]
    from core.export import parse_export

    text = render_markdown(build_pir(parse_export(data)))
    assert "To be completed by Jane Smith." in text
    assert "root cause is not recorded" not in text  # said once, under Root cause, not again as a judgement


REPRS = ("['", "{'", "None", "datetime.", "timedelta(")
ALL = [FULL, FLAT, FIXTURES.parent / "bot_export.json", FIXTURES.parent / "minimal_open_incident.json"]


@pytest.mark.parametrize("fixture", ALL, ids=lambda p: p.stem)
@pytest.mark.parametrize(
    "argv",
    [
        ("pir",),
        ("pir", "--format", "json"),
        ("pir", "--format", "slack"),
        ("classify",),
        ("classify", "--format", "json"),
        ("timeline",),
        ("timeline", "--format", "json"),
    ],
)
def test_no_rendered_text_holds_a_python_repr(
    capsys: pytest.CaptureFixture[str], fixture: Path, argv: tuple[str, ...]
) -> None:
    code, text, err = run(capsys, argv[0], str(fixture), *argv[1:])
    assert code == 0 and not err
    for repr_text in REPRS:
        assert repr_text not in text, repr_text


def test_user_text_is_escaped_in_every_rendering(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    evil = "<!channel> <https://evil.example|click>"
    data = json.loads(FULL.read_text())
    data["incident"]["title"] = evil
    data["incident"]["commander"] = evil
    for event in data["events"]:
        event["description"] = evil
        event["actor"] = evil
    data["resolution"]["root_cause"] = evil
    data["resolution"]["contributing_factors"] = [evil]
    data["action_items"][0]["title"] = evil
    data["action_items"][0]["owner"] = evil
    data["participants"][0]["name"] = evil
    path = tmp_path / "evil.json"
    path.write_text(json.dumps(data))
    _, text, _ = run(capsys, "pir", str(path), "--format", "slack")
    assert "<!channel>" not in text and "<https://evil" not in text
    assert "&lt;!channel&gt;" in text
    _, text, _ = run(capsys, "pir", str(path), "--format", "md")  # Markdown: backslashes, not entities
    assert "\\<!channel> \\<https://evil.example\\|click>" in text and "&lt;" not in text
    assert not re.search(r"(?<!\\)<[!A-Za-z]", text)


def _write(tmp_path: Path, data: object) -> str:
    path = tmp_path / "incident.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


def _sample() -> dict:  # type: ignore[type-arg]
    return json.loads(FULL.read_text())


def _with_events(change):  # type: ignore[no-untyped-def]
    data = _sample()
    data["events"] = change(data["events"])
    return data


def _offset(events: list[dict]) -> list[dict]:  # type: ignore[type-arg]
    events[0]["timestamp"] = "2024-01-15T16:15:00+02:00"  # the trigger, 14:15 UTC
    return events


# (case, file contents or None for a missing file, exit code, what stderr or stdout must say)
BAD_INPUT = [
    ("missing file", None, 2, "nope.json: no such file"),
    ("not JSON", "{not json", 2, "not JSON"),
    ("wrong types", {**_sample(), "impact": {"affected_users_percentage": "many"}},
     2, "impact.affected_users_percentage: input should be a valid number"),
    ("timestamp without a zone", _with_events(lambda ev: [{**ev[0], "timestamp": "2024-01-15T14:15:00"}, *ev[1:]]),
     2, "events[0].timestamp: timestamp has no time zone"),
    ("+02:00 accepted and normalised to UTC", _with_events(_offset), 0, "| Time to detect | 5 min | 14:15 trigger:"),
    ("no events", {**_sample(), "events": []}, 2, "events: no events"),
    ("events out of order", _with_events(lambda ev: list(reversed(ev))), 0, "| Time to declare | 3 min | 14:20"),
    ("duplicate events", _with_events(lambda ev: ev + ev[:5]), 0, "- **14:20** detection"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "content", "code", "says"), BAD_INPUT, ids=[row[0] for row in BAD_INPUT])
def test_bad_input(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, case: str, content: object, code: int, says: str
) -> None:
    path = str(tmp_path / "nope.json") if content is None else _write(tmp_path, content)
    got, out, err = run(capsys, "pir", path)
    assert got == code, err
    if code == 2:
        assert out == "" and err.count("\n") == 1 and err.startswith("sitrep: ")
        assert says in err, err
    else:
        assert err == "" and says in out
        assert out == GOLDEN.read_text(encoding="utf-8")  # the same PIR as the clean sample
        assert out.count("- **14:20** detection") == 1


def test_bad_settings_and_options_are_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SITREP_CADENCE", "sev1=soon")
    code, out, err = run(capsys, "classify", str(FULL))
    assert code == 2 and out == "" and err.startswith("sitrep: SITREP_CADENCE: ") and err.count("\n") == 1
    monkeypatch.delenv("SITREP_CADENCE")
    code, out, err = run(capsys, "timeline", str(FULL), "--timezone", "Mars/Olympus")
    assert (
        code == 2
        and err == "sitrep: --timezone: unknown time zone Mars/Olympus: use an IANA name such as UTC or Europe/Berlin\n"
    )


def test_the_zone_and_cadence_come_from_the_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SITREP_TIMEZONE", "America/New_York")
    monkeypatch.setenv("SITREP_CADENCE", "sev1=1h")
    code, text, _ = run(capsys, "pir", str(FULL))
    assert code == 0 and "| Impact began | 2024-01-15 09:15 EST |" in text
    assert "Status updates:" not in text  # an imported incident is not judged on sitrep's cadence
    data = json.loads(FULL.read_text())
    data["incident"]["channel_id"] = "C0LIVE"  # as if it had run under sitrep
    path = tmp_path / "live.json"
    path.write_text(json.dumps(data))
    code, text, _ = run(capsys, "pir", str(path))
    assert code == 0 and "Status updates: 3 of 4 on time" in text


def test_timeline_text_names_each_metric_with_its_two_events(capsys: pytest.CaptureFixture[str]) -> None:
    code, text, _ = run(capsys, "timeline", str(FULL))
    assert code == 0
    assert "  time to detect: 5 min\n    from 14:15 trigger: Database connection pool" in text
    assert "    to   14:20 detection: PagerDuty alert fired" in text
    headings = [line.split(" (")[0].lower() for line in text.splitlines() if re.match(r"^[A-Z]+ \(", line)]
    assert headings == list(PHASES)


def test_the_slack_format_is_a_post_message_payload(capsys: pytest.CaptureFixture[str]) -> None:
    code, text, _ = run(capsys, "pir", str(FULL), "--format", "slack")
    payload = json.loads(text)
    assert code == 0 and payload["text"].startswith("Post-incident review: INC-2024-0142")
    assert 0 < len(payload["blocks"]) <= 50


def test_standard_input_is_read_for_dash(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO(FULL.read_text()))
    code, text, _ = run(capsys, "classify", "-")
    assert code == 0 and "Suggested severity: SEV1" in text


def test_classify_reads_the_figures_the_flat_sample_states_in_words(capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 12: "80% of users unable to complete payments" is a share of users; the reason quotes it."""
    code, text, _ = run(capsys, "classify", str(FLAT))
    assert code == 0 and text.startswith("Suggested severity: SEV1\nDeclared severity: SEV2 (different)\n")
    assert "80% of users affected (over 75%) gives SEV1" in text and "“80% of users unable to complete payments" in text
    assert "not known" not in text
    code, out, _ = run(capsys, "pir", str(FLAT), "--format", "json")
    data = json.loads(out)
    assert {"name": "Time to escalate", "value": "10 minutes"} in data["reported_metrics"]
    assert (
        "Peak error rate 45%; normal error rate 0.1%; connection pool max 200; connections exhausted at 100%."
        in (data["customer_impact"])
    )
