"""PIR at scale (issue 2): analysis plus Markdown rendering of a large incident, median of 5.

An incident of 10,000 events, 500 status updates and 50 action items. Goal: at most 300 ms.

    .venv/bin/python bench/pir_scale.py
"""

from __future__ import annotations

import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.export import parse_export  # noqa: E402
from core.pir import build_pir, render_markdown  # noqa: E402

KINDS = ("investigation", "note", "communication", "mitigation", "escalation")


def big_export(events: int = 10_000, updates: int = 500, actions: int = 50) -> dict[str, object]:
    start = datetime(2026, 1, 15, 8, 0, tzinfo=UTC)
    rows: list[dict[str, object]] = [
        {"timestamp": start.isoformat(), "type": "trigger", "description": "Error rate above 5%"},
        {"timestamp": (start + timedelta(minutes=3)).isoformat(), "type": "detection", "description": "Alert fired"},
        {
            "timestamp": (start + timedelta(minutes=5)).isoformat(),
            "type": "declaration",
            "description": "SEV2 declared",
        },
    ]
    for i in range(events - updates - 4):
        at = start + timedelta(minutes=6, seconds=3 * i)
        rows.append({"timestamp": at.isoformat(), "type": KINDS[i % len(KINDS)], "actor": f"person{i % 40}",
                     "description": f"Step {i}: looked at shard {i % 97} and restarted worker {i % 13}"})  # fmt: skip
    for i in range(updates):
        at = start + timedelta(minutes=7, seconds=59 * i)
        status = ("investigating", "identified", "monitoring")[min(2, i * 3 // updates)]
        rows.append({"timestamp": at.isoformat(), "type": "status_update", "actor": "comms",
                     "description": f"Update {i}", "metadata": {"status": status}})  # fmt: skip
    end = start + timedelta(hours=9)
    rows.append({"timestamp": end.isoformat(), "type": "resolution", "description": "Resolved"})
    return {
        "incident": {"title": "Large incident", "key": "INC-1", "severity": "SEV2", "commander": "Jane",
                     "declared_at": (start + timedelta(minutes=5)).isoformat(), "resolved_at": end.isoformat()},
        "events": rows,
        "resolution": {"root_cause": "A slow query", "contributing_factors": ["No load test"]},
        "action_items": [{"title": f"Action {i}", "owner": f"person{i}", "priority": "P2",
                          "deadline": "2026-02-01"} for i in range(actions)],
    }  # fmt: skip


def main() -> int:
    export = parse_export(big_export())
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        text = render_markdown(build_pir(export))
        timings.append(time.perf_counter() - started)
    median = statistics.median(timings) * 1000
    print(f"PIR of {len(export.events):,} events, 500 status updates, 50 action items: "
          f"median {median:.0f} ms of 5 (min {min(timings) * 1000:.0f}, max {max(timings) * 1000:.0f}); "
          f"{len(text):,} characters of Markdown; goal <= 300 ms")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
