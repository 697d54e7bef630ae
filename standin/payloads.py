"""The payloads Slack sends to an app: slash commands, events, interactions.

Shared by the HTTP driver (signed requests) and the Socket Mode driver (envelopes), so that both transports
deliver exactly the same data. Shapes follow Slack's documentation of each payload.
"""

from __future__ import annotations

import copy
import time
import uuid
from typing import Any

from .server import FakeSlack

Payload = dict[str, Any]
VERIFICATION_TOKEN = "fake-verification-token"

# element type -> the key that carries the chosen value in view state and in block_actions actions
_SELECTED_KEYS = {
    "static_select": "selected_option",
    "external_select": "selected_option",
    "radio_buttons": "selected_option",
    "overflow": "selected_option",
    "checkboxes": "selected_options",
    "multi_static_select": "selected_options",
    "users_select": "selected_user",
    "multi_users_select": "selected_users",
    "conversations_select": "selected_conversation",
    "multi_conversations_select": "selected_conversations",
    "channels_select": "selected_channel",
    "multi_channels_select": "selected_channels",
    "datepicker": "selected_date",
    "timepicker": "selected_time",
}


def find_element(blocks: list[Payload], action_id: str, block_id: str | None = None) -> tuple[str, Payload]:
    """The (block_id, element) with this action_id in blocks; a made-up block_id and a button if absent."""
    for block in blocks:
        if block_id is not None and block.get("block_id") != block_id:
            continue
        for el in [block.get("element"), block.get("accessory"), *block.get("elements", [])]:
            if isinstance(el, dict) and el.get("action_id") == action_id:
                return block.get("block_id", ""), el
    return block_id or f"b-{action_id}", {"type": "button", "action_id": action_id}


def _option(element: Payload, value: str) -> Payload:
    options = [
        *element.get("options", []),
        *(o for group in element.get("option_groups", []) for o in group.get("options", [])),
    ]
    found = next((o for o in options if o.get("value") == value), None)
    return copy.deepcopy(found) if found else {"text": {"type": "plain_text", "text": value}, "value": value}


def element_value(element: Payload, value: Any) -> Payload:
    """The state entry Slack sends for an element set to ``value`` (a dict is taken as the entry itself)."""
    if isinstance(value, dict):
        return value
    etype = element.get("type", "plain_text_input")
    key = _SELECTED_KEYS.get(etype)
    if key is None:
        return {"type": etype, "value": value}
    if key == "selected_option":
        return {"type": etype, key: _option(element, value)}
    if key == "selected_options":
        return {"type": etype, key: [_option(element, v) for v in value]}
    return {"type": etype, key: value}


