"""Private replies and the one error handler: user errors get a helpful private reply, ours get logged."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackApiError

from core.db import is_outage
from core.errors import SitrepError
from handlers.deps import Deps, deps_of

log = logging.getLogger("sitrep.handlers")


@dataclass(frozen=True)
class Who:
    """Who to answer, and where, taken from any Slack payload."""

    user_id: str | None
    channel_id: str | None
    response_url: str | None

    @classmethod
    def of(cls, body: dict[str, Any]) -> Who:
        user = body.get("user_id") or (body.get("user") or {}).get("id") or (body.get("event") or {}).get("user")
        channel = (
            body.get("channel_id")
            or (body.get("channel") or {}).get("id")
            or (body.get("event") or {}).get("channel")
            or (body.get("event") or {}).get("item", {}).get("channel")
        )
        response_url = body.get("response_url")
        if not response_url and body.get("response_urls"):
            response_url = body["response_urls"][0].get("response_url")
        return cls(user_id=user, channel_id=channel, response_url=response_url)


def reply_private(deps: Deps, who: Who, text: str, blocks: list[dict[str, Any]] | None = None) -> None:
    """Answer one person privately: through response_url, else an ephemeral message, else a DM."""
    if who.response_url:
        response = deps.webhook(who.response_url).send(
            text=text, blocks=blocks, response_type="ephemeral", replace_original=False
        )
        if response.status_code == 200:
            return
        log.warning("response_url refused the reply", extra={"status": response.status_code})
    if who.user_id is None:
        return
    if who.channel_id:
        try:
            deps.client.chat_postEphemeral(channel=who.channel_id, user=who.user_id, text=text, blocks=blocks)
            return
        except SlackApiError as exc:
            if exc.response.get("error") not in ("user_not_in_channel", "not_in_channel", "channel_not_found"):
                raise
    deps.client.chat_postMessage(channel=who.user_id, text=text, blocks=blocks)


OUTAGE_TEXT = (
    ":warning: sitrep couldn't save that: its database is unavailable at the moment, so nothing was changed. "
    "Please try again in a minute."
)


def handle_error(deps: Deps, error: BaseException, body: dict[str, Any]) -> None:
    """The one error handler: a SitrepError is the user's, anything else is ours. A database outage gets a
    clear "try again" (SPEC §15). Events are nobody's request: their errors are logged, never answered, so that
    people chatting while something fails (in any channel) get no error replies."""
    who = Who.of(body)
    if body.get("type") == "event_callback":
        event = body.get("event") if isinstance(body.get("event"), dict) else {}
        log.error("event work failed: %s", type(error).__name__, exc_info=error,
                  extra={"event_type": event.get("type"), "channel": who.channel_id})  # fmt: skip
        return
    if is_outage(error):
        log.warning("database unavailable: %s answered with try again", body.get("type") or body.get("command"),
                    exc_info=error, extra={"user": who.user_id, "channel": who.channel_id})  # fmt: skip
        text = OUTAGE_TEXT
    elif isinstance(error, SitrepError):
        text = f":warning: {error}"
    else:
        ref = uuid.uuid4().hex[:8]
        log.error(
            "handler failed (ref %s): %s",
            ref,
            error,
            exc_info=error,
            extra={
                "ref": ref,
                "payload_type": body.get("type") or body.get("command"),
                "user": who.user_id,
                "channel": who.channel_id,
            },
        )
        text = f":sweat: Sorry, something went wrong on our side (ref `{ref}`). It has been logged."
    try:
        reply_private(deps, who, text)
    except Exception:  # noqa: BLE001 - the apology itself failed; the log line above is what we have
        log.exception("could not deliver the error reply", extra={"user": who.user_id})


Work = Callable[[Deps, dict[str, Any]], None]


def guarded(work: Work, *, defer_outage: bool = False) -> Callable[..., None]:
    """Make `work(deps, body)` a Bolt lazy listener (it runs after the ack) behind the one error handler. With
    `defer_outage` (event work), work that failed for a database outage waits to run again (retry_deferred)."""

    def run(body: dict[str, Any], context: Any) -> None:
        deps = deps_of(context)
        try:
            work(deps, body)
        except Exception as error:  # noqa: BLE001 - errors must never kill the worker
            if defer_outage and is_outage(error):
                deps.deferred.add(work, body)
                log.warning("database unavailable: an event's work waits for it", extra={"waiting": len(deps.deferred)})
                return
            handle_error(deps, error, body)

    run.__name__ = run.__qualname__ = f"lazy_{work.__name__}"
    return run


def ack_only(ack: Any) -> None:
    """Acknowledge at once; the work follows in a lazy listener."""
    ack()


def after_ack(work: Work) -> dict[str, Any]:
    """A Bolt listener's arguments: ack at once, then run `work(deps, body)` behind the one error handler."""
    return {"ack": ack_only, "lazy": [guarded(work)]}


RETRY_KEY = "sitrep_retry_num"


def retry_deferred(deps: Deps) -> int:
    """Run again the event work that a database outage held up, oldest first; at the first that meets the
    outage again, it and the rest wait for the next call. Returns how many ran."""
    pending = deps.deferred.take()
    for done, (work, body) in enumerate(pending):
        try:
            work(deps, body)
        except Exception as error:  # noqa: BLE001 - logged, never raised
            if is_outage(error):
                deps.deferred.put_back(pending[done:])
                return done
            handle_error(deps, error, body)
    return len(pending)


def in_background(work: Work, *, at_ack: Work | None = None) -> Callable[..., None]:
    """An event listener that hands `work(deps, body)` to the worker pool and returns at once; `at_ack`, if
    given, runs first, before the ack (keep it cheap and free of Slack calls).

    Bolt acknowledges events by itself; unlike a lazy listener this does not deep-copy the request, which
    matters on the busiest path (every message and reaction)."""
    guarded_work = guarded(work, defer_outage=True)

    def submit(body: dict[str, Any], context: Any, request: Any) -> None:
        deps = deps_of(context)
        assert deps.executor is not None
        if at_ack is not None:
            try:
                at_ack(deps, body)
            except Exception:  # noqa: BLE001 - only a help for the work (e.g. a read ahead); the ack goes on
                log.warning("work at the ack of an event failed", exc_info=True)
        retry = (request.headers.get("x-slack-retry-num") or [None])[0]
        deps.executor.submit(guarded_work, {**body, RETRY_KEY: retry} if retry else body, {"deps": deps})

    submit.__name__ = submit.__qualname__ = f"background_{work.__name__}"
    return submit
