"""The impact an export reports, read once for classification (core.severity), the PIR and its Slack summary.

Two rules keep the figures honest (issue 12):
- A figure is taken from the export's fields first; where a field is absent, a figure stated in the export's own
  words (the customer and business impact texts) is used, with the words quoted: "80% of users unable to pay",
  "Estimated revenue loss of $45,000", "orders written between 02:10 and 02:55 were lost".
- A zero, or a level of "none", that another figure contradicts reads as a default nobody filled in: it is "not
  reported" and left out, so the PIR never states two figures that contradict each other. "8% of users" and "0
  users affected" keep the 8%; "revenue impact: high" and "$0" keep "high"; a full outage keeps no "0 failed".

Pure functions over an IncidentExport; the same input always gives the same output.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from core.export import IncidentExport

_SENTENCE = re.compile(r"(?<=[.!?;])\s+|\n+")
_USERS = r"(?:users?|customers?|accounts?|tenants?|merchants?|subscribers?|members?|shoppers?|players?|visitors?)"
_SHARE_OF_USERS = re.compile(
    rf"(?<![\d.])(\d{{1,3}}(?:\.\d+)?)\s*%\s+of\s+(?:all\s+|our\s+|the\s+|active\s+|paying\s+)*{_USERS}\b", re.I
)
_MONEY = re.compile(r"(?:\$|\bUSD\s?)\s?(\d[\d,]*(?:\.\d+)?)\s*(k|m|thousand|million|bn|billion)?\b", re.I)
_MONEY_WORDS = re.compile(r"\b(revenue|sales|loss|lost|refunds?|credits?|penalt\w*|cost\w*)\b", re.I)
_SCALE = {"k": 1e3, "thousand": 1e3, "m": 1e6, "million": 1e6, "bn": 1e9, "billion": 1e9}
_DATA_LOSS = re.compile(
    r"\bdata[- ]loss\b|\blost\s+(?:data|writes|records|rows|orders|messages|events|files|uploads|transactions)\b"
    r"|\b(?:data|writes|records|rows|orders|messages|events|files|uploads|transactions|entries|backups?)\b"
    r"[^.;]{0,60}?\b(?:were|was|are|is|got|been)\s+(?:permanently\s+|irrecoverably\s+)?"
    r"(?:lost|deleted|unrecoverable|not recoverable|corrupted|gone)\b"
    r"|\b(?:unrecoverable|irrecoverable|permanently lost)\b",
    re.I,
)
_NEGATION = re.compile(r"\b(?:no|not|without|zero|none|never|nothing)\b[^.;]{0,25}$", re.I)
_HAS_FIGURE = re.compile(r"\d")
FULL_OUTAGE = ("full", "complete", "total", "outage", "full outage")


def sentences(text: str | None) -> list[str]:
    """The sentences of a text, whitespace tidied, ending punctuation dropped (they are quoted inside ours)."""
    if not text:
        return []
    return [" ".join(part.split()).rstrip(".;") for part in _SENTENCE.split(text) if part.strip()]


def quote(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return f"“{text}”"


def _data_loss_said(sentence: str) -> bool | None:
    """True when a sentence says data was lost, False when it says none was, None when it says neither."""
    match = _DATA_LOSS.search(sentence)
    if match is None:
        return None
    return not _NEGATION.search(sentence[: match.start()] + match.group(0).split()[0])


def _money(sentence: str) -> float | None:
    if not _MONEY_WORDS.search(sentence):
        return None
    match = _MONEY.search(sentence)
    if match is None:
        return None
    value = float(match.group(1).replace(",", ""))
    return value * _SCALE.get((match.group(2) or "").lower(), 1)


@dataclass(frozen=True)
class Stated:
    """A figure stated in the export's words, with the sentence it came from and where that sentence is."""

    value: Any
    sentence: str
    where: str

    @property
    def quoted(self) -> str:
        return quote(self.sentence)


@dataclass(frozen=True)
class ReportedImpact:
    users_pct: float | None = None
    users_pct_stated: Stated | None = None  # set when the share comes from the words, not a field
    users: int | None = None
    failed_transactions: int | None = None
    revenue_level: str | None = None
    revenue_usd: float | None = None
    revenue_stated: Stated | None = None  # set when the amount comes from the words
    data_loss: bool | None = None
    data_loss_stated: Stated | None = None  # the words that say data was lost, when a field does not
    data_loss_details: list[str] = field(default_factory=list)  # sentences giving how much or when
    not_reported: list[str] = field(default_factory=list)  # figures left out, and why

    @property
    def any_impact(self) -> bool:
        return bool(
            (self.users_pct or 0) > 0
            or (self.users or 0) > 0
            or (self.failed_transactions or 0) > 0
            or (self.revenue_usd or 0) > 0
            or self.revenue_level in ("low", "medium", "high")
            or self.data_loss
        )


