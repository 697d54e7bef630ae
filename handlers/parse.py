"""The `/incident` grammar of SPEC §4: text in, a typed command out. Pure; raises InvalidInput."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

from core.enums import Phase, Priority, Role, Severity
from core.errors import InvalidInput

MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")
SEVERITY_WORDS = "`sev1`, `sev2`, `sev3` or `sev4`"
ROLE_WORDS = "`commander`, `comms`, `scribe` or `ops`"
# The commands that change an incident: they take membership of its channel (SPEC §15).
CHANGING_COMMANDS = (
    "update", "severity", "role", "note", "action", "resolve", "reopen", "pir", "page", "jira", "statuspage",
)  # fmt: skip
CHANNEL_COMMANDS = (
    "update", "severity", "role", "note", "action", "status", "timeline", "resolve", "pir", "catchup", "page",
    "jira", "statuspage",
)  # fmt: skip


@dataclass(frozen=True)
class Command:
    name: str
    text: str = ""
    severity: Severity | None = None
    private: bool = False
    phase: Phase | None = None
    role: Role | None = None
    user_id: str | None = None
    priority: Priority | None = None
    due: date | None = None
    public: bool = False  # `update --public`: publish to the status page too
    extras: dict[str, str] = field(default_factory=dict)

    @property
    def needs_incident_channel(self) -> bool:
        # `reopen INC-7` works from any channel (its channel may be archived); `reopen` alone is about this one.
        return self.name in CHANNEL_COMMANDS or (self.name == "reopen" and not self.text)

    @property
    def changes_incident(self) -> bool:
        return self.name in CHANGING_COMMANDS


def parse_severity(token: str) -> Severity:
    try:
        return Severity.parse(token)
    except ValueError:
        raise InvalidInput(f"`{token}` is not a severity: use {SEVERITY_WORDS}.") from None


def parse(text: str) -> Command:
    """Parse the text after `/incident`. Unknown or empty text gives the `help` command."""
    words = text.strip().split(maxsplit=1)
    if not words:
        return Command("help")
    name, rest = words[0].lower(), (words[1].strip() if len(words) > 1 else "")
    parser = _PARSERS.get(name)
    if parser is None:
        return Command("help", extras={"unknown": words[0]})
    return parser(rest)


def _declare(rest: str) -> Command:
    if not rest:
        return Command("declare")  # opens the modal
    severity: Severity | None = None
    private = False
    words = rest.split()
    while words:
        head = words[0]
        if head.lower() == "--private":
            private = True
        elif severity is None and re.fullmatch(r"sev-?\d", head, flags=re.IGNORECASE):
            severity = parse_severity(head)
        else:
            break
        words.pop(0)
    title = " ".join(words)
    if not title:
        raise InvalidInput(
            "Give the incident a title, e.g. `/incident declare sev2 Checkout errors`, "
            "or run `/incident declare` alone to open the form."
        )
    return Command("declare", text=title, severity=severity, private=private)


def _update(rest: str) -> Command:
    words = rest.split()
    public = "--public" in words
    if public:
        rest = " ".join(word for word in words if word != "--public")
    if not rest:
        if public:
            raise InvalidInput("Say what to publish, e.g. `/incident update monitoring --public Fix deployed`.")
        return Command("update")  # opens the modal
    head, _, tail = rest.partition(" ")
    try:
        phase = Phase(head.lower())
    except ValueError:
        return Command("update", text=rest, public=public)
    if phase == Phase.RESOLVED:
        raise InvalidInput("To resolve, use `/incident resolve <root cause>`.")
    if not tail.strip():
        raise InvalidInput(f"Say what changed after `{head}`, e.g. `/incident update {head} Rolling back v2.4.1`.")
    return Command("update", text=tail.strip(), phase=phase, public=public)


def _severity(rest: str) -> Command:
    if not rest:
        raise InvalidInput(f"Name the new severity: `/incident severity sev1 [reason]`, with {SEVERITY_WORDS}.")
    head, _, reason = rest.partition(" ")
    return Command("severity", severity=parse_severity(head), text=reason.strip())


def _role(rest: str) -> Command:
    usage = f"Use `/incident role <role> @person`, with a role of {ROLE_WORDS}."
    words = rest.split()
    if len(words) < 2:
        raise InvalidInput(usage)
    try:
        role = Role(words[0].lower())
    except ValueError:
        raise InvalidInput(f"`{words[0]}` is not a role. {usage}") from None
    mention = MENTION.fullmatch(words[1])
    if mention is None:
        raise InvalidInput(f"Mention the person with @, e.g. `/incident role {role.value} @alice`.")
    return Command("role", role=role, user_id=mention.group(1))


def _note(rest: str) -> Command:
    if not rest:
        raise InvalidInput("Write the note after the command, e.g. `/incident note Failover started`.")
    return Command("note", text=rest)


def _action(rest: str) -> Command:
    if not rest:
        return Command("action")  # the command then asks for the text
    owner: str | None = None
    priority: Priority | None = None
    due: date | None = None
    kept: list[str] = []
    for word in rest.split():
        mention = MENTION.fullmatch(word)
        if mention and owner is None:
            owner = mention.group(1)
        elif re.fullmatch(r"[Pp][1-3]", word) and priority is None:
            priority = Priority(word.upper())
        elif word.lower().startswith("due:") and due is None:
            try:
                due = date.fromisoformat(word[4:])
            except ValueError:
                raise InvalidInput(f"`{word}` is not a date: write `due:YYYY-MM-DD`, e.g. `due:2025-01-31`.") from None
        else:
            kept.append(word)
    title = " ".join(kept)
    if not title:
        raise InvalidInput("Describe the action, e.g. `/incident action Add pool alerts @alice P1 due:2025-01-31`.")
    return Command("action", text=title, user_id=owner, priority=priority, due=due)


STATS_PERIODS = ("30d", "90d", "365d")


def _stats(rest: str) -> Command:
    period = rest.strip().lower() or "30d"
    if period not in STATS_PERIODS:
        raise InvalidInput("Say over how long: `/incident stats 30d`, `/incident stats 90d` or `/incident stats 365d`.")
    return Command("stats", text=period)


def _reopen(rest: str) -> Command:
    key = rest.strip()
    if key and not re.fullmatch(r"(?i)(inc-)?\d+", key):
        raise InvalidInput(f"`{key}` is not an incident key: use `/incident reopen INC-7`, or `/incident reopen` "
                           "in its channel.")
    return Command("reopen", text=key.upper())


def _plain(name: str) -> Callable[[str], Command]:
    def parser(rest: str) -> Command:
        return Command(name, text=rest)

    return parser


_PARSERS = {
    "declare": _declare,
    "update": _update,
    "severity": _severity,
    "sev": _severity,
    "role": _role,
    "note": _note,
    "action": _action,
    "status": _plain("status"),
    "timeline": _plain("timeline"),
    "resolve": _plain("resolve"),
    "reopen": _reopen,
    "pir": _plain("pir"),
    "jira": _plain("jira"),
    "statuspage": _plain("statuspage"),
    "list": _plain("list"),
    "catchup": _plain("catchup"),
    "stats": _stats,
    "page": _plain("page"),
    "oncall": _plain("oncall"),
    "help": _plain("help"),
}
