"""Slack Web API method descriptions, loaded from the JSON files in ``methods/``."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

METHODS_DIR = Path(__file__).parent / "methods"

# The error Slack answers when a required argument is missing, tried in this order; the first one the
# method documents wins, else ``missing_argument``.
MISSING_ARGUMENT_ERRORS: dict[str, tuple[str, ...]] = {
    "channel": ("channel_not_found",),
    "user": ("user_not_found",),
    "users": ("no_user",),
    "name": ("invalid_name_required",),
    "email": ("users_not_found",),
    "ts": ("message_not_found", "thread_not_found"),
    "message_ts": ("message_not_found",),
    "timestamp": ("no_item_specified", "bad_timestamp"),
    "usergroup": ("no_such_subteam",),
    "files": ("file_not_found",),
}


@dataclass(frozen=True)
class MethodSpec:
    name: str
    required: tuple[str, ...] = ()
    errors: frozenset[str] = frozenset()
    tier: int | None = None  # None: "special rate limits"

    def missing_argument_error(self, args: dict[str, Any]) -> str | None:
        """The error for the first required argument that is absent or empty, or None."""
        for arg in self.required:
            if args.get(arg) in (None, "", [], {}):
                candidates = MISSING_ARGUMENT_ERRORS.get(arg, ())
                return next((e for e in candidates if e in self.errors), "missing_argument")
        return None


# Methods the fake serves that the reference data does not describe.
EXTRA_SPECS = (
    MethodSpec("apps.connections.open", tier=1),
)


@cache
def load_specs() -> dict[str, MethodSpec]:
    specs = {spec.name: spec for spec in EXTRA_SPECS}
    for path in sorted(METHODS_DIR.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        name = path.name.removesuffix(".json")
        tier = re.search(r"Tier (\d)", data.get("rate_limit", {}).get("label", ""))
        specs[name] = MethodSpec(
            name=name,
            required=tuple(k for k, v in data.get("args", {}).items() if v.get("required")),
            errors=frozenset(data.get("errors", {})),
            tier=int(tier.group(1)) if tier else None,
        )
    return specs
