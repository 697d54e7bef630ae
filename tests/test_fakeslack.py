"""Tests of the fake Slack itself, through the real slack_sdk and slack_bolt clients."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler, ServerErrorRetryHandler
from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator
from slack_sdk.webhook import WebhookClient

from tests.fakeslack import FakeSlack, FakeSocketMode, SlackDriver, SocketModeDriver

SECRET = "test-signing-secret"


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as f:
        f.add_user("U1", "alice", "Alice A", "alice@example.com")
        f.add_user("U2", "bob", "Bob B", "bob@example.com")
        yield f
        assert not f.internal_errors, f.internal_errors


@pytest.fixture
def client(fake: FakeSlack) -> WebClient:
    return WebClient(token=fake.bot_token, base_url=fake.api_url)


def error_of(call: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(SlackApiError) as info:
        call(*args, **kwargs)
    return str(info.value.response["error"])


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


# ------------------------------------------------------------------ auth, arguments


def test_auth_and_unknown_method(fake: FakeSlack, client: WebClient) -> None:
    assert client.auth_test()["user_id"] == fake.bot_user_id
    assert error_of(WebClient(token="xoxb-wrong", base_url=fake.api_url).auth_test) == "invalid_auth"
    assert error_of(WebClient(base_url=fake.api_url).auth_test) == "not_authed"
    assert error_of(client.api_call, "chat.teleport") == "unknown_method"
    assert error_of(client.apps_connections_open, app_token=fake.bot_token) == "not_allowed_token_type"


def test_missing_arguments_answer_what_slack_answers(client: WebClient) -> None:
    assert error_of(client.api_call, "chat.postMessage", json={"text": "x"}) == "channel_not_found"
    assert error_of(client.api_call, "conversations.create", params={}) == "invalid_name_required"
    assert error_of(client.api_call, "files.getUploadURLExternal", params={"filename": "a"}) == "missing_argument"
    assert error_of(client.api_call, "users.info", params={}) == "user_not_found"


# ------------------------------------------------------------------ channels


@pytest.mark.parametrize(("name", "error"), [
    ("", "invalid_name_required"),
    ("x" * 81, "invalid_name_maxlength"),
    ("Inc-Upper", "invalid_name_specials"),
    ("inc 2024", "invalid_name_specials"),
    ("inc-é", "invalid_name_specials"),
    ("---", "invalid_name_punctuation"),
    ("general", "name_taken"),
])
def test_channel_name_rules(fake: FakeSlack, client: WebClient, name: str, error: str) -> None:
    fake.add_channel("general", ["U1"])
    assert error_of(client.conversations_create, name=name) == error


def test_create_invite_and_membership_errors(fake: FakeSlack, client: WebClient) -> None:
    cid = client.conversations_create(name="inc-20240101-db_down", is_private=True)["channel"]["id"]
    assert client.conversations_create(name="x" * 80)["ok"]
    assert fake.channel(cid).members == [fake.bot_user_id]
    assert client.conversations_invite(channel=cid, users="U1,U2")["ok"]
    assert error_of(client.conversations_invite, channel=cid, users="U1") == "already_in_channel"
    assert error_of(client.conversations_invite, channel=cid, users="U9") == "user_not_found"
    assert error_of(client.conversations_invite, channel=cid, users=fake.bot_user_id) == "cant_invite_self"

    public = fake.add_channel("ops", ["U1"])
    private = fake.add_channel("secret", ["U1"], is_private=True)
    assert error_of(client.chat_postMessage, channel=public, text="hi") == "not_in_channel"
    assert error_of(client.conversations_invite, channel=public, users="U2") == "not_in_channel"
    assert error_of(client.conversations_history, channel=public) == "not_in_channel"
    assert error_of(client.conversations_setTopic, channel=public, topic="t") == "not_in_channel"
    assert error_of(client.chat_postMessage, channel=private, text="hi") == "channel_not_found"
    assert error_of(client.conversations_join, channel=private) == "channel_not_found"
    assert client.conversations_join(channel=public)["channel"]["is_member"]
    assert error_of(client.chat_postEphemeral, channel=public, user="U2", text="x") == "user_not_in_channel"
    assert client.chat_postEphemeral(channel=public, user="U1", text="only you")["message_ts"]
    assert [e["text"] for e in fake.ephemerals("U1")] == ["only you"]
    assert fake.messages(public) == []

    client.conversations_setTopic(channel=cid, topic="SEV1 | Investigating | IC: @alice")
    client.conversations_rename(channel=cid, name="inc-renamed")
    info = client.conversations_info(channel=cid)["channel"]
    assert (info["name"], info["topic"]["value"], info["is_private"]) == (
        "inc-renamed", "SEV1 | Investigating | IC: @alice", True)
    assert fake.channel_by_name("inc-renamed") is not None
    client.conversations_archive(channel=cid)
    assert error_of(client.chat_postMessage, channel=cid, text="x") == "is_archived"
    assert error_of(client.conversations_archive, channel=cid) == "already_archived"


def test_messages_threads_history_pins_reactions(fake: FakeSlack, client: WebClient) -> None:
    cid = fake.add_channel("inc-x", ["U1"], bot_member=True)
    first = client.chat_postMessage(channel=cid, text="intro")["ts"]
    reply = client.chat_postMessage(channel=cid, text="in thread", thread_ts=first)["ts"]
    human = fake.post_as_user(cid, "U1", "rolled back the deploy")
    assert float(first) < float(reply) < float(human["ts"])
    assert human["type"] == "message" and human["user"] == "U1" and human["channel_type"] == "channel"

    history = client.conversations_history(channel=cid, limit=1)
    assert [m["ts"] for m in history["messages"]] == [human["ts"]] and history["has_more"]
    more = client.conversations_history(channel=cid, cursor=history["response_metadata"]["next_cursor"])
    assert [m["text"] for m in more["messages"]] == ["intro"] and more["messages"][0]["reply_count"] == 1
    assert len(client.conversations_history(channel=cid, oldest=first, inclusive=True)["messages"]) == 2
    assert [m["ts"] for m in client.conversations_replies(channel=cid, ts=first)["messages"]] == [first, reply]

    link = client.chat_getPermalink(channel=cid, message_ts=reply)["permalink"]
    assert link == (f"https://fake.slack.example/archives/{cid}/p{reply.replace('.', '')}"
                    f"?thread_ts={first}&cid={cid}")
    assert error_of(client.chat_getPermalink, channel=cid, message_ts="1.000001") == "message_not_found"

    client.pins_add(channel=cid, timestamp=human["ts"])
    assert error_of(client.pins_add, channel=cid, timestamp=human["ts"]) == "already_pinned"
    client.pins_remove(channel=cid, timestamp=human["ts"])
    assert error_of(client.pins_remove, channel=cid, timestamp=human["ts"]) == "no_pin"
    assert error_of(client.pins_add, channel=cid) == "no_item_specified"

    event = fake.react_as_user(cid, human["ts"], "U1", "pushpin")
    assert event["item"] == {"type": "message", "channel": cid, "ts": human["ts"]}
    client.reactions_add(channel=cid, timestamp=human["ts"], name="pushpin")
    assert error_of(client.reactions_add, channel=cid, timestamp=human["ts"], name="pushpin") == "already_reacted"
    got = client.reactions_get(channel=cid, timestamp=human["ts"])["message"]["reactions"]
    assert got == [{"name": "pushpin", "users": ["U1", fake.bot_user_id], "count": 2}]

    updated = client.chat_update(channel=cid, ts=first, text="intro v2")
    assert updated["message"]["edited"]["user"] == fake.bot_user_id
    assert error_of(client.chat_update, channel=cid, ts=human["ts"], text="x") == "cant_update_message"
    assert fake.messages(cid, thread_ts=first)[0]["text"] == "intro v2"


def test_direct_message_to_user_id(fake: FakeSlack, client: WebClient) -> None:
    resp = client.chat_postMessage(channel="U2", text="you were paged")
    assert resp["channel"].startswith("D")
    assert [m["text"] for m in fake.dms("U2")] == ["you were paged"]


def test_users_and_usergroups(fake: FakeSlack, client: WebClient) -> None:
    assert client.users_info(user="U1")["user"]["real_name"] == "Alice A"
    assert client.users_lookupByEmail(email="BOB@example.com")["user"]["id"] == "U2"
    assert error_of(client.users_lookupByEmail, email="x@y.z") == "users_not_found"
    fake.add_usergroup("S1", "oncall", ["U1", "U2"])
    assert client.usergroups_users_list(usergroup="S1")["users"] == ["U1", "U2"]
    assert error_of(client.usergroups_users_list, usergroup="S9") == "no_such_subteam"


def test_human_event_helpers(fake: FakeSlack, client: WebClient) -> None:
    cid = fake.add_channel("inc-h", ["U1"], bot_member=True)
    ts = fake.post_as_user(cid, "U1", "restarted the primary")["ts"]
    changed = fake.edit_as_user(cid, ts, "failed over to the replica")
    assert changed["subtype"] == "message_changed" and changed["previous_message"]["text"] == "restarted the primary"
    assert changed["message"]["text"] == "failed over to the replica"
    pinned = fake.pin_as_user(cid, ts, "U1")
    assert pinned["type"] == "pin_added" and pinned["item"]["message"]["ts"] == ts
    assert fake.pin_as_user(cid, ts, "U1", remove=True)["type"] == "pin_removed"
    assert fake.react_as_user(cid, ts, "U1", "pushpin", remove=True)["type"] == "reaction_removed"
    deleted = fake.delete_as_user(cid, ts)
    assert (deleted["subtype"], deleted["deleted_ts"], fake.messages(cid)) == ("message_deleted", ts, [])
    bot_ts = client.chat_postMessage(channel=cid, text="mine")["ts"]
    assert fake.message_event(cid, bot_ts)["bot_id"] == fake.bot_id
    with pytest.raises(ValueError):
        fake.post_as_user(cid, "U2", "not a member")
    assert fake.join_as_user(cid, "U2")["type"] == "member_joined_channel"
    assert client.conversations_open(users="U2")["channel"]["id"].startswith("D")


# ------------------------------------------------------------------ Block Kit


@pytest.mark.parametrize("blocks", [
    [section("x")] * 51,
    [section("x" * 3001)],
    [{"type": "section", "fields": [{"type": "mrkdwn", "text": "f"}] * 11}],
    [{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}],
    [{"type": "header", "text": {"type": "mrkdwn", "text": "h"}}],
    [{"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}] * 11}],
    [{"type": "actions", "elements": [
        {"type": "button", "text": {"type": "plain_text", "text": "b"}, "action_id": f"a{i}"} for i in range(26)]}],
    [{"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "b" * 76}}]}],
    [{**section("x"), "block_id": "b" * 256}],
    [{**section("x"), "block_id": "same"}, {**section("y"), "block_id": "same"}],
    [section("")],
    [{"type": "carousel"}],
])
def test_invalid_blocks_store_nothing(fake: FakeSlack, client: WebClient, blocks: list[dict[str, Any]]) -> None:
    cid = fake.add_channel("inc-b", ["U1"], bot_member=True)
    with pytest.raises(SlackApiError) as info:
        client.chat_postMessage(channel=cid, text="fallback", blocks=blocks)
    assert info.value.response["error"] == "invalid_blocks"
    assert info.value.response["response_metadata"]["messages"][0].startswith("[ERROR]")
    assert fake.messages(cid) == []


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing:UserWarning")
def test_valid_blocks_and_long_text(fake: FakeSlack, client: WebClient) -> None:
    cid = fake.add_channel("inc-ok", ["U1"], bot_member=True)
    blocks = [{"type": "header", "text": {"type": "plain_text", "text": "h" * 150}}, *[section("x" * 3000)] * 49]
    assert client.chat_postMessage(channel=cid, text="t", blocks=blocks)["ok"]
    resp = client.chat_postMessage(channel=cid, text="y" * 40_001)
    assert resp["warning"] == "message_truncated" and len(fake.messages(cid)[-1]["text"]) == 40_000
    form_blocks = json.dumps([section("as form field")])  # blocks as a JSON string in form data
    assert client.api_call("chat.postMessage", params={"channel": cid, "text": "t", "blocks": form_blocks})["ok"]
    assert error_of(client.chat_postMessage, channel=cid, text="") == "no_text"


# ------------------------------------------------------------------ views and triggers


MODAL = {"type": "modal", "callback_id": "declare", "title": {"type": "plain_text", "text": "Declare"},
         "submit": {"type": "plain_text", "text": "Declare"},
         "blocks": [{"type": "input", "block_id": "title", "label": {"type": "plain_text", "text": "Title"},
                     "element": {"type": "plain_text_input", "action_id": "value"}}]}


def test_trigger_id_single_use_and_expiry(fake: FakeSlack, client: WebClient) -> None:
    fake.clock = clock = Clock()
    trigger = fake.issue_trigger_id("U1")
    bad_title = {**MODAL, "title": {"type": "plain_text", "text": "x" * 25}}
    assert error_of(client.views_open, trigger_id=trigger, view=bad_title) == "invalid_arguments"
    assert error_of(client.views_open, trigger_id=trigger, view={**MODAL, "blocks": [section("x")] * 101}) == (
        "invalid_arguments")
    view = client.views_open(trigger_id=trigger, view=MODAL)["view"]
    assert view["id"].startswith("V") and fake.last_view("declare")["id"] == view["id"]
    assert error_of(client.views_open, trigger_id=trigger, view=MODAL) == "exchanged_trigger_id"
    assert error_of(client.views_open, trigger_id="1.2.nope", view=MODAL) == "invalid_trigger_id"
    late = fake.issue_trigger_id("U1")
    clock.now += 3.0
    assert error_of(client.views_open, trigger_id=late, view=MODAL) == "expired_trigger_id"

    updated = client.views_update(view_id=view["id"], view={**MODAL, "private_metadata": "INC-1"})["view"]
    assert updated["id"] == view["id"] and fake.views[view["id"]]["private_metadata"] == "INC-1"
    assert error_of(client.views_update, view_id="V404", view=MODAL) == "not_found"
    home = {"type": "home", "blocks": [section("open incidents")]}
    assert client.views_publish(user_id="U1", view=home)["view"]["type"] == "home"
    assert error_of(client.views_publish, user_id="U1", view={**home, "blocks": [section("x")] * 101}) == (
        "invalid_arguments")
    assert fake.home_views["U1"]["blocks"] == home["blocks"]


def test_views_push_from_an_action_in_a_modal(fake: FakeSlack, client: WebClient) -> None:
    root = client.views_open(trigger_id=fake.issue_trigger_id("U1"), view=MODAL)["view"]
    payload = SlackDriver("http://127.0.0.1:9", SECRET, fake).payloads.block_action("more", user="U1", view=root)
    assert payload["container"] == {"type": "view", "view_id": root["id"]}
    pushed = client.views_push(trigger_id=payload["trigger_id"], view={**MODAL, "callback_id": "more"})["view"]
    assert (pushed["previous_view_id"], pushed["root_view_id"]) == (root["id"], root["id"])
    assert error_of(client.views_push, trigger_id=fake.issue_trigger_id("U1"), view=MODAL) == "not_found"


# ------------------------------------------------------------------ faults and rate limits


def test_429_then_success_posts_exactly_once(fake: FakeSlack) -> None:
    cid = fake.add_channel("inc-r", ["U1"], bot_member=True)
    fake.fail_next("chat.postMessage", status=429, times=2, retry_after=0)
    retrying = WebClient(token=fake.bot_token, base_url=fake.api_url,
                         retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=2)])
    assert retrying.chat_postMessage(channel=cid, text="update")["ok"]
    assert [c.status for c in fake.calls_to("chat.postMessage")] == [429, 429, 200]
    assert fake.calls_to("chat.postMessage")[0].response == {"ok": False, "error": "ratelimited"}
    assert [m["text"] for m in fake.messages(cid)] == ["update"]


def test_500_retried_by_server_error_handler(fake: FakeSlack) -> None:
    fake.fail_next("conversations.create", status=500)
    handler = ServerErrorRetryHandler(max_retry_count=1, interval_calculator=FixedValueRetryIntervalCalculator(0))
    retrying = WebClient(token=fake.bot_token, base_url=fake.api_url, retry_handlers=[handler])
    assert retrying.conversations_create(name="inc-500")["ok"]
    assert [c.status for c in fake.calls_to("conversations.create")] == [500, 200]
    assert len([c for c in fake.channels.values() if c.name == "inc-500"]) == 1


def test_injected_error_and_rate_limit_enforcement(fake: FakeSlack, client: WebClient) -> None:
    cid = fake.add_channel("inc-e", ["U1"], bot_member=True)
    fake.fail_next("pins.add", error="restricted_action")
    msg = client.chat_postMessage(channel=cid, text="x")["ts"]
    assert error_of(client.pins_add, channel=cid, timestamp=msg) == "restricted_action"
    assert client.pins_add(channel=cid, timestamp=msg)["ok"]

    fake.clock = clock = Clock()
    fake.enforce_rate_limits, fake.rate_limit_burst = True, 2
    client.chat_postMessage(channel=cid, text="1")
    client.chat_postMessage(channel=cid, text="2")
    with pytest.raises(SlackApiError) as info:
        client.chat_postMessage(channel=cid, text="3")
    assert info.value.response.status_code == 429 and info.value.response.headers["Retry-After"] == "1"
    clock.now += 1
    assert client.chat_postMessage(channel=cid, text="3")["ok"]


def test_latency(fake: FakeSlack, client: WebClient) -> None:
    fake.latency = 0.01
    assert client.auth_test()["ok"]


# ------------------------------------------------------------------ files, response_url


def test_files_upload_v2_round_trip(fake: FakeSlack, client: WebClient) -> None:
    cid = fake.add_channel("inc-f", ["U1"], bot_member=True)
    resp = client.files_upload_v2(channel=cid, content="# PIR\n", filename="pir.md", title="PIR INC-1",
                                  initial_comment="Post-incident review")
    (file,) = fake.files.values()
    assert resp["file"]["id"] == file["id"] and file["content"] == b"# PIR\n" and file["title"] == "PIR INC-1"
    assert file["channels"] == [cid]
    shared = fake.messages(cid)[-1]
    assert shared["text"] == "Post-incident review" and shared["files"][0]["name"] == "pir.md"
    outside = fake.add_channel("elsewhere", ["U1"])
    with pytest.raises(SlackApiError) as info:
        client.files_upload_v2(channel=outside, content="x", filename="x.md")
    assert info.value.response["error"] == "not_in_channel"


def test_response_url_limits(fake: FakeSlack) -> None:
    fake.clock = clock = Clock()
    cid = fake.add_channel("inc-u", ["U1"], bot_member=True)
    url = fake.new_response_url(cid, "U1")
    hook = WebhookClient(url)
    assert hook.send(text="private", response_type="ephemeral").status_code == 200
    assert hook.send(text="public", response_type="in_channel").status_code == 200
    for _ in range(3):
        hook.send(text="again")
    sixth = hook.send(text="too many")
    assert sixth.status_code == 404 and json.loads(sixth.body)["error"] == "used_url"
    assert [p["text"] for p in fake.response_posts(url)] == ["private", "public", "again", "again", "again"]
    assert fake.ephemerals("U1")[0]["via"] == "response_url"
    assert [m["text"] for m in fake.messages(cid)] == ["public"]
    stale = WebhookClient(fake.new_response_url(cid, "U1"))
    clock.now += 30 * 60 + 1
    assert json.loads(stale.send(text="late").body)["error"] == "expired_url"


# ------------------------------------------------------------------ Bolt through Socket Mode and HTTP


def bolt_app(fake: FakeSlack, seen: list[dict[str, Any]]) -> App:
    app = App(client=WebClient(token=fake.bot_token, base_url=fake.api_url), signing_secret=SECRET)

    @app.command("/incident")
    def incident(ack: Any, command: dict[str, Any], client: WebClient) -> None:
        ack(f"got {command['text']}")
        seen.append(command)
        client.views_open(trigger_id=command["trigger_id"], view=MODAL)

    @app.event("message")
    def message(event: dict[str, Any]) -> None:
        seen.append(event)

    @app.view("declare")
    def declare(ack: Any, view: dict[str, Any]) -> None:
        ack()
        seen.append(view)

    @app.action("resolve")
    def resolve(ack: Any, body: dict[str, Any]) -> None:
        ack()
        seen.append(body)

    @app.shortcut("sitrep_add_to_timeline")
    def shortcut(ack: Any, body: dict[str, Any]) -> None:
        ack()
        seen.append(body)

    return app


def test_socket_mode_round_trip_with_bolt(fake: FakeSlack) -> None:
    seen: list[dict[str, Any]] = []
    cid = fake.add_channel("inc-s", ["U1"], bot_member=True)
    sm = FakeSocketMode(fake).start()
    handler = SocketModeHandler(bolt_app(fake, seen), app_token=fake.app_token)
    handler.connect()
    try:
        driver = SocketModeDriver(sm, fake)
        resp = driver.command("declare sev1 db down", user="U1", channel=cid)
        assert resp.json() == {"text": "got declare sev1 db down"}
        assert sm.sent[0]["type"] == "slash_commands"
        assert sm.received[-1]["envelope_id"] == sm.sent[0]["envelope_id"]
        assert fake.calls_to("apps.connections.open")[0].status == 200
        fake.wait_for(lambda: fake.views)
        event_id = sm.send_envelope("events_api", driver.payloads.event(fake.post_as_user(cid, "U1", "hi")))
        assert sm.wait_for_ack(event_id)["envelope_id"] == event_id
    finally:
        sm.stop()  # first: the built-in client's close() would otherwise wait out its 3 s socket timeout
        # slack_sdk's built-in connection checks then closes its socket without a lock; when the
        # server has just gone away its receive thread may close it first (AttributeError on None).
        with contextlib.suppress(AttributeError):
            handler.close()
    assert seen[0]["command"] == "/incident" and seen[0]["channel_id"] == cid
    assert seen[1]["text"] == "hi"


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def http_app(fake: FakeSlack) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []
    server = make_server("127.0.0.1", 0, SlackRequestHandler(bolt_app(fake, seen)), handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", seen
    server.shutdown()
    server.server_close()


def test_signed_driver_against_bolt_http(fake: FakeSlack, http_app: tuple[str, list[dict[str, Any]]]) -> None:
    url, seen = http_app
    cid = fake.add_channel("inc-h", ["U1"], bot_member=True)
    driver = SlackDriver(url, SECRET, fake)

    resp = driver.command("declare", user="U1", channel=cid)
    assert resp.status == 200 and resp.body == "got declare"
    view = fake.wait_for(lambda: fake.last_view("declare"))
    assert seen[0]["response_url"].startswith(fake.base_url) and seen[0]["user_name"] == "alice"

    assert driver.event(fake.post_as_user(cid, "U1", "db is down")).status == 200
    assert driver.event(fake.post_as_user(cid, "U1", "again"), event_id=driver.last_event_id, retry_num=1,
                        retry_reason="http_timeout").status == 200
    assert driver.view_submission(view, {"title": {"value": "DB down"}}, user="U1", callback_id="declare").status == 200
    submitted = seen[-1]
    assert submitted["state"]["values"] == {"title": {"value": {"type": "plain_text_input", "value": "DB down"}}}

    button = {"type": "button", "action_id": "resolve", "text": {"type": "plain_text", "text": "Resolve"},
              "value": "INC-1"}
    buttons = [{"type": "actions", "block_id": "controls", "elements": [button]}]
    ts = WebClient(token=fake.bot_token, base_url=fake.api_url).chat_postMessage(
        channel=cid, text="intro", blocks=buttons)["ts"]
    assert driver.block_action("resolve", user="U1", channel=cid, message=ts).status == 200
    action = seen[-1]["actions"][0]
    assert (action["block_id"], action["value"], seen[-1]["container"]["message_ts"]) == ("controls", "INC-1", ts)
    assert driver.message_shortcut("sitrep_add_to_timeline", user="U1", channel=cid, message=ts).status == 200
    assert seen[-1]["type"] == "message_action" and seen[-1]["message"]["ts"] == ts
    assert driver.url_verification("c-123").json() == {"challenge": "c-123"}

    body = json.dumps(driver.payloads.event(fake.post_as_user(cid, "U1", "forged")))
    forged = {**driver.signed_headers(body), "Content-Type": "application/json"}
    assert driver.raw(body + " ", forged).status == 401
    stale = {**driver.signed_headers(body, timestamp=int(fake.clock()) - 301), "Content-Type": "application/json"}
    assert driver.raw(body, stale).status == 401