def _texts(export: IncidentExport) -> list[tuple[str, str]]:
    """(where, sentence) for the export's own impact words, most specific first."""
    found: list[tuple[str, str]] = []
    for where, text in (
        ("customer impact", export.impact.customer_impact),
        ("business impact", export.impact.business_impact),
        ("description", export.incident.description),
    ):
        found.extend((where, s) for s in sentences(text))
    return found


def _loss_details(export: IncidentExport, texts: list[tuple[str, str]]) -> list[str]:
    """Sentences that say data was lost and give a figure (how much, or a time window), at most three."""
    pool = [s for _, s in texts] + [s for event in export.events for s in sentences(event.description)]
    pool += sentences(export.resolution.root_cause)
    details: list[str] = []
    for sentence in pool:
        if _HAS_FIGURE.search(sentence) and _data_loss_said(sentence) and sentence not in details:
            details.append(sentence)
            if len(details) == 3:
                break
    return details


def reported_impact(export: IncidentExport) -> ReportedImpact:
    impact = export.impact
    customer = export.resolution.customer_impact
    texts = _texts(export)
    dropped: list[str] = []

    pct = impact.affected_users_percentage
    pct_stated: Stated | None = None
    if pct is None:
        for where, sentence in texts:
            match = _SHARE_OF_USERS.search(sentence)
            if match and float(match.group(1)) <= 100:
                pct, pct_stated = float(match.group(1)), Stated(float(match.group(1)), sentence, where)
                break
    users = customer.affected_users if customer else None
    failed = customer.failed_transactions if customer else None
    usd = customer.revenue_impact_usd if customer else None
    usd_stated: Stated | None = None
    if usd is None:
        for where, sentence in texts:
            amount = _money(sentence)
            if amount is not None:
                usd, usd_stated = amount, Stated(amount, sentence, where)
                break
    level = impact.revenue_impact

    flag = impact.data_loss if impact.data_loss is not None else (customer.data_loss if customer else None)
    said = [(where, s, _data_loss_said(s)) for where, s in texts]
    loss_stated = next((Stated(True, s, w) for w, s, lost in said if lost), None)
    data_loss: bool | None = flag
    if flag is not True and loss_stated is not None:
        if flag is False:
            dropped.append(f"“no data lost” (the {loss_stated.where} says data was lost)")
        data_loss = True
    elif flag is None and any(lost is False for _, _, lost in said):
        data_loss = False
    if flag is True:
        loss_stated = None  # the field says it; the words are only details

    # Zeros and "none" that another figure contradicts are defaults nobody filled in.
    full = (impact.degradation_type or "").strip().lower() in FULL_OUTAGE or bool(impact.revenue_systems_down)
    if users == 0 and ((pct or 0) > 0 or (failed or 0) > 0):
        users = None
        dropped.append("0 users affected (the export also gives a share of users or failed transactions)")
    if pct == 0 and ((users or 0) > 0 or (failed or 0) > 0):
        pct, pct_stated = None, None
        dropped.append("0% of users affected (the export also gives users or transactions affected)")
    if failed == 0 and (full or (usd or 0) > 0):
        failed = None
        dropped.append("0 failed transactions (the export also reports a full outage or lost revenue)")
    if usd == 0 and (level in ("low", "medium", "high") or full):
        usd, usd_stated = None, None
        other = f"a revenue impact of {level}" if level in ("low", "medium", "high") else "a full outage"
        dropped.append(f"$0 revenue impact (the export also gives {other})")
    if level == "none" and ((usd or 0) > 0 or full):
        level = None
        dropped.append("revenue impact “none” (the export also gives an amount or a full outage)")
    return ReportedImpact(
        users_pct=pct,
        users_pct_stated=pct_stated,
        users=users,
        failed_transactions=failed,
        revenue_level=level,
        revenue_usd=usd,
        revenue_stated=usd_stated,
        data_loss=data_loss,
        data_loss_stated=loss_stated,
        data_loss_details=_loss_details(export, texts) if data_loss else [],
        not_reported=dropped,
    )


def money(value: float) -> str:
    return f"${value:,.0f}" if value >= 1 or value == 0 else f"${value:,.2f}"
