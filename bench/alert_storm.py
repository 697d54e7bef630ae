"""Alert storm (issue 14): 1,000 Alertmanager notifications in 10 s over 20 groups against the bot.

Starts the real app against the fake Slack (SQLite, or --database-url) and plays Alertmanager: each group's
notifications in order (as Alertmanager sends them), the groups side by side, paced to 100 notifications a second.
Each notification of a group carries one alert more than the one before; the last one of every other group
resolves them all. Prints the ack latency of POST /hooks/alertmanager (p50, p99, max), the Slack messages posted
and edited, and each group's final state as its triage message shows it. Goal: p99 <= 50 ms, exactly 20 triage
messages, every group's message showing its last notification.

    .venv/bin/python bench/alert_storm.py [--notifications 1000] [--groups 20] [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from standin.hooks import WEBHOOK_TOKEN, HookClient, alert, notification  # noqa: E402
from tests.fakeslack import FakeSlack  # noqa: E402
from tests.harness import ALICE, running_bot  # noqa: E402


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def payload(group: int, step: int, last: bool) -> dict[str, object]:
    name = f"Storm{group:02d}"
    resolved = last and group % 2 == 0
    alerts = [
        alert(name, instance=f"host-{n}", summary=f"{name} on host-{n}", status="resolved" if resolved else "firing")
        for n in range(step + 1)
    ]
    return notification(name, alerts)


def expected(group: int, steps: int) -> str:
    return "*Resolved*" if group % 2 == 0 else f"{steps} of {steps} alerts firing"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notifications", type=int, default=1000)
    parser.add_argument("--groups", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temporary folder")
    args = parser.parse_args()
    steps = args.notifications // args.groups
    interval = args.seconds / (steps * args.groups)

    with tempfile.TemporaryDirectory() as tmp:
        fake = FakeSlack().start()
        triage = fake.add_channel("alerts", [ALICE], bot_member=True)
        url = args.database_url or f"sqlite:///{tmp}/bench.db"
        env = {"SITREP_WEBHOOK_TOKEN": WEBHOOK_TOKEN, "SITREP_TRIAGE_CHANNEL": triage}
        with running_bot(url, fake=fake, **env) as bot:
            hooks = HookClient(f"http://127.0.0.1:{bot.server.port}")
            latencies: list[float] = []
            failures = [0]
            lock = threading.Lock()
            # Encoded before the clock starts, so that the player spends no time of the bot's process on them.
            bodies = [[json.dumps(payload(g, step, last=step == steps - 1)).encode() for step in range(steps)]
                      for g in range(args.groups)]  # fmt: skip
            start = time.perf_counter() + 0.2

            def play(group: int) -> None:
                """One group's notifications in order, each at its slot of the overall pace."""
                for step in range(steps):
                    body = bodies[group][step]
                    delay = start + (step * args.groups + group) * interval - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                    sent = time.perf_counter()
                    answer = hooks.alertmanager(body)
                    took = time.perf_counter() - sent
                    with lock:
                        latencies.append(took)
                        failures[0] += answer.status != 200

            with ThreadPoolExecutor(args.groups) as pool:
                list(pool.map(play, range(args.groups)))
            elapsed = time.perf_counter() - start
            settle = time.perf_counter()
            bot.idle(60)
            settled = time.perf_counter() - settle
            posted = [c for c in fake.calls_to("chat.postMessage") if c.args.get("channel") == triage]
            edits = [c for c in fake.calls_to("chat.update") if c.args.get("channel") == triage]
            messages = fake.messages(triage)

        ms = [value * 1000 for value in latencies]
        print(f"notifications: {len(ms)} in {elapsed:.1f} s over {args.groups} groups, non-200: {failures[0]}")
        print(f"ack /hooks/alertmanager: p50={percentile(ms, 0.5):.1f} ms p99={percentile(ms, 0.99):.1f} ms "
              f"max={max(ms):.1f} ms")  # fmt: skip
        print(f"slack: {len(posted)} triage messages posted, {len(edits)} edits; background settled "
              f"{settled * 1000:.0f} ms after the last ack")  # fmt: skip
        lost = 0
        for message in sorted(messages, key=lambda m: m.get("text", "")):
            text = "\n".join(b["text"]["text"] for b in message.get("blocks", []) if b["type"] == "section")
            name = re.search(r"\*(Storm\d+)\*", text)
            group = int(name.group(1)[5:]) if name else -1
            ok = expected(group, steps) in text
            lost += not ok
            state = "resolved" if "*Resolved*" in text else re.search(r"\d+ of \d+ alerts firing", text)
            shown = state if isinstance(state, str) else (state.group(0) if state else "?")
            print(f"  {name.group(1) if name else '?'}: {shown}{'' if ok else '  <- NOT the final state'}")
        fake.stop()
        goal = percentile(ms, 0.99) <= 50 and len(posted) == args.groups and lost == 0 and not failures[0]
        print(f"goal (p99 <= 50 ms, exactly {args.groups} triage messages, every final state shown): "
              f"{'met' if goal else 'NOT met'}")  # fmt: skip
        return 0 if goal else 1


if __name__ == "__main__":
    raise SystemExit(main())
