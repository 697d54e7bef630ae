"""The /incident grammar (SPEC §4)."""

from __future__ import annotations

from datetime import date

import pytest

from core.enums import Phase, Priority, Role, Severity
from core.errors import InvalidInput
from handlers.parse import parse


@pytest.mark.parametrize(
    ("text", "name", "fields"),
    [
        ("", "help", {}),
        ("help", "help", {}),
        ("frobnicate now", "help", {"extras": {"unknown": "frobnicate"}}),
        ("declare", "declare", {"text": ""}),
        (
            "declare SEV-1 --private  DB down ",
            "declare",
            {"severity": Severity.SEV1, "private": True, "text": "DB down"},
        ),
        ("declare --private sev2 DB down", "declare", {"severity": Severity.SEV2, "private": True}),
        ("declare Sev3 latency", "declare", {"severity": Severity.SEV3, "text": "latency"}),
        ("declare checkout is slow", "declare", {"severity": None, "text": "checkout is slow"}),
        ("update identified Bad deploy", "update", {"phase": Phase.IDENTIFIED, "text": "Bad deploy"}),
        ("update Still looking", "update", {"phase": None, "text": "Still looking"}),
        ("update", "update", {"text": ""}),
        ("severity sev1 revenue down", "severity", {"severity": Severity.SEV1, "text": "revenue down"}),
        ("role comms <@U123|bob>", "role", {"role": Role.COMMS, "user_id": "U123"}),
        ("note Failover <https://x.example|started>", "note", {"text": "Failover <https://x.example|started>"}),
        (
            "action Add alerts <@U7> p1 due:2026-02-01",
            "action",
            {"text": "Add alerts", "user_id": "U7", "priority": Priority.P1, "due": date(2026, 2, 1)},
        ),
        ("status", "status", {}),
        ("resolve pool too small", "resolve", {"text": "pool too small"}),
        ("LIST", "list", {}),
    ],
)
def test_good_input(text: str, name: str, fields: dict[str, object]) -> None:
    command = parse(text)
    assert command.name == name
    for key, value in fields.items():
        assert getattr(command, key) == value, key


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("declare sev9 DB down", "sev1"),
        ("declare sev1", "title"),
        ("declare --private", "title"),
        ("severity", "sev1"),
        ("severity critical", "`critical` is not a severity"),
        ("role boss <@U1>", "`commander`, `comms`, `scribe` or `ops`"),
        ("role comms bob", "Mention"),
        ("role comms", "role"),
        ("note", "note"),
        ("action fix it due:tomorrow", "YYYY-MM-DD"),
        ("update monitoring", "Say what changed"),
        ("update resolved done", "resolve"),
    ],
)
def test_bad_input_says_what_is_accepted(text: str, says: str) -> None:
    with pytest.raises(InvalidInput) as error:
        parse(text)
    assert says in str(error.value)
