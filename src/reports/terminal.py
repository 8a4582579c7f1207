"""The terminal summary of an alert: the numbers operators ask for and a chart of reads."""

from __future__ import annotations

from datetime import datetime

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from reports.rollups import AlertRollup, MinuteReads

BLOCKS = " ▁▂▃▄▅▆▇█"
CHART_HEIGHT = 8


def _number(value: int) -> str:
    return f"{value:,}"


def percent(value: float | None) -> str:
    """A rate as a percentage with one decimal, "-" when there is none yet."""
    return "-" if value is None else f"{value:.1%}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, rest = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {rest:02d}s" if hours else f"{minutes}m {rest:02d}s"


def reads_chart(series: list[MinuteReads], width: int, height: int = CHART_HEIGHT) -> Text:
    """Reads over time as bars of block characters, `width` columns wide at most."""
    if not series:
        return Text("no reads yet", style="dim")
    first, last = series[0].minute, series[-1].minute
    minutes = int((last - first).total_seconds() // 60) + 1
    per_column = -(-minutes // max(1, width))  # ceiling: minutes summed into one bar
    columns = [0] * (-(-minutes // per_column))
    for point in series:
        columns[int((point.minute - first).total_seconds() // 60) // per_column] += point.reads
    peak = max(columns) or 1
    levels = [round(c / peak * height * (len(BLOCKS) - 1)) for c in columns]
    lines = []
    for row in range(height - 1, -1, -1):
        floor = row * (len(BLOCKS) - 1)
        lines.append("".join(BLOCKS[min(len(BLOCKS) - 1, max(0, lv - floor))] for lv in levels))
    chart = Text()
    label = f"{peak:,} reads/{per_column} min" if per_column > 1 else f"{peak:,} reads/min"
    chart.append(label + "\n", style="dim")
    chart.append("\n".join(lines) + "\n", style="cyan")
    chart.append(_axis(first, last, len(columns)), style="dim")
    return chart


def _axis(first: datetime, last: datetime, width: int) -> str:
    start, end = first.strftime("%H:%M"), last.strftime("%H:%M UTC")
    gap = max(1, width - len(start) - len(end))
    return start + " " * gap + end


def render_report(rollup: AlertRollup, console: Console) -> None:
    """Print the summary of one alert (delivered, failed, duration, messages/s, readers,
    forwards, read rate) and its chart of reads over time."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(justify="right")
    failed = _number(rollup.failed)
    if rollup.failed_by_reason:
        reasons = ", ".join(f"{code}: {n:,}" for code, n in sorted(rollup.failed_by_reason.items()))
        failed += f"  ({reasons})"
    rate = f"{rollup.messages_per_second:,.0f}" if rollup.messages_per_second else "-"
    rows = [
        ("status", rollup.status or "-"),
        ("targeted", _number(rollup.targeted)),
        ("delivered", _number(rollup.delivered)),
        ("failed", failed),
        ("duration", _duration(rollup.duration_seconds)),
        ("messages/s", rate),
        ("readers", _number(rollup.readers)),
        ("links opened", _number(rollup.first_readers)),
        ("forwarded readers", f"{rollup.forwarded_readers:,} ({percent(rollup.forward_rate)})"),
        ("taps", _number(rollup.taps)),
        ("read rate", percent(rollup.read_rate)),
    ]
    for channel in rollup.channels:
        name = "KakaoTalk" if channel.channel == "kakao" else "SMS/LMS"
        rows.append(
            (
                f"  by {name}",
                f"{channel.delivered:,} delivered, read rate {percent(channel.read_rate)}",
            )
        )
    if rollup.fallback is not None:
        rows.append(
            (
                "SMS/LMS fallback",
                f"{rollup.fallback.reached:,} of {rollup.fallback.handed_over:,} "
                "KakaoTalk refused were reached",
            )
        )
    for name, value in rows:
        table.add_row(name, value)
    title = f"{rollup.title}  " if rollup.title else ""
    width = max(20, min(console.width, 100) - 4)
    console.print(
        Panel(
            Group(table, Text(), reads_chart(rollup.series, width)),
            title=f"{title}[dim]{rollup.alert_id}[/dim]",
            title_align="left",
            width=width + 4,
        )
    )
