"""Issue 6: `sitrep demo` plays a whole incident with no workspace, no tokens and no network, ending with a PIR."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import pytest

from bot.demo import run_demo

README = Path(__file__).parent.parent / "README.md"


@pytest.fixture(scope="module")
def transcript() -> str:
    """One run of the demo for this file, with every Slack, sitrep and database setting removed."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name in list(os.environ):
            if name.startswith(("SLACK_", "SITREP_")) or name == "DATABASE_URL":
                monkeypatch.delenv(name)
        out = io.StringIO()
        assert run_demo(out) == 0
    return out.getvalue()


def test_the_demo_runs_without_tokens_and_ends_with_a_pir(transcript: str) -> None:
    text = transcript
    assert "jane: /incident declare sev2 Payment service degradation" in text
    assert "sitrep (only to @jane): INC-1 declared as SEV2" in text
    assert "sitrep uploaded INC-1-pir.md" in text
    story = text.split("The post-incident review sitrep posted", 1)[0]
    # a tagged message is filed silently, and the transcript says so; a missed update brings a reminder
    assert 'alice: uses the shortcut "Add to incident timeline"\n' in story
    assert "sitrep files it in the timeline as mitigation" in story
    assert "*A status update is due* for *INC-1* (SEV1)" in story and "@jane @bob, please post an update." in story
    assert "[Post update] [Snooze 15m]" in story
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
