"""manifest.yml asks for exactly the bot scopes that the Web API methods and events sitrep uses need."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).parent.parent
METHODS = ROOT / "standin" / "methods"
# Scopes a method may be satisfied by; sitrep picks the public- and private-channel ones.
WANTED = {"chat:write", "channels:manage", "groups:write", "channels:join", "channels:read", "groups:read",
          "channels:history", "groups:history", "pins:write", "users:read", "files:write",
          "users:read.email", "bookmarks:write"}  # fmt: skip
EVENT_SCOPES = {
    "message.channels": {"channels:history"},
    "message.groups": {"groups:history"},
    "reaction_added": {"reactions:read"},
    "reaction_removed": {"reactions:read"},
    "pin_added": {"pins:read"},
    "pin_removed": {"pins:read"},
    "app_home_opened": set(),
}
# slack_sdk helpers that call more than one method.
COMPOSITE = {"files_upload_v2": ["files.getUploadURLExternal", "files.completeUploadExternal"]}


def manifest() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((ROOT / "manifest.yml").read_text())


def methods_called() -> set[str]:
    names: set[str] = set()
    for path in [*ROOT.glob("bot/**/*.py"), *ROOT.glob("handlers/**/*.py")]:
        for call in re.findall(r"client\.([a-z]+_[A-Za-z_0-9]+)\(", path.read_text()):
            names.update(COMPOSITE.get(call, [call.replace("_", ".", 1)]))
    return names


def test_every_method_called_is_known_and_covered_by_a_scope() -> None:
    scopes = set(manifest()["oauth_config"]["scopes"]["bot"])
    called = methods_called()
    assert {"chat.postMessage", "conversations.create", "files.completeUploadExternal"} <= called
    for method in sorted(called):
        spec = json.loads((METHODS / f"{method}.json").read_text())
        needed = {scope["name"] for scope in spec.get("scopes", {}).get("bot", [])}
        assert not needed or needed & scopes, f"{method} needs one of {sorted(needed)}"


def test_no_scope_is_asked_for_without_a_use() -> None:
    data = manifest()
    scopes = set(data["oauth_config"]["scopes"]["bot"])
    events = set(data["settings"]["event_subscriptions"]["bot_events"])
    used = {"commands"} if data["features"]["slash_commands"] else set()
    for method in methods_called():
        spec = json.loads((METHODS / f"{method}.json").read_text())
        used |= {s["name"] for s in spec.get("scopes", {}).get("bot", [])} & WANTED
    for event in events:
        used |= EVENT_SCOPES[event]
    assert scopes == used


def test_the_command_and_shortcut_match_the_code() -> None:
    data = manifest()
    command = data["features"]["slash_commands"][0]
    assert command["command"] == "/incident" and command["should_escape"] is True
    shortcut = data["features"]["shortcuts"][0]
    assert shortcut["callback_id"] == "sitrep_add_to_timeline" and shortcut["type"] == "message"
    assert data["settings"]["socket_mode_enabled"] is True and data["settings"]["interactivity"]["is_enabled"]


def test_the_direct_messages_sitrep_sends_can_be_read() -> None:
    """chat.postMessage to a user id lands in the app's Messages tab: a manifest without it hides them."""
    dm_calls = [
        path for path in [*ROOT.glob("bot/**/*.py"), *ROOT.glob("handlers/**/*.py")]
        if re.search(r"chat_postMessage\(channel=(who\.user_id|item\.owner_id)", path.read_text())
    ]  # fmt: skip
    assert dm_calls, "the code no longer sends direct messages: this test and the manifest comment are stale"
    home = manifest()["features"]["app_home"]
    assert home["home_tab_enabled"] is True and home["messages_tab_enabled"] is True
    assert home["messages_tab_read_only_enabled"] is True  # no listener reads message.im
    assert "message.im" not in manifest()["settings"]["event_subscriptions"]["bot_events"]
