"""What travels in a modal's private_metadata stays within Slack's 3000 characters, counted as Slack counts."""

from __future__ import annotations

import json

import pytest

from handlers.modals import METADATA_LIMIT, fitted_metadata


def _slack_length(text: str) -> int:
    """Written out here rather than imported: the test's own measure of what Slack counts."""
    return len(text.encode("utf-16-le")) // 2


def test_metadata_that_fits_travels_whole() -> None:
    meta = {"channel": "C1", "ts": "1.2", "text": "short"}
    assert json.loads(fitted_metadata(meta, shorten="text")) == meta


@pytest.mark.parametrize("text", ["a" * 5000, "é" * 5000, "🔥" * 5000, '"\\\n' * 2000, "x" * 2990 + "🔥" * 10])
def test_a_long_text_is_cut_to_the_longest_start_that_fits(text: str) -> None:
    meta = {"channel": "C1", "ts": "1.2", "text": text}
    fitted = fitted_metadata(meta, shorten="text")
    assert _slack_length(fitted) <= METADATA_LIMIT
    back = json.loads(fitted)
    kept = back.pop("text")
    assert back == {"channel": "C1", "ts": "1.2", "cut": True}
    assert text.startswith(kept)
    one_more = json.dumps({**meta, "text": text[: len(kept) + 1], "cut": True}, ensure_ascii=False)
    assert _slack_length(one_more) > METADATA_LIMIT
