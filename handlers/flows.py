"""Orchestration that spans core and Slack: the declare flow of SPEC §5 and the visible state changes.

Listeners (commands, views, actions) parse their payload and call these; these call core for state and the
one WebClient for Slack, and never parse payloads themselves."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from slack_sdk.errors import SlackApiError
from sqlmodel import Session

from core import jira, paging, statuspage, store
from core.enums import Phase, Role, Severity
from core.errors import InvalidState, NotAllowed
from core.models import Incident
from core.naming import channel_name, slugify
from core.severity import ImpactFacts, classify
from handlers import blockkit
from handlers.deps import Deps
from handlers.posting import PostKey, post_once
from handlers.reply import Who, reply_private

log = logging.getLogger("sitrep.flows")

DECLARE_STEPS = ("row", "channel", "invited", "intro", "bookmarked", "announced", "confirmed")
STEP_WORDS = {
    "channel": "creating its channel",
    "invited": "inviting you and setting the topic",
    "intro": "posting its pinned intro message",
    "bookmarked": "bookmarking its meeting link",
    "announced": "announcing it",
    "confirmed": "confirming it to you",
}


def slack_error(exc: SlackApiError) -> str:
    return str(exc.response.get("error", ""))


def suggest(deps: Deps, *, severity: Severity | None, impact: ImpactFacts | None) -> tuple[Severity, list[str]]:
    """The severity to declare with and why: the one asked for, else the suggestion of core.severity."""
    if severity is not None:
        return severity, []
    if impact is not None and impact != ImpactFacts():
        result = classify(impact, cadence=dict(deps.config.cadence), default=deps.config.default_severity)
        return result.severity, [f"suggested: {reason}" for reason in result.reasons]
    default = deps.config.default_severity
    return default, [f"{default.label} is the default when no severity is given"]


def declare(
    deps: Deps,
    who: Who,
    *,
    title: str,
    severity: Severity | None,
    private: bool = False,
    commander_id: str | None = None,
    description: str = "",
    services: Sequence[str] = (),
    impact: ImpactFacts | None = None,
    team_id: str | None = None,
    before: Callable[[Session], None] | None = None,
    also: Callable[[Session, Incident], None] | None = None,
) -> Incident:
    """Declare (SPEC §5). `before(session)` and `also(session, incident)` run in the transaction that stores the
    incident, before and after it (e.g. claim an API Idempotency-Key, link the alert group it was declared from):
    if either raises, no incident is made."""
    if who.user_id is None:
        raise ValueError("a declaration needs the declaring user")
    chosen, reasons = suggest(deps, severity=severity, impact=impact)
    with deps.tx() as session:
        if before is not None:
            before(session)
        incident = store.declare(
            session=session,
            title=title,
            severity=chosen,
            declared_by=who.user_id,
            commander_id=commander_id,
            private=private,
            description=description,
            services=services,
            impact=impact.model_dump(exclude_defaults=True) if impact else None,
            severity_reasons=reasons,
            team_id=team_id,
            now=deps.now(),
            cadence=deps.config.cadence,
        )
        paging.on_declare(session=session, incident=incident, paging=deps.config.paging, now=deps.now())
        jira.on_declare(session=session, incident=incident, rules=deps.config.jira, now=deps.now())
        if also is not None:
            also(session, incident)
    return finish_declare(deps, incident, who)


def finish_declare(deps: Deps, incident: Incident, who: Who, *, resumed: bool = False) -> Incident:
    """Run the remaining steps of the declare flow, recording each, so that a failure can be resumed.

    A first attempt that fails tells the declarer once; a `resumed` attempt (the scheduler's, or at start) that
    fails again is only logged, and tells them when it succeeds."""
    steps = {
        "channel": _create_channel,
        "invited": _invite_and_set_topic,
        "intro": lambda d, i: _post_intro(d, i, retry=resumed),
        "bookmarked": _bookmark_bridge,
        "announced": _announce,
        "confirmed": lambda d, i: _confirm(d, i, who),
    }
    done = DECLARE_STEPS.index(incident.declare_step)
    for name in DECLARE_STEPS[done + 1 :]:
        try:
            steps[name](deps, incident)
        except Exception as exc:  # noqa: BLE001 - reported below; the row keeps where it stopped
            _save(deps, incident, declare_error=f"{name}: {exc}"[:500])
            log.exception("declare of %s stopped at step %s", incident.key, name, extra={"incident": incident.key})
            if not resumed:
                reply_private(
                    deps,
                    who,
                    f":sweat: {incident.key} is recorded, but {STEP_WORDS[name]} failed on our side. "
                    "sitrep tries the remaining steps again shortly and tells you when it is done; "
                    "the error has been logged.",
                )
            return incident
        _save(deps, incident, declare_step=name, declare_error=None)
    return incident


def _confirm(deps: Deps, incident: Incident, who: Who) -> None:
    if who.user_id != deps.bot_user_id:  # declared through the API with no person behind it: no one to tell
        reply_private(deps, who, blockkit.mrkdwn("confirmation", incident=incident))


RESUMING = "resuming since "


def _stalled(incident: Incident, now: datetime, stale: timedelta) -> bool:
    """Whether a declaration should be resumed now: a step failed, or it stopped without a word (its process
    died) or while being resumed longer than `stale` ago (a declare in flight is left alone)."""
    error = incident.declare_error
    if error is None:
        return incident.declared_at <= now - stale
    if error.startswith(RESUMING):
        return datetime.fromisoformat(error.removeprefix(RESUMING)) <= now - stale
    return True


def resume_declarations(deps: Deps, *, stale: timedelta | None = None) -> list[str]:
    """Finish declarations that stopped part-way (e.g. Slack was down); the declarer is told by DM when done.

    At start every unfinished one is taken (`stale` None); the scheduler's periodic run takes those that failed
    or stalled (see _stalled). Each is claimed first with one conditional update, so that two replicas never
    resume the same one at once."""
    now = deps.now()
    with deps.read() as session:
        pending = store.unfinished_declarations(session=session)
    resumed = []
    for incident in pending:
        if stale is not None and not _stalled(incident, now, stale):
            continue
        with deps.tx() as session:
            claimed = store.claim_declaration(
                session=session, incident_id=incident.id or 0, seen=incident.declare_error,
                marker=f"{RESUMING}{now.isoformat()}",
            )  # fmt: skip
        if not claimed:
            continue
        who = Who(user_id=incident.declared_by, channel_id=None, response_url=None)
        finish_declare(deps, incident, who, resumed=True)
        resumed.append(incident.key or "")
    return resumed


def _save(deps: Deps, incident: Incident, **changes: object) -> None:
    """Record what a declare step made (its fields only: a change made meanwhile, e.g. severity, is kept)."""
    for key, value in changes.items():
        setattr(incident, key, value)
    with deps.tx() as session:
        store.record_slack_fields(session=session, incident_id=incident.id or 0, **changes)


def _create_channel(deps: Deps, incident: Incident) -> None:
    for attempt in range(1, 100):
        name = channel_name(
            prefix=deps.config.channel_prefix,
            day=incident.declared_at.astimezone(deps.config.zone).date(),
            title=incident.title,
            number=incident.id or 0,
            attempt=attempt,
        )
        try:
            response = deps.client.conversations_create(name=name, is_private=incident.private)
        except SlackApiError as exc:
            if slack_error(exc) == "name_taken":
                continue
            raise
        _save(deps, incident, channel_id=response["channel"]["id"], channel_name=response["channel"]["name"])
        return
    raise RuntimeError(f"no free channel name for {incident.key}")


def invite(deps: Deps, channel_id: str, users: Sequence[str]) -> None:
    wanted = sorted({user for user in users if user and user != deps.bot_user_id})
    if not wanted:
        return
    try:
        deps.client.conversations_invite(channel=channel_id, users=",".join(wanted))
    except SlackApiError as exc:
        if slack_error(exc) not in ("already_in_channel", "cant_invite_self"):
            raise
    cache: dict[tuple[str, str], tuple[bool, float]] = deps.extra.setdefault("members", {})
    for user in wanted:
        cache[(channel_id, user)] = (True, time.monotonic() + MEMBERS_SECONDS)


def user_name(deps: Deps, user_id: str) -> str:
    cache: dict[str, str] = deps.extra.setdefault("user_names", {})
    if user_id not in cache:
        try:
            user = deps.client.users_info(user=user_id)["user"]
            profile = user.get("profile") or {}
            cache[user_id] = profile.get("display_name") or user.get("name") or user_id
        except SlackApiError:
            return user_id
    return cache[user_id]


def refresh_topic(deps: Deps, incident: Incident) -> None:
    if incident.channel_id:
        name = user_name(deps, incident.commander_id)
        deps.client.conversations_setTopic(channel=incident.channel_id, topic=blockkit.topic(incident, name))


def _invite_and_set_topic(deps: Deps, incident: Incident) -> None:
    assert incident.channel_id
    invite(deps, incident.channel_id, [incident.declared_by, incident.commander_id])
    invite_on_call(deps, incident)
    refresh_topic(deps, incident)


def slack_user_of(deps: Deps, email: str) -> str | None:
    cache: dict[str, str | None] = deps.extra.setdefault("users_by_email", {})
    if email not in cache:
        try:
            cache[email] = str(deps.client.users_lookupByEmail(email=email)["user"]["id"])
        except SlackApiError as error:
            if slack_error(error) != "users_not_found":
                raise
            cache[email] = None
    return cache[email]


def invite_on_call(deps: Deps, incident: Incident) -> list[str]:
    """On declare at a paged severity: invite the level-1 on-call people (PagerDuty) into the incident channel.
    A failure is logged and costs the declaration nothing."""
    if deps.oncall is None or incident.channel_id is None or incident.severity not in deps.config.paging.severities:
        return []
    try:
        people = deps.oncall.on_call()
        users = [user for person in people if person.level == 1 and (user := slack_user_of(deps, person.email))]
        invite(deps, incident.channel_id, users)
    except Exception:  # noqa: BLE001 - paging goes on through the outbox; the invite is a convenience
        log.exception("could not invite the on-call people into %s", incident.key, extra={"incident": incident.key})
        return []
    return users


def _roles(deps: Deps, incident: Incident) -> dict[Role, str]:
    with deps.read() as session:
        return store.roles_of(session=session, incident=incident)


def _post_intro(deps: Deps, incident: Incident, *, retry: bool = False) -> None:
    """Post and pin the intro. It carries a key (handlers.posting), so that a resumed declare whose first post
    timed out, or whose process died before storing the ts, finds it instead of posting it twice."""
    assert incident.channel_id
    if incident.intro_ts is None:
        blocks = blockkit.intro_blocks(
            incident,
            roles=_roles(deps, incident),
            reasons=incident.severity_reasons,
            emoji=deps.config.timeline_emoji[0],
            tz=deps.config.timezone,
            bridge=bridge_url(deps, incident),
        )
        text = blockkit.fallback_text(f"{incident.key} {incident.severity.label}: {incident.title}")
        key = PostKey("intro", str(incident.id))
        ts, _new = post_once(deps, incident.channel_id, key, retry=retry, text=text, blocks=blocks)
        # Recorded at once: a failure of the pin below must not post the intro a second time on resume.
        _save(deps, incident, intro_ts=ts)
    try:
        deps.client.pins_add(channel=incident.channel_id, timestamp=incident.intro_ts)
    except SlackApiError as exc:
        if slack_error(exc) != "already_pinned":
            raise


def bridge_url(deps: Deps, incident: Incident) -> str | None:
    """SITREP_BRIDGE_URL with the incident's key and title slug filled in (SPEC §14), or None when unset."""
    template = deps.config.bridge_url
    if not template:
        return None
    return template.format(key=incident.key, slug=slugify(incident.title) or str(incident.id))


def _bookmark_bridge(deps: Deps, incident: Incident) -> None:
    """Bookmark the meeting link in the channel. A refused bookmark (e.g. the channel's limit) is logged and
    does not hold up the declaration: the intro shows the link too."""
    url = bridge_url(deps, incident)
    if not url or not incident.channel_id:
        return
    try:
        deps.client.bookmarks_add(channel_id=incident.channel_id, title="Incident bridge", type="link", link=url)
    except SlackApiError as exc:
        log.warning("could not bookmark the bridge of %s: %s", incident.key, slack_error(exc),
                    extra={"incident": incident.key})  # fmt: skip


def _announce(deps: Deps, incident: Incident) -> None:
    target = deps.config.announce_channel
    if not target or incident.private:
        return
    text = blockkit.mrkdwn("announce", incident=incident, duration=None)
    try:
        response = deps.client.chat_postMessage(channel=target, text=text)
    except SlackApiError as exc:
        if slack_error(exc) != "not_in_channel":
            raise
        deps.client.conversations_join(channel=target)
        response = deps.client.chat_postMessage(channel=target, text=text)
    _save(deps, incident, announce_channel=target, announce_ts=response["ts"])


def refresh_announcement(deps: Deps, incident: Incident) -> None:
    """Edit the one-line announcement in place (severity change, resolution, reopen)."""
    if not (incident.announce_channel and incident.announce_ts):
        return
    duration = (incident.resolved_at - incident.declared_at) if incident.resolved_at else timedelta(0)
    text = blockkit.mrkdwn("announce", incident=incident, duration=duration)
    try:
        deps.client.chat_update(channel=incident.announce_channel, ts=incident.announce_ts, text=text)
    except SlackApiError:
        log.warning("could not edit the announcement of %s", incident.key, exc_info=True)


def post_in_channel(deps: Deps, incident: Incident, text: str, blocks: list[dict[str, object]] | None = None) -> str:
    assert incident.channel_id
    response = deps.client.chat_postMessage(
        channel=incident.channel_id, text=blockkit.fallback_text(text) if blocks else text, blocks=blocks
    )
    return str(response["ts"])


def status_update(
    deps: Deps, incident: Incident, *, phase: Phase | None, text: str, author_id: str, public: bool = False
) -> None:
    """Post (and record) a status update; `public` publishes it to the status page too, in its phase."""
    chosen = phase or incident.phase
    phase_changed = chosen != incident.phase
    with deps.tx() as session:
        incident = store.reload(session=session, incident=incident)
        if public and not deps.config.statuspage:
            raise InvalidState("The status page is not configured (STATUSPAGE_API_KEY, STATUSPAGE_PAGE_ID).")
        if public and not statuspage.is_public(session=session, incident=incident):
            raise InvalidState(f"{incident.key} has no public incident yet: create it with `/incident statuspage`.")
        update = store.post_status_update(
            session=session,
            incident=incident,
            phase=chosen,
            text=text,
            author_id=author_id,
            now=deps.now(),
            cadence=deps.config.cadence,
        )
        update_id = update.id
        if public:
            statuspage.publish_update(session=session, incident=incident, phase=chosen, body=text, now=deps.now(),
                                      update_id=update_id)  # fmt: skip
    message = blockkit.mrkdwn(
        "status_update",
        incident=incident,
        phase=chosen,
        text=text,
        author=author_id,
        due=incident.next_update_due,
        tz=deps.config.timezone,
    )
    ts = post_in_channel(deps, incident, message)
    with deps.tx() as session:
        store.record_update_ts(session=session, update_id=update_id, ts=ts)
    if phase_changed:
        refresh_topic(deps, incident)


def change_severity(deps: Deps, incident: Incident, *, severity: Severity, reason: str, actor_id: str) -> None:
    with deps.tx() as session:
        incident = store.reload(session=session, incident=incident)
        before, due_before = incident.severity, incident.next_update_due
        change = store.change_severity(
            session=session,
            incident=incident,
            severity=severity,
            reason=reason,
            actor_id=actor_id,
            now=deps.now(),
            cadence=deps.config.cadence,
        )
        paging.on_severity_change(session=session, incident=incident, before=before, paging=deps.config.paging,
                                  now=deps.now(), change_id=change.id)  # fmt: skip
        jira.on_severity_change(session=session, incident=incident, before=before, rules=deps.config.jira,
                                now=deps.now(), change_id=change.id)  # fmt: skip
    due = incident.next_update_due
    message = blockkit.mrkdwn("severity_changed", actor=actor_id, before=before, after=severity, reason=reason,
                              due=due, due_moved=due != due_before, every=deps.config.cadence.get(severity),
                              tz=deps.config.timezone)  # fmt: skip
    post_in_channel(deps, incident, message)
    refresh_topic(deps, incident)
    refresh_announcement(deps, incident)


def assign_role(deps: Deps, incident: Incident, *, role: Role, user_id: str, actor_id: str) -> None:
    with deps.tx() as session:
        incident = store.reload(session=session, incident=incident)
        store.assign_role(
            session=session, incident=incident, role=role, user_id=user_id, actor_id=actor_id, now=deps.now()
        )
    assert incident.channel_id
    invite(deps, incident.channel_id, [user_id])
    post_in_channel(deps, incident, f"<@{user_id}> is now the *{role.title}* (set by <@{actor_id}>)")
    if role == Role.COMMANDER:
        refresh_topic(deps, incident)


MEMBERS_SECONDS = 30.0  # how long an answer of conversations.members is trusted


def is_member(deps: Deps, channel_id: str, user_id: str) -> bool:
    """Whether the user is in the channel (conversations.members, cached briefly per channel and person). A
    private channel the bot was removed from counts as not visible."""
    cache: dict[tuple[str, str], tuple[bool, float]] = deps.extra.setdefault("members", {})
    hit = cache.get((channel_id, user_id))
    if hit is not None and hit[1] > time.monotonic():
        return hit[0]
    found = _in_members(deps, channel_id, user_id)
    cache[(channel_id, user_id)] = (found, time.monotonic() + MEMBERS_SECONDS)
    return found


def _in_members(deps: Deps, channel_id: str, user_id: str) -> bool:
    cursor = None
    while True:
        try:
            response = deps.client.conversations_members(channel=channel_id, cursor=cursor, limit=1000)
        except SlackApiError as exc:
            if slack_error(exc) in ("channel_not_found", "not_in_channel"):
                return False
            raise
        if user_id in response["members"]:
            return True
        cursor = (response.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            return False


def require_member(deps: Deps, incident: Incident, user_id: str | None) -> None:
    """Changing an incident takes membership of its channel (SPEC §15); anyone may still read a public one."""
    if incident.channel_id and user_id and is_member(deps, incident.channel_id, user_id):
        return
    if incident.private or not incident.channel_id:
        raise NotAllowed("Only the members of that incident's channel can change it.")
    raise NotAllowed(
        f"Only members of <#{incident.channel_id}> can change {incident.key}. Join the channel to help; "
        f"anyone may follow it with `/incident status` there."
    )


def visible_open_incidents(deps: Deps, user_id: str) -> list[Incident]:
    """Open incidents the user may see: every public one, private ones only for their members."""
    with deps.read() as session:
        incidents = store.open_incidents(session=session)
    return [
        incident
        for incident in incidents
        if not incident.private or (incident.channel_id is not None and is_member(deps, incident.channel_id, user_id))
    ]
