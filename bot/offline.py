"""Offline commands (SPEC §3): classify, timeline and pir on an incident export, and stats (SPEC §14) from the
database, no Slack needed.

`sitrep classify|timeline|pir FILE [--format ...]`; FILE `-` reads standard input. The cadence comes from
SITREP_CADENCE and the display zone from SITREP_TIMEZONE (or --timezone), as for the bot; neither needs the
Slack settings. A bad file or setting prints one line to standard error and exits with 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from core.cadence import DEFAULT_CADENCE_TEXT, parse_cadence, parse_duration
from core.enums import Severity
from core.export import ExportError, IncidentExport, load_export
from core.pir import build_pir, render_markdown
from core.severity import ImpactFacts, classify
from core.templating import escape_slack, format_when, zone
from core.timeline import analyze

Cadence = dict[Severity, timedelta | None]


class UsageError(ValueError):
    """A bad option or environment value; the message is one line."""


def _cadence() -> Cadence:
    text = os.environ.get("SITREP_CADENCE") or DEFAULT_CADENCE_TEXT
    try:
        return parse_cadence(text)
    except ValueError as error:
        raise UsageError(f"SITREP_CADENCE: {error}") from None


def _timezone(args: argparse.Namespace) -> str:
    name = getattr(args, "timezone", None) or os.environ.get("SITREP_TIMEZONE") or "UTC"
    try:
        zone(name)
    except ValueError as error:
        where = "--timezone" if getattr(args, "timezone", None) else "SITREP_TIMEZONE"
        raise UsageError(f"{where}: {error}") from None
    return name


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


def _classify(export: IncidentExport, args: argparse.Namespace) -> None:
    result = classify(ImpactFacts.from_export(export), cadence=_cadence())
    declared = export.incident.severity
    if args.format == "json":
        _print_json({**result.to_dict(), "declared_severity": declared.label if declared else None})
        return
    print(f"Suggested severity: {result.severity.label}")
    if declared:
        same = "the same" if declared == result.severity else "different"
        print(f"Declared severity: {declared.label} ({same})")
    print("Why:")
    for reason in result.reasons:
        print(f"  - {reason}")
    print(f"Status updates: {result.cadence}")
    print(f"Roles to fill: {', '.join(role.title for role in result.roles_to_fill)}")
    print(f"Escalation path: {' -> '.join(result.escalation_path)}")


def _timeline(export: IncidentExport, args: argparse.Namespace) -> None:
    analysis = analyze(export, cadence=_cadence())
    if args.format == "json":
        _print_json(analysis.to_dict())
        return
    tz = _timezone(args)
    days = {format_when(e.timestamp, tz, "date") for e in (analysis.events[:1] + analysis.events[-1:])}
    style = "time" if len(days) <= 1 else "datetime"

    def at(moment: Any) -> str:
        return format_when(moment, tz, style)

    if analysis.events:
        print(f"Times in {format_when(analysis.events[0].timestamp, tz).rsplit(' ', 1)[-1]}")
    for group in analysis.phases:
        span = at(group.start) if group.start == group.end else f"{at(group.start)} to {at(group.end)}"
        print(f"{group.name.upper()} ({span})")
        for event in group.events:
            actor = f" [{event.actor}]" if event.actor else ""
            print(f"  {at(event.timestamp)} {event.type}{actor}: {' '.join(event.description.split())}")
    print()
    print("Metrics:")
    if not analysis.metrics:
        print("  none: the export lacks the events they are measured between")
    for metric in analysis.metrics:
        print(f"  {metric.name}: {metric.to_dict()['text']}")
        print(f"    from {at(metric.start.at)} {metric.start.label}")
        print(f"    to   {at(metric.end.at)} {metric.end.label}")
    kept = analysis.cadence
    if kept and kept.due:
        print(
            f"  status updates on time: {kept.on_time} of {kept.due} "
            f"({kept.late} late, {kept.missed} periods with no update)"
        )
        if kept.longest_silence:
            silence = kept.longest_silence
            print(
                f"  longest silence between status updates: {silence.to_dict()['text']} "
                f"({at(silence.start.at)} to {at(silence.end.at)})"
            )
    if analysis.gaps:
        print("Longest gaps between events:")
        for gap in analysis.gaps:
            print(f"  {gap.to_dict()['text']}: {at(gap.start.at)} to {at(gap.end.at)}")


def _pir(export: IncidentExport, args: argparse.Namespace) -> None:
    pir = build_pir(export, cadence=_cadence(), timezone=_timezone(args))
    if args.format == "json":
        _print_json(pir.to_dict())
    elif args.format == "slack":
        # The chat.postMessage payload the bot posts on resolve: notification text plus the Block Kit summary.
        from handlers.pir_blocks import summary_blocks

        head = " ".join(part for part in (pir.key, pir.title) if part)
        text = f"Post-incident review: {escape_slack(head)} ({pir.severity}, {pir.status.lower()})"
        _print_json({"text": text, "blocks": summary_blocks(pir)})
    else:
        sys.stdout.write(render_markdown(pir))


def _fail(message: str) -> int:
    print(f"sitrep: {message}", file=sys.stderr)
    return 2


def _runner(work: Callable[[IncidentExport, argparse.Namespace], None]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            _cadence()
            if hasattr(args, "timezone"):
                _timezone(args)
            export = load_export(args.file)
        except UsageError as error:
            return _fail(str(error))
        except ExportError as error:
            message = str(error)
            where = "" if message.startswith(args.file) else f"{args.file}: "
            return _fail(f"{where}{message}")
        try:
            work(export, args)
        except BrokenPipeError:  # e.g. `sitrep pir FILE | head`: the reader left, which is fine
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0

    return run


def _stats(args: argparse.Namespace) -> int:
    """`sitrep stats`: the figures of `/incident stats` from the database; private incidents counted, not named."""
    import sqlalchemy as sa

    from core.db import make_engine, session_factory
    from core.stats import compute
    from handlers.stats import longest_shown, render_chart, render_text

    try:
        period = parse_duration(args.since)
        tz = _timezone(args)
    except ValueError as error:
        return _fail(f"--since: {error}" if not isinstance(error, UsageError) else str(error))
    url = args.database_url or os.environ.get("DATABASE_URL") or "sqlite:///sitrep.db"
    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            now = datetime.now(UTC)
            stats = compute(session=session, since=now - period, until=now, zone=zone(tz))
    except sa.exc.SQLAlchemyError as error:
        where = sa.make_url(url).render_as_string(hide_password=True)
        return _fail(f"cannot read the incidents at {where} (run `sitrep db upgrade` first?): {type(error).__name__}")
    finally:
        engine.dispose()
    longest = longest_shown(stats, lambda _: False)
    if args.chart:
        png = render_chart(stats)
        if png is None:
            print("sitrep: no chart: no incident of this period is resolved", file=sys.stderr)
        else:
            with open(args.chart, "wb") as out:
                out.write(png)
    if args.format == "json":
        _print_json(stats.to_dict())
    else:
        sys.stdout.write(render_text(stats, period=args.since, tz=tz, longest=longest))
    return 0


def add_offline_commands(sub: Any) -> None:
    """Register `classify`, `timeline`, `pir` and `stats` on an argparse subparsers object (each sets `func`)."""
    text = "incident figures from the database: by severity, median and p90 of the metrics, updates, actions"
    stats = sub.add_parser("stats", help=text, description=text)
    stats.add_argument("--since", default="90d", metavar="PERIOD", help="incidents declared this long ago or since "
                       "(e.g. 30d, 90d, 365d; default 90d)")  # fmt: skip
    stats.add_argument("--format", choices=("text", "json"), default="text")
    stats.add_argument("--chart", metavar="FILE", help="write the chart of time to resolve per week (PNG) here")
    stats.add_argument("--database-url", metavar="URL", help="default: DATABASE_URL or sqlite:///sitrep.db")
    stats.add_argument("--timezone", metavar="ZONE", help="zone of dates and weeks (default SITREP_TIMEZONE or UTC)")
    stats.set_defaults(func=_stats)
    for name, work, formats, default, text in (
        ("classify", _classify, ("text", "json"), "text", "severity suggestion with reasons, offline"),
        ("timeline", _timeline, ("text", "json"), "text", "phases, metrics and gaps, offline"),
        ("pir", _pir, ("md", "json", "slack"), "md", "post-incident review from an export, offline"),
    ):
        parser = sub.add_parser(name, help=text, description=text)
        parser.add_argument("file", metavar="FILE", help="incident export (JSON); - reads standard input")
        parser.add_argument("--format", choices=formats, default=default)
        if name != "classify":
            parser.add_argument(
                "--timezone", metavar="ZONE", help="zone for times shown to people (default SITREP_TIMEZONE or UTC)"
            )
        parser.set_defaults(func=_runner(work))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sitrep")
    add_offline_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