class Payloads:
    """Builds Slack payloads whose ids (team, users, channels, trigger_id, response_url) come from the fake."""

    def __init__(self, fake: FakeSlack, verification_token: str = VERIFICATION_TOKEN) -> None:
        self.fake = fake
        self.token = verification_token

    def _user(self, user: str) -> Payload:
        name = self.fake.users.get(user, {}).get("name", user.lower())
        return {"id": user, "username": name, "name": name, "team_id": self.fake.team_id}

    def _team(self) -> Payload:
        return {"id": self.fake.team_id, "domain": "fake"}

    def _channel(self, channel: str) -> Payload:
        ch = self.fake.channel(channel)
        return {"id": ch.id, "name": "directmessage" if ch.is_im else ch.name}

    def _message(self, channel: str, message: Payload | str) -> Payload:
        if isinstance(message, dict):
            return copy.deepcopy(message)
        found = [m for m in self.fake.messages(channel) if m["ts"] == message]
        if not found:
            raise ValueError(f"no message {message} in {channel}")
        return found[0]

    def command(self, text: str, *, user: str, channel: str, command: str = "/incident") -> dict[str, str]:
        """Slash command form fields."""
        ch = self._channel(channel)
        return {
            "token": self.token,
            "team_id": self.fake.team_id,
            "team_domain": "fake",
            "channel_id": ch["id"],
            "channel_name": ch["name"],
            "user_id": user,
            "user_name": self._user(user)["name"],
            "command": command,
            "text": text,
            "api_app_id": self.fake.app_id,
            "is_enterprise_install": "false",
            "response_url": self.fake.new_response_url(ch["id"], user),
            "trigger_id": self.fake.issue_trigger_id(user),
        }

    def event(self, event: Payload, *, event_id: str | None = None) -> Payload:
        """An event_callback envelope around ``event`` (e.g. from fake.post_as_user)."""
        return {
            "token": self.token,
            "team_id": self.fake.team_id,
            "context_team_id": self.fake.team_id,
            "api_app_id": self.fake.app_id,
            "event": event,
            "type": "event_callback",
            "event_id": event_id or f"Ev{uuid.uuid4().hex[:10].upper()}",
            "event_time": int(time.time()),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": self.fake.team_id,
                    "user_id": self.fake.bot_user_id,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": f"4-fake-{uuid.uuid4().hex[:8]}",
        }

    def url_verification(self, challenge: str) -> Payload:
        return {"token": self.token, "challenge": challenge, "type": "url_verification"}

    def block_action(
        self,
        action_id: str,
        value: Any = None,
        *,
        user: str,
        channel: str | None = None,
        message: Payload | str | None = None,
        view: Payload | None = None,
        block_id: str | None = None,
    ) -> Payload:
        """A block_actions payload for a click in a message (channel + message dict or ts) or a view."""
        payload: Payload = {
            "type": "block_actions",
            "user": self._user(user),
            "api_app_id": self.fake.app_id,
            "token": self.token,
            "trigger_id": "",
            "team": self._team(),
            "enterprise": None,
            "is_enterprise_install": False,
            "state": {"values": {}},
        }
        blocks: list[Payload] = []
        if view is not None:
            payload.update(container={"type": "view", "view_id": view.get("id")}, view=copy.deepcopy(view))
            blocks = view.get("blocks", [])
            payload["trigger_id"] = self.fake.issue_trigger_id(user, view.get("id"))
        elif channel is not None:
            msg = self._message(channel, message) if message is not None else None
            ch = self._channel(channel)
            payload.update(channel=ch, trigger_id=self.fake.issue_trigger_id(user))
            if msg:
                blocks = msg.get("blocks", [])
                payload.update(
                    message=msg,
                    container={
                        "type": "message",
                        "message_ts": msg["ts"],
                        "channel_id": ch["id"],
                        "is_ephemeral": False,
                    },
                )
            payload["response_url"] = self.fake.new_response_url(ch["id"], user, msg["ts"] if msg else None)
        else:
            raise ValueError("block_action needs a channel (and message) or a view")
        found_block_id, element = find_element(blocks, action_id, block_id)
        action: Payload = {"action_id": action_id, "block_id": found_block_id, "action_ts": f"{time.time():.6f}"}
        if element["type"] == "button":
            action.update(
                type="button", value=value, text=element.get("text") or {"type": "plain_text", "text": action_id}
            )
            if value is None:
                action["value"] = element.get("value")
        else:
            action.update(element_value(element, value))
        payload["actions"] = [{k: v for k, v in action.items() if v is not None}]
        return payload

    def view_submission(
        self,
        view: Payload,
        state_values: Payload,
        *,
        user: str,
        callback_id: str | None = None,
        private_metadata: str | None = None,
    ) -> Payload:
        """A view_submission payload. ``state_values`` is ``{block_id: {action_id: entry}}``; an entry that is
        not a dict is a shorthand for the element's value (text, option value, user id, date...)."""
        submitted = copy.deepcopy(view)
        submitted.setdefault("id", f"V{uuid.uuid4().hex[:10].upper()}")
        if callback_id is not None:
            submitted["callback_id"] = callback_id
        if private_metadata is not None:
            submitted["private_metadata"] = private_metadata
        blocks = submitted.get("blocks", [])
        submitted["state"] = {
            "values": {
                block_id: {
                    action_id: element_value(find_element(blocks, action_id, block_id)[1], value)
                    for action_id, value in actions.items()
                }
                for block_id, actions in state_values.items()
            }
        }
        for key, default in (
            ("team_id", self.fake.team_id),
            ("app_id", self.fake.app_id),
            ("bot_id", self.fake.bot_id),
            ("hash", "1.fake"),
            ("private_metadata", ""),
            ("root_view_id", submitted["id"]),
            ("previous_view_id", None),
        ):
            submitted.setdefault(key, default)
        submitted.pop("_user", None)
        submitted.pop("_seq", None)
        return {
            "type": "view_submission",
            "team": self._team(),
            "user": self._user(user),
            "api_app_id": self.fake.app_id,
            "token": self.token,
            "trigger_id": self.fake.issue_trigger_id(user, submitted["id"]),
            "view": submitted,
            "response_urls": [],
            "is_enterprise_install": False,
            "enterprise": None,
        }

    def message_shortcut(self, callback_id: str, *, user: str, channel: str, message: Payload | str) -> Payload:
        """A message_action payload (message shortcut) on ``message`` (dict or ts) in ``channel``."""
        ch = self._channel(channel)
        msg = self._message(channel, message)
        return {
            "type": "message_action",
            "token": self.token,
            "action_ts": f"{time.time():.6f}",
            "team": self._team(),
            "user": self._user(user),
            "channel": ch,
            "is_enterprise_install": False,
            "enterprise": None,
            "callback_id": callback_id,
            "trigger_id": self.fake.issue_trigger_id(user),
            "response_url": self.fake.new_response_url(ch["id"], user, msg["ts"]),
            "message_ts": msg["ts"],
            "message": msg,
        }
