"""Block Kit validation with the limits real Slack enforces.

Messages allow 50 blocks, modals and App Home 100. A breach raises :class:`BlockError`, whose message has
the shape of Slack's ``response_metadata.messages`` entries.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

BLOCK_TYPES = frozenset(
    {
        "section",
        "divider",
        "image",
        "actions",
        "context",
        "input",
        "file",
        "header",
        "rich_text",
        "video",
        "markdown",
        "table",
    }
)
TEXT_TYPES = frozenset({"plain_text", "mrkdwn"})
MESSAGE_MAX_BLOCKS = 50
SURFACE_MAX_BLOCKS = 100


class BlockError(ValueError):
    def __init__(self, pointer: str, message: str) -> None:
        super().__init__(f"[ERROR] {message} [json-pointer:{pointer}]")


def _limit(value: Any, limit: int, ptr: str) -> None:
    if value is not None and len(value) > limit:
        raise BlockError(ptr, f"must be at most {limit} long")


def check_text(obj: Any, ptr: str, limit: int, *, plain: bool = False) -> None:
    """A text object: plain_text or mrkdwn (plain_text only when ``plain``), 1..limit characters."""
    if not isinstance(obj, dict) or obj.get("type") not in TEXT_TYPES:
        raise BlockError(ptr, "must be a text object")
    if plain and obj["type"] != "plain_text":
        raise BlockError(f"{ptr}/type", "must be plain_text")
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        raise BlockError(f"{ptr}/text", "must be more than 0 characters")
    _limit(text, limit, f"{ptr}/text")


def _check_element(el: Any, ptr: str) -> None:
    if not isinstance(el, dict) or not isinstance(el.get("type"), str):
        raise BlockError(ptr, "must be an element object")
    _limit(el.get("action_id"), 255, f"{ptr}/action_id")
    if el["type"] == "button":
        check_text(el.get("text"), f"{ptr}/text", 75, plain=True)
        _limit(el.get("value"), 2000, f"{ptr}/value")
        _limit(el.get("url"), 3000, f"{ptr}/url")
    if "placeholder" in el:
        check_text(el["placeholder"], f"{ptr}/placeholder", 150, plain=True)
    options = el.get("options")
    if options is not None:
        _limit(options, 100, f"{ptr}/options")
        for i, option in enumerate(options):
            check_text(option.get("text") if isinstance(option, dict) else None, f"{ptr}/options/{i}/text", 75)
            _limit(option.get("value"), 150, f"{ptr}/options/{i}/value")


def _check_elements(elements: Any, ptr: str, limit: int, check: Callable[[Any, str], None]) -> None:
    if not isinstance(elements, list) or not elements:
        raise BlockError(ptr, "must provide at least one element")
    _limit(elements, limit, ptr)
    for i, el in enumerate(elements):
        check(el, f"{ptr}/{i}")


def _check_context_element(el: Any, ptr: str) -> None:
    if isinstance(el, dict) and el.get("type") == "image":
        _check_image(el, ptr)
    else:
        check_text(el, ptr, 3000)


def _check_image(block: dict[str, Any], ptr: str) -> None:
    if not block.get("image_url") and not block.get("slack_file"):
        raise BlockError(ptr, "must provide image_url or slack_file")
    if not block.get("alt_text"):
        raise BlockError(f"{ptr}/alt_text", "must be more than 0 characters")
    _limit(block["alt_text"], 2000, f"{ptr}/alt_text")


def _check_section(block: dict[str, Any], ptr: str) -> None:
    if "text" not in block and "fields" not in block:
        raise BlockError(ptr, "must provide text or fields")
    if "text" in block:
        check_text(block["text"], f"{ptr}/text", 3000)
    if "fields" in block:
        fields = block["fields"]
        _limit(fields, 10, f"{ptr}/fields")
        for i, field in enumerate(fields):
            check_text(field, f"{ptr}/fields/{i}", 2000)
    if "accessory" in block:
        _check_element(block["accessory"], f"{ptr}/accessory")


def _check_actions(block: dict[str, Any], ptr: str) -> None:
    _check_elements(block.get("elements"), f"{ptr}/elements", 25, _check_element)
    ids = [el.get("action_id") for el in block["elements"] if el.get("action_id")]
    if len(ids) != len(set(ids)):
        raise BlockError(f"{ptr}/elements", "action_id values must be unique")


def _check_input(block: dict[str, Any], ptr: str) -> None:
    check_text(block.get("label"), f"{ptr}/label", 2000, plain=True)
    _check_element(block.get("element"), f"{ptr}/element")
    if "hint" in block:
        check_text(block["hint"], f"{ptr}/hint", 2000, plain=True)


_BLOCK_CHECKS: dict[str, Callable[[dict[str, Any], str], None]] = {
    "section": _check_section,
    "header": lambda b, p: check_text(b.get("text"), f"{p}/text", 150, plain=True),
    "context": lambda b, p: _check_elements(b.get("elements"), f"{p}/elements", 10, _check_context_element),
    "actions": _check_actions,
    "image": _check_image,
    "input": _check_input,
    "markdown": lambda b, p: _limit(b.get("text"), 12000, f"{p}/text"),
}


def validate_blocks(blocks: Any, *, max_blocks: int = MESSAGE_MAX_BLOCKS, ptr: str = "/blocks") -> None:
    """Raise BlockError unless ``blocks`` is a list of valid blocks within Slack's limits."""
    if not isinstance(blocks, list):
        raise BlockError(ptr, "must be an array")
    _limit(blocks, max_blocks, ptr)
    block_ids: set[str] = set()
    for i, block in enumerate(blocks):
        p = f"{ptr}/{i}"
        if not isinstance(block, dict) or block.get("type") not in BLOCK_TYPES:
            raise BlockError(f"{p}/type", "unsupported block type")
        block_id = block.get("block_id")
        if block_id is not None:
            if not isinstance(block_id, str) or not block_id:
                raise BlockError(f"{p}/block_id", "must be a non-empty string")
            _limit(block_id, 255, f"{p}/block_id")
            if block_id in block_ids:
                raise BlockError(f"{p}/block_id", "duplicate block_id")
            block_ids.add(block_id)
        check = _BLOCK_CHECKS.get(block["type"])
        if check:
            check(block, p)


def validate_view(view: Any, *, surface: str | None = None) -> None:
    """Raise BlockError unless ``view`` is a valid modal or home view (of type ``surface`` when given)."""
    if not isinstance(view, dict) or view.get("type") not in ("modal", "home"):
        raise BlockError("/view/type", "must be modal or home")
    if surface and view["type"] != surface:
        raise BlockError("/view/type", f"must be {surface}")
    if view["type"] == "modal":
        check_text(view.get("title"), "/view/title", 24, plain=True)
        for button in ("submit", "close"):
            if button in view:
                check_text(view[button], f"/view/{button}", 24, plain=True)
        has_input = any(isinstance(b, dict) and b.get("type") == "input" for b in view.get("blocks") or [])
        if has_input and "submit" not in view:
            raise BlockError("/view/submit", "submit is required when an input block is within the blocks")
    for key, limit in (("callback_id", 255), ("private_metadata", 3000), ("external_id", 255)):
        _limit(view.get(key), limit, f"/view/{key}")
    validate_blocks(view.get("blocks"), max_blocks=SURFACE_MAX_BLOCKS, ptr="/view/blocks")
