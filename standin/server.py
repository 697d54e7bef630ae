"""FakeSlack: a small stateful Slack Web API server for tests.

It serves ``/api/<method>`` (form or JSON bodies, like slack_sdk sends them), ``/upload/<file_id>`` (the URL
files.getUploadURLExternal hands out) and ``/response/<id>`` (response_url). Every method refuses what
real Slack refuses: arguments come from the method data in ``methods/``, the rest from Slack's documented
rules (channel names, Block Kit limits, membership, trigger_id expiry, response_url limits).
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
import math
import re
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self, TypeVar
from urllib.parse import parse_qsl, urlsplit

from .blocks import BlockError, validate_blocks, validate_view
from .specs import MethodSpec, load_specs

Args = dict[str, Any]
Handler = Callable[["FakeSlack", Args], Args]
T = TypeVar("T")

HANDLERS: dict[str, Handler] = {}
APP_TOKEN_METHODS = frozenset({"apps.connections.open"})
MAX_TEXT = 40_000
TRIGGER_TTL = 3.0
RESPONSE_URL_TTL = 30 * 60.0
RESPONSE_URL_MAX_POSTS = 5
CHANNEL_NAME = re.compile(r"[a-z0-9_-]+")
PERMALINK_BASE = "https://fake.slack.example"


def api(method: str) -> Callable[[Handler], Handler]:
    """Register a handler for a Web API method in the dispatch table."""

    def register(fn: Handler) -> Handler:
        HANDLERS[method] = fn
        return fn

    return register


class SlackError(Exception):
    """An error answer: ``{"ok": false, "error": error, **extra}`` with an HTTP status."""

    def __init__(self, error: str, *, status: int = 200, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(error)
        self.error, self.status, self.headers, self.extra = error, status, headers or {}, extra


@dataclass
class Call:
    """One Web API call as the fake saw it."""

    method: str
    args: Args
    response: Args
    status: int = 200


@dataclass
class Channel:
    id: str
    name: str
    is_private: bool = False
    is_im: bool = False
    members: list[str] = field(default_factory=list)
    topic: str = ""
    purpose: str = ""
    pins: list[str] = field(default_factory=list)
    archived: bool = False
    created: int = 0
    creator: str = ""
    im_user: str | None = None
    messages: list[Args] = field(default_factory=list)
    bookmarks: list[Args] = field(default_factory=list)


@dataclass
class _Fault:
    status: int
    times: int
    retry_after: int
    error: str | None


def _str(a: Args, key: str) -> str:
    value = a.get(key)
    return "" if value is None else str(value)


def _flag(a: Args, key: str) -> bool:
    return a.get(key) in (True, 1, "1", "true", "True")


def _json(a: Args, key: str, error: str) -> Any:
    """An argument that is JSON: already decoded (JSON body) or a JSON string (form body)."""
    value = a.get(key)
    if isinstance(value, str) and value:
        try:
            return json.loads(value)
        except ValueError:
            raise SlackError(error) from None
    return value


def _ts(value: str, error: str = "bad_timestamp") -> Decimal:
    try:
        return Decimal(value)
    except InvalidOperation:
        raise SlackError(error) from None


def _encode_cursor(offset: int) -> str:
    return base64.b64encode(f"offset:{offset}".encode()).decode()


class _Server(ThreadingHTTPServer):
    # Python's default backlog of 5 drops connections when several bots post at once (each drop stalls the
    # client for a second); Slack itself never refuses a connection for that.
    request_queue_size = 128


class FakeSlack:
    """A stateful fake of the Slack Web API on 127.0.0.1 (context manager, or start()/stop())."""

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-fake-bot-token",
        app_token: str = "xapp-fake-app-token",
        team_id: str = "T0FAKETEAM",
        team_name: str = "Fake Team",
        bot_user_id: str = "U0SITREPBOT",
        bot_id: str = "B0SITREP",
        app_id: str = "A0SITREP",
        bot_name: str = "sitrep",
    ) -> None:
        self.bot_token, self.app_token = bot_token, app_token
        self.team_id, self.team_name = team_id, team_name
        self.bot_user_id, self.bot_id, self.app_id, self.bot_name = bot_user_id, bot_id, app_id, bot_name
        self.clock: Callable[[], float] = time.time
        self.latency = 0.0
        self.enforce_rate_limits = False
        self.rate_limit_burst = 5  # chat.postMessage: ~1 message/s/channel after a burst of this many
        self.specs: dict[str, MethodSpec] = load_specs()
        self.socket_mode_url: str | None = None  # set by FakeSocketMode

        self.users: dict[str, Args] = {}
        self.usergroups: dict[str, Args] = {}
        self.channels: dict[str, Channel] = {}
        self.ephemeral_log: list[Args] = []
        self.views: dict[str, Args] = {}
        self.home_views: dict[str, Args] = {}
        self.files: dict[str, Args] = {}
        self.responses: dict[str, list[Args]] = {}
        self.calls: list[Call] = []
        self.internal_errors: list[str] = []

        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._ids = itertools.count(1)
        self._last_us = 0
        self._faults: dict[str, list[_Fault]] = {}
        self._triggers: dict[str, Args] = {}
        self._response_urls: dict[str, Args] = {}
        self._uploads: dict[str, Args] = {}
        self._buckets: dict[str, tuple[float, float]] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.add_user(bot_user_id, bot_name, real_name=bot_name, is_bot=True)

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> Self:
        self._server = _Server(("127.0.0.1", 0), _RequestHandler)
        self._server.daemon_threads = True
        self._server.fake = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), name="fakeslack", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server, "FakeSlack is not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}/"

    @property
    def api_url(self) -> str:
        """The slack_sdk WebClient base_url."""
        return self.base_url + "api/"

    # ------------------------------------------------------------ test set-up

    def add_user(
        self,
        user_id: str,
        name: str,
        real_name: str | None = None,
        email: str | None = None,
        *,
        is_bot: bool = False,
        tz: str = "UTC",
    ) -> Args:
        real_name = real_name or name
        user = {
            "id": user_id,
            "team_id": self.team_id,
            "name": name,
            "real_name": real_name,
            "deleted": False,
            "is_bot": is_bot,
            "is_admin": False,
            "tz": tz,
            "profile": {"real_name": real_name, "display_name": name, "email": email, "team": self.team_id},
        }
        with self._lock:
            self.users[user_id] = user
        return user

    def add_usergroup(self, usergroup_id: str, handle: str, users: Iterable[str]) -> None:
        with self._lock:
            self.usergroups[usergroup_id] = {"id": usergroup_id, "handle": handle, "users": list(users)}

    def add_channel(
        self, name: str, members: Iterable[str] = (), *, is_private: bool = False, bot_member: bool = False
    ) -> str:
        """Create a channel as a person would; unknown member ids become users. Returns its id."""
        with self._lock:
            for user in members:
                if user not in self.users:
                    self.add_user(user, user.lower())
            ch = self._new_channel(name, is_private=is_private, creator=next(iter(members), ""))
            ch.members = list(dict.fromkeys([*members, *([self.bot_user_id] if bot_member else [])]))
            self._changed.notify_all()
            return ch.id

    def fail_next(
        self, method: str, status: int | None = None, *, times: int = 1, retry_after: int = 1, error: str | None = None
    ) -> None:
        """The next ``times`` calls of ``method`` fail without touching state: HTTP 429 ``ratelimited``
        with Retry-After (default), another HTTP status (e.g. 500), or 200 ``{"ok": false, "error": error}``."""
        fault = _Fault(status or (200 if error else 429), times, retry_after, error)
        with self._lock:
            self._faults.setdefault(method, []).append(fault)

    def issue_trigger_id(self, user: str | None = None, view_id: str | None = None) -> str:
        """A trigger_id as an interaction would carry: single use, valid for 3 s of ``fake.clock``."""
        with self._lock:
            now = self.clock()
            trigger = f"{int(now)}.{next(self._ids)}.{base64.b16encode(str(now).encode()).decode()[-16:].lower()}"
            self._triggers[trigger] = {"issued": now, "used": False, "user": user, "view_id": view_id}
            return trigger

    def new_response_url(
        self, channel: str | None = None, user: str | None = None, message_ts: str | None = None
    ) -> str:
        """A response_url on this server; posts land in ``fake.responses[<last path segment>]``."""
        with self._lock:
            rid = f"R{next(self._ids):08d}"
            self._response_urls[rid] = {
                "created": self.clock(),
                "channel": channel,
                "user": user,
                "message_ts": message_ts,
            }
            self.responses[rid] = []
            return f"{self.base_url}response/{rid}"

    def response_posts(self, url: str) -> list[Args]:
        with self._lock:
            return copy.deepcopy(self.responses.get(url.rstrip("/").rsplit("/", 1)[-1], []))

    # ------------------------------------------------- simulating people (events)

    def post_as_user(self, channel: str, user: str, text: str, thread_ts: str | None = None) -> Args:
        """Store a person's message; return the ``message`` event the bot would receive."""
        with self._lock:
            ch = self._channel(channel)
            if user not in ch.members:
                raise ValueError(f"{user} is not a member of {ch.name}")
            msg = {
                "type": "message",
                "user": user,
                "text": text,
                "team": self.team_id,
                "client_msg_id": f"{next(self._ids):08d}-fake",
            }
            if thread_ts:
                msg["thread_ts"] = thread_ts
            return self._message_event(ch, self._store(ch, msg))

    def message_event(self, channel: str, ts: str) -> Args:
        """The ``message`` event for any stored message (also the bot's own)."""
        with self._lock:
            ch = self._channel(channel)
            return self._message_event(ch, self._find(ch, ts))

    def edit_as_user(self, channel: str, ts: str, text: str) -> Args:
        """Edit a stored message; return the ``message_changed`` event."""
        with self._lock:
            ch = self._channel(channel)
            msg = self._find(ch, ts)
            previous = copy.deepcopy(msg)
            msg["text"] = text
            msg["edited"] = {"user": msg.get("user"), "ts": self._next_ts()}
            return self._event(
                ch,
                {
                    "type": "message",
                    "subtype": "message_changed",
                    "hidden": True,
                    "message": copy.deepcopy(msg),
                    "previous_message": previous,
                    "ts": msg["edited"]["ts"],
                },
            )

    def delete_as_user(self, channel: str, ts: str) -> Args:
        """Delete a stored message; return the ``message_deleted`` event."""
        with self._lock:
            ch = self._channel(channel)
            msg = self._find(ch, ts)
            ch.messages.remove(msg)
            if ts in ch.pins:
                ch.pins.remove(ts)
            return self._event(
                ch,
                {
                    "type": "message",
                    "subtype": "message_deleted",
                    "hidden": True,
                    "deleted_ts": ts,
                    "previous_message": msg,
                    "ts": self._next_ts(),
                },
            )

    def react_as_user(self, channel: str, ts: str, user: str, name: str, *, remove: bool = False) -> Args:
        """Add (or remove) a reaction; return the ``reaction_added``/``reaction_removed`` event."""
        with self._lock:
            ch = self._channel(channel)
            msg = self._find(ch, ts)
            self._react(msg, name, user, remove=remove)
            return self._event(
                None,
                {
                    "type": "reaction_removed" if remove else "reaction_added",
                    "user": user,
                    "reaction": name,
                    "item_user": msg.get("user"),
                    "item": {"type": "message", "channel": ch.id, "ts": ts},
                },
            )

    def pin_as_user(self, channel: str, ts: str, user: str, *, remove: bool = False) -> Args:
        """Pin (or unpin) a message; return the ``pin_added``/``pin_removed`` event."""
        with self._lock:
            ch = self._channel(channel)
            msg = self._find(ch, ts)
            self._pin(ch, msg, remove=remove)
            item = {
                "type": "message",
                "channel": ch.id,
                "created": int(self.clock()),
                "created_by": user,
                "message": copy.deepcopy(msg),
            }
            return self._event(
                None,
                {
                    "type": "pin_removed" if remove else "pin_added",
                    "user": user,
                    "channel_id": ch.id,
                    "item": item,
                    "item_user": msg.get("user"),
                    "pin_count": len(ch.pins),
                    "has_pins": bool(ch.pins),
                },
            )

    def join_as_user(self, channel: str, user: str) -> Args:
        """Add a person to a channel; return the ``member_joined_channel`` event."""
        with self._lock:
            ch = self._channel(channel)
            if user not in ch.members:
                ch.members.append(user)
            return self._event(
                None,
                {
                    "type": "member_joined_channel",
                    "user": user,
                    "channel": ch.id,
                    "channel_type": "G" if ch.is_private else "C",
                    "team": self.team_id,
                },
            )

    # ------------------------------------------------------------ inspection

    def channel(self, channel: str) -> Channel:
        """A snapshot of a channel, by id or name (``#name`` too)."""
        with self._lock:
            return copy.deepcopy(self._channel(channel))

    def channel_by_name(self, name: str) -> Channel | None:
        with self._lock:
            ch = self._by_name(name.removeprefix("#"))
            return copy.deepcopy(ch) if ch else None

    def messages(self, channel: str, *, thread_ts: str | None = None) -> list[Args]:
        """Every stored message of a channel (thread replies included), oldest first; or one thread."""
        with self._lock:
            msgs = self._channel(channel).messages
            if thread_ts:
                msgs = [m for m in msgs if m["ts"] == thread_ts or m.get("thread_ts") == thread_ts]
            return copy.deepcopy(msgs)

    def ephemerals(self, user: str | None = None, channel: str | None = None) -> list[Args]:
        """Private replies: chat.postEphemeral and ephemeral response_url posts (``via`` tells which)."""
        with self._lock:
            cid = self._channel(channel).id if channel else None
            return copy.deepcopy(
                [
                    e
                    for e in self.ephemeral_log
                    if (user is None or e["user"] == user) and (cid is None or e["channel"] == cid)
                ]
            )

    def dms(self, user: str) -> list[Args]:
        """Messages in the direct-message channel between the bot and ``user``."""
        with self._lock:
            im = next((c for c in self.channels.values() if c.is_im and c.im_user == user), None)
            return copy.deepcopy(im.messages) if im else []

    def calls_to(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    def last_view(self, callback_id: str | None = None) -> Args | None:
        """The latest opened, pushed or updated modal (with that callback_id)."""
        with self._lock:
            views = [v for v in self.views.values() if callback_id in (None, v.get("callback_id"))]
            return self._public_view(copy.deepcopy(max(views, key=lambda v: v["_seq"]))) if views else None

    def wait_for(self, predicate: Callable[[], T], timeout: float = 5.0) -> T:
        """Wait until ``predicate()`` (evaluated under the lock after every change) is truthy; return it."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not (result := predicate()):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"condition not met within {timeout:.1f}s")
                self._changed.wait(remaining)
            return result

    def wait_for_calls(self, method: str, count: int = 1, timeout: float = 5.0) -> list[Call]:
        def enough() -> list[Call]:
            calls = self.calls_to(method)
            return calls if len(calls) >= count else []

        return self.wait_for(enough, timeout)

    # ------------------------------------------------------------ internals

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):08d}"

    def _next_ts(self) -> str:
        us = max(int(self.clock() * 1_000_000), self._last_us + 1)
        self._last_us = us
        return f"{us // 1_000_000}.{us % 1_000_000:06d}"

    def _new_channel(self, name: str, *, is_private: bool = False, creator: str = "") -> Channel:
        ch = Channel(id=self._new_id("C"), name=name, is_private=is_private, created=int(self.clock()), creator=creator)
        self.channels[ch.id] = ch
        return ch

    def _by_name(self, name: str) -> Channel | None:
        return next((c for c in self.channels.values() if c.name == name and not c.is_im), None)

    def _channel(self, ref: str) -> Channel:
        ch = self.channels.get(ref) or self._by_name(ref.removeprefix("#"))
        if ch is None:
            raise KeyError(f"no channel {ref!r}")
        return ch

    def _im(self, user: str) -> Channel:
        im = next((c for c in self.channels.values() if c.is_im and c.im_user == user), None)
        if im is None:
            im = Channel(
                id=self._new_id("D"),
                name=user,
                is_im=True,
                members=[self.bot_user_id, user],
                created=int(self.clock()),
                im_user=user,
            )
            self.channels[im.id] = im
        return im

    def _find(self, ch: Channel, ts: str, error: str = "message_not_found") -> Args:
        msg = next((m for m in ch.messages if m["ts"] == ts), None)
        if msg is None:
            raise SlackError(error)
        return msg

    def _store(self, ch: Channel, msg: Args) -> Args:
        msg["ts"] = self._next_ts()
        ch.messages.append(msg)
        parent = next((m for m in ch.messages if m["ts"] == msg.get("thread_ts")), None)
        if parent is not None:
            parent["thread_ts"] = parent["ts"]
            parent["reply_count"] = parent.get("reply_count", 0) + 1
            parent["reply_users"] = list(dict.fromkeys([*parent.get("reply_users", []), msg.get("user")]))
            parent["latest_reply"] = msg["ts"]
        self._changed.notify_all()
        return msg

    def _event(self, ch: Channel | None, event: Args) -> Args:
        event.setdefault("event_ts", self._next_ts())
        if ch is not None:
            event["channel"] = ch.id
            event["channel_type"] = "im" if ch.is_im else "group" if ch.is_private else "channel"
        self._changed.notify_all()
        return event

    def _message_event(self, ch: Channel, msg: Args) -> Args:
        return self._event(ch, {**copy.deepcopy(msg), "event_ts": msg["ts"]})

    def _react(self, msg: Args, name: str, user: str, *, remove: bool = False) -> None:
        reactions: list[Args] = msg.setdefault("reactions", [])
        entry = next((r for r in reactions if r["name"] == name), None)
        if remove:
            if entry and user in entry["users"]:
                entry["users"].remove(user)
                entry["count"] -= 1
            msg["reactions"] = [r for r in reactions if r["count"]]
            if not msg["reactions"]:
                del msg["reactions"]
        elif entry is None:
            reactions.append({"name": name, "users": [user], "count": 1})
        elif user not in entry["users"]:
            entry["users"].append(user)
            entry["count"] += 1

    def _pin(self, ch: Channel, msg: Args, *, remove: bool = False) -> None:
        if remove:
            ch.pins.remove(msg["ts"])
            msg.pop("pinned_to", None)
        else:
            ch.pins.append(msg["ts"])
            msg["pinned_to"] = [ch.id]

    # ----------------------------------------------------------- request dispatch

    def handle_api(self, method: str, args: Args, token: str | None) -> tuple[int, dict[str, str], Args]:
        if self.latency:
            time.sleep(self.latency)
        with self._lock:
            try:
                status, headers, body = 200, {}, {"ok": True, **self._dispatch(method, args, token)}
            except SlackError as e:
                status, headers, body = e.status, e.headers, {"ok": False, "error": e.error, **e.extra}
            except Exception:  # a bug in the fake: answer 500 and keep it for the test to see
                self.internal_errors.append(traceback.format_exc())
                status, headers, body = 500, {}, {"ok": False, "error": "fake_internal_error"}
            self.calls.append(Call(method, args, body, status))
            self._changed.notify_all()
            return status, headers, body

    def _dispatch(self, method: str, args: Args, token: str | None) -> Args:
        faults = self._faults.get(method)
        if faults:
            fault = faults[0]
            fault.times -= 1
            if fault.times <= 0:
                faults.pop(0)
            if fault.error:
                raise SlackError(fault.error, status=fault.status)
            if fault.status == 429:
                raise SlackError("ratelimited", status=429, headers={"Retry-After": str(fault.retry_after)})
            raise SlackError("internal_error", status=fault.status)
        handler, spec = HANDLERS.get(method), self.specs.get(method)
        if handler is None or spec is None:
            raise SlackError("unknown_method", req_method=method)
        expected = self.app_token if method in APP_TOKEN_METHODS else self.bot_token
        if not token:
            raise SlackError("not_authed")
        if token != expected:
            known = token in (self.app_token, self.bot_token)
            raise SlackError("not_allowed_token_type" if known else "invalid_auth")
        missing = spec.missing_argument_error(args)
        if missing:
            raise SlackError(missing)
        return handler(self, args)

    # --------------------------------------------------------- argument helpers

    def _conv(
        self, a: Args, key: str = "channel", *, member: bool = False, writable: bool = False, dm: bool = False
    ) -> Channel:
        """Resolve a channel argument (id, name or, with ``dm``, a user id) as the bot sees it."""
        ref = _str(a, key)
        ch = self.channels.get(ref) or self._by_name(ref.removeprefix("#"))
        if ch is None and dm and ref in self.users:
            ch = self._im(ref)
        if ch is None or (ch.is_private and self.bot_user_id not in ch.members):
            raise SlackError("channel_not_found")
        if member and self.bot_user_id not in ch.members:
            raise SlackError("not_in_channel")
        if writable and ch.archived:
            raise SlackError("is_archived")
        return ch

    def _conversation(self, ch: Channel) -> Args:
        if ch.is_im:
            return {"id": ch.id, "is_im": True, "user": ch.im_user, "created": ch.created, "is_open": True}
        text_meta = {"creator": self.bot_user_id, "last_set": ch.created}
        return {
            "id": ch.id,
            "name": ch.name,
            "name_normalized": ch.name,
            "is_channel": not ch.is_private,
            "is_group": False,
            "is_im": False,
            "is_mpim": False,
            "is_private": ch.is_private,
            "is_archived": ch.archived,
            "is_general": False,
            "created": ch.created,
            "creator": ch.creator,
            "is_member": self.bot_user_id in ch.members,
            "num_members": len(ch.members),
            "topic": {"value": ch.topic, **text_meta},
            "purpose": {"value": ch.purpose, **text_meta},
        }

    def _check_name(self, name: str, ch: Channel | None = None) -> None:
        if not name:
            raise SlackError("invalid_name_required")
        if len(name) > 80:
            raise SlackError("invalid_name_maxlength")
        if not CHANNEL_NAME.fullmatch(name):
            raise SlackError("invalid_name_specials")
        if not name.strip("-_"):
            raise SlackError("invalid_name_punctuation")
        taken = self._by_name(name)
        if taken is not None and taken is not ch:
            raise SlackError("name_taken")

    def _content(self, a: Args) -> tuple[Args, Args]:
        """Validated message content (text, blocks, attachments) and the warnings for the answer."""
        text, warnings = _str(a, "text"), {}
        blocks = _json(a, "blocks", "invalid_blocks_format")
        attachments = _json(a, "attachments", "invalid_attachments")
        if blocks is not None:
            try:
                validate_blocks(blocks)
            except BlockError as e:
                raise SlackError("invalid_blocks", errors=[str(e)], response_metadata={"messages": [str(e)]}) from None
        if not text and not blocks and not attachments:
            raise SlackError("no_text")
        if len(text) > MAX_TEXT:
            text = text[:MAX_TEXT]
            warnings = {"warning": "message_truncated", "response_metadata": {"warnings": ["message_truncated"]}}
        content = {
            "text": text,
            "blocks": blocks,
            "attachments": attachments,
            "metadata": _json(a, "metadata", "invalid_metadata_format"),
        }
        return {k: v for k, v in content.items() if v is not None}, warnings

    def _bot_message(self, content: Args) -> Args:
        return {
            "type": "message",
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "team": self.team_id,
            **content,
        }

    def _rate_limit(self, key: str) -> None:
        if not self.enforce_rate_limits:
            return
        now = self.clock()
        tokens, last = self._buckets.get(key, (float(self.rate_limit_burst), now))
        tokens = min(float(self.rate_limit_burst), tokens + (now - last))
        if tokens < 1:
            raise SlackError("ratelimited", status=429, headers={"Retry-After": str(math.ceil(1 - tokens))})
        self._buckets[key] = (tokens - 1, now)

    def _page(self, items: list[T], a: Args, default_limit: int = 100) -> tuple[list[T], Args]:
        start = 0
        if a.get("cursor"):
            try:
                start = int(base64.b64decode(_str(a, "cursor")).decode().removeprefix("offset:"))
            except ValueError:
                raise SlackError("invalid_cursor") from None
        try:
            limit = max(1, min(int(a.get("limit") or default_limit), 1000))
        except ValueError:
            raise SlackError("invalid_limit") from None
        end = start + limit
        more = end < len(items)
        return items[start:end], {
            "has_more": more,
            "response_metadata": {"next_cursor": _encode_cursor(end) if more else ""},
        }

    def _window(self, msgs: list[Args], a: Args) -> list[Args]:
        """Messages between ``oldest`` and ``latest`` (exclusive unless ``inclusive``)."""
        oldest = _ts(_str(a, "oldest") or "0", "invalid_ts_oldest")
        latest = _ts(_str(a, "latest") or "9999999999", "invalid_ts_latest")
        inclusive = _flag(a, "inclusive")
        return [
            m
            for m in msgs
            if (oldest <= Decimal(m["ts"]) <= latest) and (inclusive or Decimal(m["ts"]) not in (oldest, latest))
        ]

    def _trigger(self, a: Args) -> Args:
        trigger = self._triggers.get(_str(a, "trigger_id") or _str(a, "interactivity_pointer"))
        if trigger is None:
            raise SlackError("invalid_trigger_id")
        if trigger["used"]:
            raise SlackError("exchanged_trigger_id")
        if self.clock() - trigger["issued"] >= TRIGGER_TTL:
            raise SlackError("expired_trigger_id")
        return trigger

    def _view_arg(self, a: Args, surface: str | None = None) -> Args:
        view = _json(a, "view", "invalid_arguments")
        try:
            validate_view(view, surface=surface)
        except BlockError as e:
            raise SlackError("invalid_arguments", response_metadata={"messages": [str(e)]}) from None
        external_id = view.get("external_id")
        if external_id and any(
            v.get("external_id") == external_id and v["id"] != a.get("view_id")
            for v in [*self.views.values(), *self.home_views.values()]
        ):
            raise SlackError("duplicate_external_id")
        return view

    def _save_view(self, view: Args, *, view_id: str | None = None, previous: Args | None = None) -> Args:
        vid = view_id or self._new_id("V")
        stored = {
            "id": vid,
            "team_id": self.team_id,
            "type": view["type"],
            "title": view.get("title"),
            "submit": view.get("submit"),
            "close": view.get("close"),
            "blocks": view.get("blocks", []),
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "external_id": view.get("external_id", ""),
            "state": {"values": {}},
            "hash": f"{int(self.clock())}.{self._new_id('h')}",
            "clear_on_close": view.get("clear_on_close", False),
            "notify_on_close": view.get("notify_on_close", False),
            "previous_view_id": previous["id"] if previous else None,
            "root_view_id": previous["root_view_id"] if previous else vid,
            "app_id": self.app_id,
            "app_installed_team_id": self.team_id,
            "bot_id": self.bot_id,
            "_seq": next(self._ids),
        }
        return {k: v for k, v in stored.items() if v is not None or k == "previous_view_id"}

    @staticmethod
    def _public_view(view: Args) -> Args:
        return {k: v for k, v in view.items() if not k.startswith("_")}

    # --------------------------------------------------------------- HTTP extras

    def handle_upload(self, file_id: str, data: bytes) -> tuple[int, str]:
        with self._lock:
            upload = self._uploads.get(file_id)
            if upload is None:
                return 404, "file_not_found"
            upload["content"] = data
            return 200, f"OK - {len(data)}"

    def handle_response_url(self, rid: str, body: Args) -> tuple[int, Args]:
        with self._lock:
            meta = self._response_urls.get(rid)
            if meta is None:
                return 404, {"ok": False, "error": "no_service"}
            if self.clock() - meta["created"] > RESPONSE_URL_TTL:
                return 404, {"ok": False, "error": "expired_url"}
            if len(self.responses[rid]) >= RESPONSE_URL_MAX_POSTS:
                return 404, {"ok": False, "error": "used_url"}
            self.responses[rid].append(body)
            self._apply_response(meta, body)
            self._changed.notify_all()
            return 200, {"ok": True}

    def _apply_response(self, meta: Args, body: Args) -> None:
        ch = self.channels.get(meta["channel"] or "")
        original = next((m for m in ch.messages if m["ts"] == meta["message_ts"]), None) if ch else None
        content = {k: body[k] for k in ("text", "blocks", "attachments") if k in body}
        if original is not None and ch is not None and body.get("delete_original"):
            ch.messages.remove(original)
        elif original is not None and body.get("replace_original"):
            original.update(content)
        elif body.get("response_type") == "in_channel" and ch is not None:
            self._store(ch, self._bot_message(content))
        else:
            self.ephemeral_log.append(
                {
                    "channel": meta["channel"],
                    "user": meta["user"],
                    "via": "response_url",
                    "message_ts": self._next_ts(),
                    **content,
                }
            )


# =================================================================== Web API methods


@api("auth.test")
def _auth_test(fake: FakeSlack, a: Args) -> Args:
    return {
        "url": f"{PERMALINK_BASE}/",
        "team": fake.team_name,
        "user": fake.bot_name,
        "team_id": fake.team_id,
        "user_id": fake.bot_user_id,
        "bot_id": fake.bot_id,
        "is_enterprise_install": False,
    }


@api("apps.connections.open")
def _apps_connections_open(fake: FakeSlack, a: Args) -> Args:
    if not fake.socket_mode_url:
        raise SlackError("socket_mode_not_running")
    return {"url": fake.socket_mode_url}


@api("conversations.create")
def _conversations_create(fake: FakeSlack, a: Args) -> Args:
    fake._check_name(_str(a, "name"))
    ch = fake._new_channel(_str(a, "name"), is_private=_flag(a, "is_private"), creator=fake.bot_user_id)
    ch.members.append(fake.bot_user_id)
    return {"channel": fake._conversation(ch)}


@api("conversations.open")
def _conversations_open(fake: FakeSlack, a: Args) -> Args:
    if a.get("channel"):
        return {"channel": fake._conversation(fake._conv(a))}
    user = _str(a, "users").split(",")[0].strip()
    if user not in fake.users:
        raise SlackError("user_not_found")
    return {"channel": fake._conversation(fake._im(user))}


@api("conversations.invite")
def _conversations_invite(fake: FakeSlack, a: Args) -> Args:
    ch = fake._conv(a, writable=True)
    if ch.is_im:
        raise SlackError("method_not_supported_for_channel_type")
    if fake.bot_user_id not in ch.members:
        raise SlackError("not_in_channel")
    users = [u.strip() for u in _str(a, "users").split(",") if u.strip()]
    for user in users:
        if user == fake.bot_user_id:
            raise SlackError("cant_invite_self")
        if user not in fake.users:
            raise SlackError("user_not_found")
    new = [u for u in dict.fromkeys(users) if u not in ch.members]
    if not new:
        raise SlackError("already_in_channel")
    ch.members.extend(new)
    return {"channel": fake._conversation(ch)}


@api("conversations.join")
def _conversations_join(fake: FakeSlack, a: Args) -> Args:
    ch = fake._conv(a, writable=True)
    if ch.is_private or ch.is_im:
        raise SlackError("method_not_supported_for_channel_type")
    if fake.bot_user_id in ch.members:
        return {
            "channel": fake._conversation(ch),
            "warning": "already_in_channel",
            "response_metadata": {"warnings": ["already_in_channel"]},
        }
    ch.members.append(fake.bot_user_id)
    return {"channel": fake._conversation(ch)}


@api("conversations.info")
def _conversations_info(fake: FakeSlack, a: Args) -> Args:
    return {"channel": fake._conversation(fake._conv(a))}


@api("conversations.members")
def _conversations_members(fake: FakeSlack, a: Args) -> Args:
    page, meta = fake._page(list(fake._conv(a).members), a)
    return {"members": page, "response_metadata": meta["response_metadata"]}


def _set_text_attribute(attribute: str) -> Handler:
    def handler(fake: FakeSlack, a: Args) -> Args:
        ch = fake._conv(a, member=True, writable=True)
        if ch.is_im:
            raise SlackError("method_not_supported_for_channel_type")
        value = _str(a, attribute)
        if len(value) > 250:
            raise SlackError("too_long")
        setattr(ch, attribute, value)
        return {"channel": fake._conversation(ch)}

    return handler


api("conversations.setTopic")(_set_text_attribute("topic"))
api("conversations.setPurpose")(_set_text_attribute("purpose"))


@api("conversations.rename")
def _conversations_rename(fake: FakeSlack, a: Args) -> Args:
    ch = fake._conv(a, member=True, writable=True)
    fake._check_name(_str(a, "name"), ch)
    ch.name = _str(a, "name")
    return {"channel": fake._conversation(ch)}


@api("conversations.archive")
def _conversations_archive(fake: FakeSlack, a: Args) -> Args:
    ch = fake._conv(a, member=True)
    if ch.is_im:
        raise SlackError("method_not_supported_for_channel_type")
    if ch.archived:
        raise SlackError("already_archived")
    ch.archived = True
    return {}


@api("conversations.unarchive")
def _conversations_unarchive(fake: FakeSlack, a: Args) -> Args:
    ch = fake._conv(a)
    if not ch.archived:
        raise SlackError("not_archived")
    ch.archived = False
    return {}


MAX_BOOKMARKS = 100


@api("bookmarks.add")
def _bookmarks_add(fake: FakeSlack, a: Args) -> Args:
    ch = fake._conv({"channel": _str(a, "channel_id")}, member=True, writable=True)
    kind = _str(a, "type")
    if kind != "link":  # the kinds the method data names besides link need files or messages sitrep never adds
        raise SlackError("invalid_bookmark_type")
    link = _str(a, "link")
    if not re.match(r"https?://", link):
        raise SlackError("invalid_link")
    if len(ch.bookmarks) >= MAX_BOOKMARKS:
        raise SlackError("too_many_bookmarks")
    bookmark = {
        "id": fake._new_id("Bk"),
        "channel_id": ch.id,
        "title": _str(a, "title"),
        "link": link,
        "emoji": a.get("emoji"),
        "type": "link",
        "date_created": int(fake.clock()),
        "rank": str(len(ch.bookmarks)),
    }
    ch.bookmarks.append(bookmark)
    return {"bookmark": copy.deepcopy(bookmark)}


@api("conversations.history")
def _conversations_history(fake: FakeSlack, a: Args) -> Args:
    ch = fake._conv(a, member=True)
    top = [m for m in ch.messages if m.get("thread_ts") in (None, m["ts"]) or m.get("subtype") == "thread_broadcast"]
    page, meta = fake._page(fake._window(top, a)[::-1], a)
    return {"messages": copy.deepcopy(page), "pin_count": len(ch.pins), **meta}


@api("conversations.replies")
def _conversations_replies(fake: FakeSlack, a: Args) -> Args:
    ch = fake._conv(a)
    parent = fake._find(ch, _str(a, "ts"), "thread_not_found")
    thread = [parent, *(m for m in ch.messages if m.get("thread_ts") == parent["ts"] and m is not parent)]
    page, meta = fake._page(fake._window(thread, {**a, "inclusive": True}), a, 1000)
    return {"messages": copy.deepcopy(page), **meta}


@api("chat.postMessage")
def _chat_post_message(fake: FakeSlack, a: Args) -> Args:
    ch = fake._conv(a, member=True, writable=True, dm=True)
    content, warnings = fake._content(a)
    thread_ts = _str(a, "thread_ts")
    if thread_ts:
        content["thread_ts"] = thread_ts
        if _flag(a, "reply_broadcast"):
            content["subtype"] = "thread_broadcast"
    fake._rate_limit(ch.id)
    msg = fake._store(ch, fake._bot_message(content))
    return {"channel": ch.id, "ts": msg["ts"], "message": copy.deepcopy(msg), **warnings}


@api("chat.update")
def _chat_update(fake: FakeSlack, a: Args) -> Args:
    ch = fake._conv(a)
    msg = fake._find(ch, _str(a, "ts"))
    if msg.get("bot_id") != fake.bot_id:
        raise SlackError("cant_update_message")
    content, warnings = fake._content({**{k: msg.get(k) for k in ("text", "blocks", "attachments")}, **a})
    msg.update(content, edited={"user": fake.bot_user_id, "ts": fake._next_ts()})
    return {"channel": ch.id, "ts": msg["ts"], "text": msg.get("text", ""), "message": copy.deepcopy(msg), **warnings}


@api("chat.postEphemeral")
def _chat_post_ephemeral(fake: FakeSlack, a: Args) -> Args:
    ch = fake._conv(a, member=True, writable=True)
    user = _str(a, "user")
    if user not in ch.members:
        raise SlackError("user_not_in_channel")
    content, warnings = fake._content(a)
    ts = fake._next_ts()
    entry = {"channel": ch.id, "user": user, "via": "chat.postEphemeral", "message_ts": ts, **content}
    if a.get("thread_ts"):
        entry["thread_ts"] = _str(a, "thread_ts")
    fake.ephemeral_log.append(entry)
    return {"message_ts": ts, **warnings}


@api("chat.getPermalink")
def _chat_get_permalink(fake: FakeSlack, a: Args) -> Args:
    ch = fake._conv(a)
    msg = fake._find(ch, _str(a, "message_ts"))
    link = f"{PERMALINK_BASE}/archives/{ch.id}/p{msg['ts'].replace('.', '')}"
    if msg.get("thread_ts") not in (None, msg["ts"]):
        link += f"?thread_ts={msg['thread_ts']}&cid={ch.id}"
    return {"channel": ch.id, "permalink": link}


def _pinned_message(fake: FakeSlack, a: Args, **conv: bool) -> tuple[Channel, Args]:
    ch = fake._conv(a, **conv)
    if not a.get("timestamp"):
        raise SlackError("no_item_specified")
    return ch, fake._find(ch, _str(a, "timestamp"))


@api("pins.add")
def _pins_add(fake: FakeSlack, a: Args) -> Args:
    ch, msg = _pinned_message(fake, a, member=True)
    if msg["ts"] in ch.pins:
        raise SlackError("already_pinned")
    fake._pin(ch, msg)
    return {}


@api("pins.remove")
def _pins_remove(fake: FakeSlack, a: Args) -> Args:
    ch, msg = _pinned_message(fake, a)
    if msg["ts"] not in ch.pins:
        raise SlackError("no_pin")
    fake._pin(ch, msg, remove=True)
    return {}


@api("reactions.add")
def _reactions_add(fake: FakeSlack, a: Args) -> Args:
    ch, msg = _pinned_message(fake, a, writable=True)
    name = _str(a, "name").strip(":")
    if not re.fullmatch(r"[a-z0-9_+'-]+(::skin-tone-\d)?", name):
        raise SlackError("invalid_name")
    if any(r["name"] == name and fake.bot_user_id in r["users"] for r in msg.get("reactions", [])):
        raise SlackError("already_reacted")
    fake._react(msg, name, fake.bot_user_id)
    return {}


@api("reactions.get")
def _reactions_get(fake: FakeSlack, a: Args) -> Args:
    if not a.get("channel"):
        raise SlackError("no_item_specified")
    ch, msg = _pinned_message(fake, a)
    return {"type": "message", "channel": ch.id, "message": copy.deepcopy(msg)}


@api("users.info")
def _users_info(fake: FakeSlack, a: Args) -> Args:
    user = fake.users.get(_str(a, "user"))
    if user is None:
        raise SlackError("user_not_found")
    return {"user": copy.deepcopy(user)}


@api("users.lookupByEmail")
def _users_lookup_by_email(fake: FakeSlack, a: Args) -> Args:
    email = _str(a, "email").lower()
    user = next((u for u in fake.users.values() if (u["profile"]["email"] or "").lower() == email), None)
    if user is None:
        raise SlackError("users_not_found")
    return {"user": copy.deepcopy(user)}


@api("usergroups.users.list")
def _usergroups_users_list(fake: FakeSlack, a: Args) -> Args:
    group = fake.usergroups.get(_str(a, "usergroup"))
    if group is None:
        raise SlackError("no_such_subteam")
    return {"users": list(group["users"])}


def _open_view(push: bool) -> Handler:
    def handler(fake: FakeSlack, a: Args) -> Args:
        trigger = fake._trigger(a)
        view = fake._view_arg(a, "modal")
        previous = fake.views.get(trigger["view_id"] or "") if push else None
        if push and previous is None:
            raise SlackError("not_found")
        stored = fake._save_view(view, previous=previous)
        trigger["used"] = True
        stored["_user"] = trigger["user"]
        fake.views[stored["id"]] = stored
        return {"view": fake._public_view(stored)}

    return handler


api("views.open")(_open_view(push=False))
api("views.push")(_open_view(push=True))


@api("views.update")
def _views_update(fake: FakeSlack, a: Args) -> Args:
    vid, external_id = _str(a, "view_id"), _str(a, "external_id")
    if not vid and not external_id:
        raise SlackError("missing_argument")
    old = fake.views.get(vid) or next(
        (v for v in fake.views.values() if external_id and v.get("external_id") == external_id), None
    )
    if old is None:
        raise SlackError("not_found")
    if a.get("hash") and a["hash"] != old["hash"]:
        raise SlackError("hash_conflict")
    view = fake._view_arg({**a, "view_id": old["id"]}, "modal")
    stored = fake._save_view(view, view_id=old["id"])
    stored.update(previous_view_id=old["previous_view_id"], root_view_id=old["root_view_id"], _user=old.get("_user"))
    fake.views[old["id"]] = stored
    return {"view": fake._public_view(stored)}


@api("views.publish")
def _views_publish(fake: FakeSlack, a: Args) -> Args:
    user = _str(a, "user_id")
    old = fake.home_views.get(user)
    if old and a.get("hash") and a["hash"] != old["hash"]:
        raise SlackError("hash_conflict")
    view = fake._view_arg({**a, "view_id": old["id"] if old else None}, "home")
    stored = fake._save_view(view, view_id=old["id"] if old else None)
    fake.home_views[user] = stored
    return {"view": fake._public_view(stored)}


@api("files.getUploadURLExternal")
def _files_get_upload_url(fake: FakeSlack, a: Args) -> Args:
    try:
        length = int(_str(a, "length"))
    except ValueError:
        raise SlackError("invalid_arguments") from None
    file_id = fake._new_id("F")
    fake._uploads[file_id] = {
        "filename": _str(a, "filename"),
        "length": length,
        "content": None,
        "alt_txt": a.get("alt_txt"),
        "snippet_type": a.get("snippet_type"),
    }
    return {"upload_url": f"{fake.base_url}upload/{file_id}", "file_id": file_id}


@api("files.completeUploadExternal")
def _files_complete_upload(fake: FakeSlack, a: Args) -> Args:
    entries = _json(a, "files", "invalid_arguments")
    if not isinstance(entries, list) or not entries:
        raise SlackError("invalid_arguments")
    uploads = [fake._uploads.get(str(e.get("id"))) for e in entries]
    if any(u is None or u["content"] is None for u in uploads):
        raise SlackError("file_not_found")
    refs = [r for r in [_str(a, "channel_id"), *_str(a, "channels").split(",")] if r.strip()]
    channels = [fake._conv({"channel": r.strip()}, member=True, writable=True) for r in refs]
    files = []
    for entry, upload in zip(entries, uploads, strict=True):
        assert upload is not None
        fid = str(entry["id"])
        record = {
            "id": fid,
            "name": upload["filename"],
            "title": entry.get("title") or upload["filename"],
            "size": len(upload["content"]),
            "filetype": upload["snippet_type"] or "text",
            "user": fake.bot_user_id,
            "created": int(fake.clock()),
            "channels": [c.id for c in channels],
            "initial_comment": a.get("initial_comment"),
            "thread_ts": a.get("thread_ts"),
            "permalink": f"{PERMALINK_BASE}/files/{fake.bot_user_id}/{fid}/{upload['filename']}",
            "content": upload["content"],
        }
        fake.files[fid] = record
        del fake._uploads[fid]
        files.append({k: v for k, v in record.items() if k != "content"})
    for ch in channels:
        msg = {"text": _str(a, "initial_comment"), "files": copy.deepcopy(files), "upload": True}
        if a.get("thread_ts"):
            msg["thread_ts"] = _str(a, "thread_ts")
        fake._store(ch, fake._bot_message(msg))
    return {"files": [{"id": f["id"], "title": f["title"]} for f in files]}


# =================================================================== HTTP plumbing


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # silence the access log
        pass

    def do_GET(self) -> None:
        self._route()

    def do_POST(self) -> None:
        self._route()

    def _route(self) -> None:
        fake: FakeSlack = self.server.fake  # type: ignore[attr-defined]
        url = urlsplit(self.path)
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        kind, _, name = url.path.strip("/").partition("/")
        if kind == "api" and name:
            args: Args = dict(parse_qsl(url.query))
            if "json" in (self.headers.get("Content-Type") or "") and raw:
                args.update(json.loads(raw))
            elif raw:
                args.update(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
            auth = self.headers.get("Authorization") or ""
            token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else None
            token = token or args.pop("token", None)
            args.pop("token", None)
            status, headers, body = fake.handle_api(name, args, token)
            self._send(status, json.dumps(body), headers)
        elif kind == "upload" and name:
            status, text = fake.handle_upload(name, raw)
            self._send(status, text, content_type="text/plain")
        elif kind == "response" and name:
            try:
                payload = json.loads(raw or b"{}")
            except ValueError:
                payload = {"text": raw.decode("utf-8", "replace")}
            status, body = fake.handle_response_url(name, payload)
            self._send(status, json.dumps(body))
        else:
            self._send(404, json.dumps({"ok": False, "error": "not_found"}))

    def _send(
        self,
        status: int,
        body: str,
        headers: dict[str, str] | None = None,
        content_type: str = "application/json; charset=utf-8",
    ) -> None:
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)
