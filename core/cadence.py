"""Durations and the status-update cadence per severity. Pure functions."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta

from core.enums import Severity

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
DEFAULT_CADENCE_TEXT = "sev1=15m,sev2=30m,sev3=4h,sev4=off"

Cadence = Mapping[Severity, timedelta | None]
"""The status-update period per severity; None is off."""


def parse_duration(text: str) -> timedelta:
    """`90s`, `15m`, `4h`, `1d` (a bare number is seconds). Raise ValueError with what is accepted."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text.lower())
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"{text!r} is not a duration: use a positive number with s, m, h or d (e.g. 15m, 7d)")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2) or "s"])


def parse_cadence(text: str) -> dict[Severity, timedelta | None]:
    """`sev1=15m,sev2=30m,sev3=4h,sev4=off` -> {Severity: timedelta or None (off)}.

    Severities not named keep their default."""
    return parse_cadence_pairs(DEFAULT_CADENCE_TEXT) | parse_cadence_pairs(text)


def parse_cadence_pairs(text: str) -> dict[Severity, timedelta | None]:
    result: dict[Severity, timedelta | None] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"{part!r} is not of the form sevN=DURATION (e.g. sev1=15m, sev4=off)")
        severity = Severity.parse(key)
        result[severity] = None if value.strip().lower() == "off" else parse_duration(value)
    return result


def format_duration(delta: timedelta) -> str:
    """Human text: `45 s`, `5 min`, `2 h 30 min`, `2 d 7 h 40 min` (no unit above seconds is ever dropped)."""
    seconds = int(round(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    minutes, _ = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    parts = [(days, "d"), (hours, "h"), (minutes, "min")]
    return " ".join(f"{value} {unit}" for value, unit in parts if value)
