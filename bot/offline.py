"""Offline commands (SPEC §3): classify, timeline and pir on an incident export, no Slack needed."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from core.export import ExportError, IncidentExport, load_export
from core.pir import build_pir, render_markdown
from core.render import format_when
from core.severity import ImpactFacts, classify
from core.timeline import analyze


def _load(path: str) -> IncidentExport:
    return load_export(path)


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


def _classify(export: IncidentExport, fmt: str) -> None:
    result = classify(ImpactFacts.from_export(export))
    if fmt == "json":
        _print_json(result.to_dict())
        return
    declared = export.incident.severity
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


def _timeline(export: IncidentExport, fmt: str) -> None:
    analysis = analyze(export)
    if fmt == "json":
        _print_json(analysis.to_dict())
        return
    for group in analysis.phases:
        print(
            f"{group.name.upper()} ({format_when(group.start, style='time')} to {format_when(group.end, style='time')})"
        )
        for event in group.events:
            actor = f" [{event.actor}]" if event.actor else ""
            print(f"  {format_when(event.timestamp, style='time')} {event.type}{actor}: {event.description}")
    print()
    print("Metrics:")
    for metric in analysis.metrics:
        print(
            f"  {metric.name}: {metric.to_dict()['text']} "
            f"({format_when(metric.start.at, style='time')} {metric.start.label} -> "
            f"{format_when(metric.end.at, style='time')} {metric.end.label})"
        )
    kept = analysis.cadence
    if kept and kept.due:
        print(f"  status updates on time: {kept.on_time} of {kept.due}")
    if analysis.gaps:
        print("Longest gaps:")
        for gap in analysis.gaps:
            print(
                f"  {gap.to_dict()['text']}: {format_when(gap.start.at, style='time')} -> "
                f"{format_when(gap.end.at, style='time')}"
            )


def _pir(export: IncidentExport, fmt: str) -> None:
    pir = build_pir(export)
    if fmt == "json":
        _print_json(pir.to_dict())
    elif fmt == "slack":
        from handlers.pir_blocks import summary_blocks

        _print_json({"blocks": summary_blocks(pir)})
    else:
        sys.stdout.write(render_markdown(pir))


def _runner(work: Callable[[IncidentExport, str], None]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            export = _load(args.file)
        except ExportError as error:
            message = str(error)
            where = "" if message.startswith(args.file) else f"{args.file}: "
            print(f"sitrep: {where}{message}", file=sys.stderr)
            return 2
        work(export, args.format)
        return 0

    return run


def add_offline_commands(sub: Any) -> None:
    for name, work, formats, default, text in (
        ("classify", _classify, ("text", "json"), "text", "severity suggestion with reasons, offline"),
        ("timeline", _timeline, ("text", "json"), "text", "phases, metrics and gaps, offline"),
        ("pir", _pir, ("md", "json", "slack"), "md", "post-incident review from an export, offline"),
    ):
        parser = sub.add_parser(name, help=text)
        parser.add_argument("file", metavar="FILE", help="incident export (JSON); - reads standard input")
        parser.add_argument("--format", choices=formats, default=default)
        parser.set_defaults(func=_runner(work))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sitrep")
    add_offline_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
