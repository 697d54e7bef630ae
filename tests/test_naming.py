"""Incident channel names (SPEC §5 step 2)."""

from __future__ import annotations

import re
from datetime import date

import pytest

from core.naming import channel_name

DAY = date(2026, 11, 22)
VALID = re.compile(r"[a-z0-9_-]{1,80}")


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Payment Service Degradation", "inc-20261122-payment-service-degradation"),
        ("Ünïcödé çhars & emoji 🔥 DB down!!", "inc-20261122-unicode-chars-emoji-db-down"),
        ("Straße in Ærø", "inc-20261122-strasse-in-aero"),
        ("日本語のみ", "inc-20261122-42"),
        ("!!! ???", "inc-20261122-42"),
    ],
)
def test_names(title: str, expected: str) -> None:
    assert channel_name(prefix="inc", day=DAY, title=title, number=42) == expected


@pytest.mark.parametrize("attempt", [1, 2, 9, 10, 123])
@pytest.mark.parametrize("title", ["word " * 60, "x" * 300, "a-" * 150, "Ünïcödé " * 40])
def test_long_titles_are_cut_at_a_word_boundary_with_room_for_the_suffix(title: str, attempt: int) -> None:
    name = channel_name(prefix="inc", day=DAY, title=title, number=1, attempt=attempt)
    assert VALID.fullmatch(name) and len(name) <= 80
    if attempt > 1:
        assert name.endswith(f"-{attempt}")
    if title.startswith("word"):
        stem = name.removeprefix("inc-20261122-").removesuffix(f"-{attempt}" if attempt > 1 else "")
        assert set(stem.split("-")) == {"word"}
