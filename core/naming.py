"""Incident channel names (SPEC §5 step 2). Pure functions."""

from __future__ import annotations

import re
import unicodedata
from datetime import date

MAX_CHANNEL_NAME = 80
# Letters that Unicode does not decompose into an ASCII base letter plus marks.
_EXTRA = str.maketrans(
    {"ß": "ss", "æ": "ae", "Æ": "ae", "œ": "oe", "Œ": "oe", "ø": "o", "Ø": "o", "đ": "d", "Đ": "d",
     "ł": "l", "Ł": "l", "þ": "th", "Þ": "th", "ð": "d", "Ð": "d", "ı": "i"}
)  # fmt: skip


def slugify(title: str) -> str:
    """Lowercase ASCII words joined by `-`: accents dropped, every run of other characters one `-`.

    Scripts with no ASCII transliteration (e.g. Japanese) give an empty slug."""
    ascii_text = unicodedata.normalize("NFKD", title.translate(_EXTRA)).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


def channel_name(*, prefix: str, day: date, title: str, number: int, attempt: int = 1) -> str:
    """`<prefix>-<YYYYMMDD>-<slug>[-<attempt>]`, never over 80 characters.

    The slug is cut at a word boundary so that the name with its collision suffix fits; a title with no
    usable characters gives `<prefix>-<YYYYMMDD>-<number>`."""
    base = f"{prefix}-{day:%Y%m%d}-"
    suffix = f"-{attempt}" if attempt > 1 else ""
    slug = slugify(title) or str(number)
    room = MAX_CHANNEL_NAME - len(base) - len(suffix)
    if len(slug) > room:
        cut = slug[: room + 1]
        slug = cut[: cut.rfind("-")] if "-" in cut else slug[:room]
        slug = slug.strip("-") or str(number)
    return f"{base}{slug}{suffix}"
