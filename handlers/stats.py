"""`/incident stats [30d|90d|365d]` (SPEC §14): the figures of core.stats, privately, and a chart of time to resolve
per week by severity, uploaded to the person's direct messages with the bot (an ephemeral reply cannot carry a
file). The chart and the text are rendered here; `sitrep stats` renders them the same way offline."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from datetime import timedelta

from slack_sdk.errors import SlackApiError

from core.cadence import parse_duration
from core.enums import Severity
from core.stats import IncidentFigures, Stats, compute
from core.templating import jinja_env
from handlers import blockkit, flows
from handlers.deps import Deps
from handlers.reply import Who, reply_private

log = logging.getLogger("sitrep.stats")

COLOURS = {Severity.SEV1: "#d62728", Severity.SEV2: "#ff7f0e", Severity.SEV3: "#1f77b4", Severity.SEV4: "#9467bd"}
CHART_SIZE = (1000, 450)  # pixels
CHART_DPI = 100
HOUR = timedelta(hours=1)


def longest_shown(stats: Stats, may_see: Callable[[IncidentFigures], bool]) -> list[tuple[IncidentFigures, bool]]:
    """The longest incidents, each with whether it may be named: public ones always, private ones only when
    `may_see` says so (a member of its channel); the others show as "a private incident"."""
    return [(figures, not figures.private or may_see(figures)) for figures in stats.longest]


def render_text(stats: Stats, *, period: str, tz: str, longest: list[tuple[IncidentFigures, bool]]) -> str:
    """The figures as plain text (the command line)."""
    template = jinja_env().get_template("stats.txt.j2")
    return template.render(stats=stats, period=period, tz=tz, longest=longest).strip() + "\n"


def render_chart(stats: Stats) -> bytes | None:
    """Time to resolve per week by severity as a PNG of CHART_SIZE (median per week, in hours), drawn by
    matplotlib's Agg backend; bars in flat colours (COLOURS, no anti-aliasing). None with nothing resolved."""
    if not stats.weekly:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # imported on first use: it takes a while
    from matplotlib.collections import PolyCollection
    from matplotlib.figure import Figure

    figure = Figure(figsize=(CHART_SIZE[0] / CHART_DPI, CHART_SIZE[1] / CHART_DPI), dpi=CHART_DPI)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    figure.subplots_adjust(left=0.07, right=0.86, top=0.9, bottom=0.16)
    weeks = sorted(set(stats.weeks) | {bar.week for bar in stats.weekly})
    position = {week: index for index, week in enumerate(weeks)}
    width = 0.8 / len(Severity)
    tallest = 0.0
    for severity in Severity:  # one collection of bars per severity: one artist each, not one per bar
        bars = [bar for bar in stats.weekly if bar.severity == severity]
        if not bars:
            continue
        boxes = []
        for bar in bars:
            left, hours = position[bar.week] - 0.4 + width * (severity.level - 1), bar.median_resolve / HOUR
            boxes.append([(left, 0.0), (left, hours), (left + width, hours), (left + width, 0.0)])
            tallest = max(tallest, hours)
        axes.add_collection(PolyCollection(boxes, facecolors=COLOURS[severity], linewidths=0, antialiaseds=False,
                                           label=severity.label))  # fmt: skip
    step = max(1, -(-len(weeks) // 9))  # at most nine dates under the axis
    axes.set_xticks(range(0, len(weeks), step), [week.strftime("%d %b %Y") for week in weeks[::step]], fontsize=8)
    axes.set_xlim(-0.6, len(weeks) - 0.4)
    axes.set_ylim(0, (tallest or 1.0) * 1.05)
    axes.set_ylabel("median time to resolve (hours)")
    axes.set_xlabel("week of declaration")
    axes.set_title(f"Time to resolve per week by severity, {stats.since:%Y-%m-%d} to {stats.until:%Y-%m-%d}")
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=CHART_DPI, pil_kwargs={"compress_level": 1})
    return buffer.getvalue()


def send_chart(deps: Deps, user_id: str, png: bytes, *, period: str) -> bool:
    """Upload the chart to the person's direct messages with the bot; False (logged) when that failed."""
    try:
        dm = deps.client.conversations_open(users=user_id)["channel"]["id"]
        deps.client.files_upload_v2(
            channel=dm,
            file=png,
            filename=f"sitrep-time-to-resolve-{period}.png",
            title=f"Time to resolve per week by severity, last {period}",
            alt_txt=f"Bar chart: median time to resolve per week by severity over the last {period}",
        )
    except SlackApiError as exc:
        log.warning("could not upload the stats chart: %s", exc.response.get("error"), extra={"user": user_id})
        return False
    return True


def show(deps: Deps, who: Who, period: str) -> None:
    """`/incident stats <period>`: the figures privately, the chart in the person's direct messages."""
    user = who.user_id or ""
    now = deps.now()
    with deps.read() as session:
        stats = compute(session=session, since=now - parse_duration(period), until=now, zone=deps.config.zone)
    longest = longest_shown(
        stats, lambda figures: bool(figures.channel_id) and flows.is_member(deps, figures.channel_id or "", user)
    )
    png = render_chart(stats)
    if png is None:
        chart = "_No chart: no incident of this period is resolved yet._"
    elif send_chart(deps, user, png, period=period):
        chart = ":bar_chart: The chart of time to resolve per week is in your direct messages with sitrep."
    else:
        chart = ":warning: The chart could not be sent to your direct messages; the figures are above."
    text = blockkit.mrkdwn("stats", stats=stats, period=period, tz=deps.config.timezone, longest=longest, chart=chart)
    reply_private(deps, who, text)
