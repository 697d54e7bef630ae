"""Rendering helpers shared by the PIR and the bot's mrkdwn templates.

Autoescape is off because the output is Markdown or Slack mrkdwn, not HTML. Every user-supplied field must
therefore go through the ``slack`` filter (or ``cell`` inside a Markdown table) explicitly; the tests render
a fixture whose every text field holds ``<!channel>`` and assert it never comes out raw.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2

from core.cadence import format_duration

_SLACK_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def escape_slack(text: object) -> str:
    """Escape `&`, `<` and `>` the way Slack expects, so `<!channel>` or `<url|label>` cannot be smuggled."""
    if text is None:
        return ""
    text = str(text)
    if "&" not in text and "<" not in text and ">" not in text:
        return text
    return text.translate(_SLACK_ESCAPES)


# A user mention as escape_slack leaves it: `&lt;@U123&gt;` or `&lt;@U123|name&gt;`.
_ESCAPED_MENTION = re.compile(r"&lt;@([UW][A-Z0-9]+)(?:\|[^\n]*?)?&gt;")


def escape_text(text: object) -> str:
    """Escape like `escape_slack`, but let user mentions (`<@U123>`, `<@U123|name>`) stay mentions: for what
    people wrote, whose mentions Slack sent as mentions. Broadcasts (`<!channel>`), user groups and links stay
    escaped."""
    return _ESCAPED_MENTION.sub(r"<@\1>", escape_slack(text))


def unescape_slack(text: str) -> str:
    """Undo Slack's escaping of message and command text (`&amp;`, `&lt;`, `&gt;`) once, on the way in: text is
    stored as people wrote it and escaped once on the way out (SPEC §15)."""
    if "&" not in text:
        return text
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def escape_cell(text: object, *, limit: int | None = None) -> str:
    """Escape for Slack and make the text safe inside one Markdown table cell (no `|`, no line breaks)."""
    value = " ".join(escape_slack(text).split())
    if limit is not None and len(value) > limit:
        value = value[: limit - 1].rstrip() + "…"
    return value.replace("|", "\\|")


@lru_cache(maxsize=64)
def _zone(name: str) -> tzinfo:
    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValueError(f"unknown time zone {name}: use an IANA name such as UTC or Europe/Berlin") from exc


def zone(name: str | tzinfo) -> tzinfo:
    """A tzinfo for an IANA zone name; ValueError naming the zone when it is unknown."""
    return name if isinstance(name, tzinfo) else _zone(name)


def format_when(value: datetime | date | None, tz: str | tzinfo = "UTC", style: str = "full") -> str:
    """Aware datetime -> `2024-01-15 14:15 UTC` (style full), `2024-01-15 14:15` (datetime), `14:15` (time)
    or `2024-01-15` (date).

    A date renders as `2024-01-15`. None renders as an empty string, never as `None`."""
    if value is None:
        return ""
    if not isinstance(value, datetime):
        return value.isoformat()
    if value.tzinfo is None:
        raise ValueError("cannot render a timestamp with no time zone")
    local = value.astimezone(zone(tz))
    if style == "time":
        return f"{local.hour:02d}:{local.minute:02d}"
    if style == "date":
        return local.strftime("%Y-%m-%d")
    if style == "datetime":
        return local.strftime("%Y-%m-%d %H:%M")
    return local.strftime("%Y-%m-%d %H:%M ") + (local.tzname() or "")


def format_optional_duration(value: timedelta | None) -> str:
    return "" if value is None else format_duration(value)


def join_words(items: list[str], *, last: str = "and") -> str:
    """`a`, `a and b`, `a, b and c` (plain English, never a list repr)."""
    items = [str(i) for i in items]
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {last} {items[-1]}"


@lru_cache(maxsize=1)
def jinja_env() -> jinja2.Environment:
    """The shared Jinja2 environment (templates from the `templates` package)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("templates", ""),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["slack"] = escape_slack
    env.filters["slack_text"] = escape_text
    env.filters["cell"] = escape_cell
    env.filters["duration"] = format_optional_duration
    env.filters["when"] = format_when
    env.filters["join_words"] = join_words
    return env
