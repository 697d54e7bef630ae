"""Rendering helpers shared by the PIR and the bot's mrkdwn templates.

Autoescape is off because the output is Markdown or Slack mrkdwn, not HTML. Every user-supplied field must
therefore go through a filter explicitly: ``slack`` in Slack mrkdwn (escapes `&`, `<`, `>` as Slack asks), and
in the Markdown PIR ``md`` (one line of text), ``md_block`` (a paragraph that keeps its lines) or ``cell``
(inside a table). The Markdown filters escape with backslashes, never with HTML entities, so the text reads as
written both in the raw file and rendered: no heading, list, quote, code span or fence, link, image or HTML
can come out of a person's text. The tests render exports whose text fields hold such constructs.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2

from core.cadence import format_duration

_SLACK_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
# Inside a line: characters that open code, emphasis, links, images, tables or strike-through; `_` only where it
# could open or close emphasis (not inside a word such as snake_case); `<` only where it could open HTML or an
# autolink (`<5%` stays); `&` only where it would form an entity.
_MD_INLINE = re.compile(r"[\\`*\[\]|~]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])|<(?=[A-Za-z/!?@#])|&(?=#?[A-Za-z0-9]+;)")
# At the start of a line: what makes a heading, a quote, a list item, a setext underline or a numbered list.
_MD_LINE_START = re.compile(r"^([#>+=-]|\d+(?=[.)]))")


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
    """Text for one Markdown table cell: one line, escaped as `escape_markdown` does (so `|` too), cut at
    `limit` characters of the text (before escaping) with an ellipsis."""
    value = " ".join(str("" if text is None else text).split())
    if limit is not None and len(value) > limit:
        value = value[: limit - 1].rstrip() + "…"
    return escape_markdown(value)


_MD_LINE_MARKERS = frozenset("#>+=-0123456789")
# Text that needs no escaping and no tidying: words, digits, single spaces and harmless punctuation.
_MD_PLAIN = re.compile(r"(?:[A-Za-z0-9,.:;'\"()/@%!?$+=#>-]+(?: [A-Za-z0-9,.:;'\"()/@%!?$+=#>-]+)*)?")


def _escape_markdown_line(line: str) -> str:
    line = _MD_INLINE.sub(_backslash, line.strip())
    if line[:1] not in _MD_LINE_MARKERS:
        return line
    # Escape the first character of a block marker, or the `.`/`)` after a list number.
    return _MD_LINE_START.sub(lambda m: m.group(0) + "\\" if m.group(0)[0].isdigit() else "\\" + m.group(0), line)


def _backslash(match: re.Match[str]) -> str:
    return "\\" + match.group(0)


def escape_markdown(text: object) -> str:
    """One line of Markdown that shows `text` as written: whitespace runs (line breaks too) become one space, and
    every character that Markdown would read as syntax is backslash-escaped (no entities)."""
    if text is None:
        return ""
    text = str(text)
    if _MD_PLAIN.fullmatch(text) and text[:1] not in _MD_LINE_MARKERS:  # most text: nothing to do
        return text
    return _escape_markdown_line(" ".join(text.split()))


def escape_markdown_block(text: object) -> str:
    """A Markdown paragraph (or several) showing `text` as written: lines are kept, each escaped as a line on its
    own (no leading spaces, so no code block either), runs of blank lines kept as one paragraph break."""
    if text is None:
        return ""
    lines = [_escape_markdown_line(line) for line in str(text).splitlines()]
    kept: list[str] = []
    for line in lines:
        if line or (kept and kept[-1]):
            kept.append(line)
    while kept and not kept[-1]:
        kept.pop()
    return "\n".join(kept)


def escape_short(text: object, limit: int) -> str:
    """Escaped for Slack, on one line, at most `limit` characters once escaped (cut with `…`, never inside an
    escape such as `&amp;`), so that several texts can share one block of bounded size."""
    value = escape_slack(" ".join(str(text or "").split()))
    if len(value) <= limit:
        return value
    cut = value[: limit - 1]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut.rstrip() + "…"


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


def format_span(
    start: datetime, end: datetime, tz: str | tzinfo = "UTC", style: str = "time", *, joiner: str = " to "
) -> str:
    """`02:00 to 18:00` within one local day; across days, each end carries its date
    (`2024-01-15 23:27 to 2024-01-16 18:14`). `style` `datetime` always shows the dates."""
    if style == "time" and format_when(start, tz, "date") != format_when(end, tz, "date"):
        style = "datetime"
    return f"{format_when(start, tz, style)}{joiner}{format_when(end, tz, style)}"


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
    env.filters["md"] = escape_markdown
    env.filters["md_block"] = escape_markdown_block
    env.filters["short"] = escape_short
    env.filters["duration"] = format_optional_duration
    env.filters["when"] = format_when
    env.filters["join_words"] = join_words
    return env
