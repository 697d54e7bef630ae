"""Issue 2: classify, timeline and PIR from incident exports, through the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.offline import main
from core.export import load_export
from core.pir import build_pir, render_markdown
from core.timeline import PHASES, analyze

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


def test_the_whole_markdown_matches_the_golden_file(capsys: pytest.CaptureFixture[str]) -> None:
    _, text, _ = run(capsys, "pir", str(FULL))
    if os.environ.get("SITREP_UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(text, encoding="utf-8")
    assert text == GOLDEN.read_text(encoding="utf-8")


def test_classify_gives_sev1_with_the_rules_in_words_whatever_the_hash_seed() -> None:
    outputs = set()
    for seed in ("0", "1", "4242"):
        result = subprocess.run(
            [sys.executable, "-m", "bot.cli", "classify", str(FULL), "--format", "json"],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        )
        outputs.add(result.stdout)
    assert len(outputs) == 1
    data = json.loads(outputs.pop())
    assert data["severity"] == "SEV1"
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


@pytest.mark.parametrize("fixture", [FULL, FLAT], ids=["full", "flat"])
def test_an_export_round_trips(fixture: Path, tmp_path: Path) -> None:
    from core.export import dump_export

    first = load_export(fixture)
    path = tmp_path / "again.json"
    path.write_text(dump_export(first))
    again = load_export(path)
    assert again == first
    assert render_markdown(build_pir(again)) == render_markdown(build_pir(first))


def test_a_missing_root_cause_is_left_to_the_commander() -> None:
    data = json.loads(FULL.read_text())
    del data["resolution"]["root_cause"]
    from core.export import parse_export

    text = render_markdown(build_pir(parse_export(data)))
    assert "To be completed by Jane Smith." in text
    assert "The root cause is not recorded yet." in text


REPRS = ("['", "{'", "None", "datetime.", "timedelta(")


@pytest.mark.parametrize("fixture", [FULL, FLAT], ids=["full", "flat"])
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
    for fmt in ("md", "slack"):
        _, text, _ = run(capsys, "pir", str(path), "--format", fmt)
        assert "<!channel>" not in text and "<https://evil" not in text
        assert "&lt;!channel&gt;" in text


def _write(tmp_path: Path, data: object) -> str:
    path = tmp_path / "incident.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


def _sample() -> dict:  # type: ignore[type-arg]
    return json.loads(FULL.read_text())


@pytest.mark.parametrize(
    ("case", "make", "says"),
    [
        ("missing file", lambda tmp: str(tmp / "nope.json"), "no such file"),
        ("not JSON", lambda tmp: _write(tmp, "{not json"), "not JSON"),
        ("not an object", lambda tmp: _write(tmp, [1, 2]), "expected a JSON object"),
        (
            "wrong type",
            lambda tmp: _write(tmp, {**_sample(), "impact": {"affected_users_percentage": "many"}}),
            "impact.affected_users_percentage",
        ),
        (
            "naive timestamp",
            lambda tmp: _write(
                tmp, {**_sample(), "events": [{**_sample()["events"][0], "timestamp": "2024-01-15T14:15:00"}]}
            ),
            "events[0].timestamp: timestamp has no time zone",
        ),
        ("no events", lambda tmp: _write(tmp, {**_sample(), "events": []}), "events: no events"),
        ("no title", lambda tmp: _write(tmp, {**_sample(), "incident": {"severity": "SEV1"}}), "incident.title"),
    ],
)
def test_bad_input_exits_2_with_one_line_naming_the_field(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, case: str, make: object, says: str
) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    code, out, err = run(capsys, "pir", path)
    assert code == 2 and out == ""
    assert says in err and err.count("\n") == 1, err


def test_offsets_are_normalised_to_utc_and_events_sorted_and_deduplicated(tmp_path: Path) -> None:
    data = _sample()
    events = data["events"]
    events[0]["timestamp"] = "2024-01-15T16:15:00+02:00"  # the trigger, 14:15 UTC
    data["events"] = list(reversed(events)) + [events[1]]  # out of order, and one duplicate
    export = load_export(_write(tmp_path, data))
    assert export.events[0].timestamp.isoformat() == "2024-01-15T14:15:00+00:00"
    assert [e.timestamp for e in export.events] == sorted(e.timestamp for e in export.events)
    assert len(export.events) == len(events)
    analysis = analyze(export)
    assert analysis.metric("time to detect") is not None
    assert analysis.metric("time to detect").duration.total_seconds() == 300  # type: ignore[union-attr]


def test_a_metric_with_a_missing_end_is_left_out_not_zero() -> None:
    data = _sample()
    data["events"] = [e for e in data["events"] if e["type"] != "resolution"]
    data["incident"].pop("resolved_at")
    from core.export import parse_export

    analysis = analyze(parse_export(data))
    assert analysis.metric("time to resolve") is None
    assert "Time to resolve" not in render_markdown(build_pir(parse_export(data)))


def test_standard_input_is_read_for_dash(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO(FULL.read_text()))
    code, text, _ = run(capsys, "classify", "-")
    assert code == 0 and "Suggested severity: SEV1" in text
