"""The PNG charts of docs/benchmarks.md, drawn from the figures and series in results.json,
and the points (audience size, value) read from figure names, which the doc's audience table
uses too.

Charts come from figures and series that benchmark scripts print:
`<anything>_seconds_<size>` (size `100k`, `1m`, ...) gives throughput against audience size;
a `series_send_rate` object `{"t_s": [...], "per_s": [...], "limit_per_s": R}` gives send rate
against the provider limit; `series_learned_rate` (the same, with `throttled_per_s` and the
shared bucket's `rate_t_s` / `rate_per_s`) gives the learned rate against the dealer's limit,
429s marked; `series_read_rate` `{"t_s": [...], "read_rate": [...]}` gives the read rate over
time; the `taps` benchmark's `taps_per_s` and `healthz_per_s` (and their `baseline_` twins)
give taps/s against `/healthz`; `<series>_seconds_<size>` with `<series>_peak_rss_mb_<size>`
give seconds and MB against audience size.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from _results import CHAOS_KEYS, DOC, ROOT

CHART_DIR = ROOT / "docs" / "benchmarks"
_SIZE = re.compile(r"^(?P<series>.+)_seconds_(?P<size>\d+(?:\.\d+)?)(?P<unit>[km]?)$")
_UNITS = {"": 1, "k": 1_000, "m": 1_000_000}
_PER_SIZE = re.compile(r"^(?P<name>.+)_(?P<size>\d+(?:\.\d+)?[km]?)$")
# issue 20: a sender's memory stays under this, flat from 1M to 10M subscribers
SENDER_RSS_GOAL_MB = 150


def _sizes(figures: dict[str, float]) -> dict[str, list[tuple[int, float]]]:
    """Throughput (recipients/s) against audience size, per series of `*_seconds_<size>`."""
    series: dict[str, list[tuple[int, float]]] = {}
    for name, seconds in figures.items():
        match = _SIZE.match(name)
        if match is None or seconds <= 0:
            continue
        size = int(float(match["size"]) * _UNITS[match["unit"]])
        series.setdefault(match["series"], []).append((size, size / seconds))
    return {name: sorted(points) for name, points in series.items() if points}


def size_of(suffix: str) -> int:
    """`100k` -> 100000, `2.5m` -> 2500000: an audience size from a figure's suffix."""
    unit = suffix[-1] if suffix[-1] in "km" else ""
    return int(float(suffix.removesuffix(unit)) * _UNITS[unit])


def per_size(figures: dict[str, float], name: str) -> list[tuple[int, float]]:
    """The points (audience size, value) of the figures `<name>_<size>`, by size."""
    points = []
    for figure, value in figures.items():
        match = _PER_SIZE.match(figure)
        if match is not None and match["name"] == name:
            points.append((size_of(match["size"]), value))
    return sorted(points)


def _find_series(results: dict[str, Any], key: str) -> tuple[str, dict[str, Any]] | None:
    """The first benchmark that printed the series `key`."""
    for name, bench in results.get("benchmarks", {}).items():
        value = bench.get("data", {}).get(key)
        if isinstance(value, dict) and value.get("t_s"):
            return name, value
    for chaos_key in CHAOS_KEYS:
        value = ((results.get(chaos_key) or {}).get("data") or {}).get(key)
        if isinstance(value, dict) and value.get("t_s"):
            return chaos_key, value
    return None


def write_charts(results: dict[str, Any], doc: Path = DOC) -> dict[str, str]:
    """Draw the charts the data allows beside `doc`; {title: path relative to the doc}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = doc.parent / CHART_DIR.name
    folder.mkdir(parents=True, exist_ok=True)
    drawn: dict[str, str] = {}

    def save(fig: Any, ax: Any, file: str, title: str, legend: bool = True) -> None:
        ax.grid(True, alpha=0.3)
        if legend:
            ax.legend(fontsize="small")
        path = folder / file
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        drawn[title] = str(path.relative_to(doc.parent))

    sizes = _sizes(results.get("figures", {}))
    if sizes:
        fig, ax = plt.subplots(figsize=(7, 4))
        for name, points in sorted(sizes.items()):
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=name)
        ax.set_xscale("log")
        ax.set_xlabel("subscribers in the audience")
        ax.set_ylabel("recipients accepted per second")
        ax.set_title("Throughput against audience size")
        save(fig, ax, "throughput.png", "Throughput against audience size")

    figures = results.get("figures", {})
    timings = {n: per_size(figures, n) for n in ("fanout_seconds", "scale_seconds")}
    megabytes = {
        n: per_size(figures, n) for n in ("sender_peak_rss_mb", "scale_sender_peak_rss_mb")
    }
    if any(timings.values()) and any(megabytes.values()):
        fig, ax = plt.subplots(figsize=(7, 4))
        labels = {
            "fanout_seconds": "s, fan-out (gateway, --role all)",
            "scale_seconds": "s, planner + 1 sender (scale)",
            "sender_peak_rss_mb": "sender peak MB (sender_memory)",
            "scale_sender_peak_rss_mb": "sender peak MB (scale)",
        }
        for name, points in timings.items():
            if points:
                ax.plot(*zip(*points, strict=True), marker="o", label=labels[name])
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("subscribers in the audience")
        ax.set_ylabel("seconds to the last accepted batch")
        right = ax.twinx()
        for name, points in megabytes.items():
            if points:
                right.plot(
                    *zip(*points, strict=True),
                    marker="s",
                    linestyle="--",
                    label=labels[name],
                    color="tab:red" if name == "sender_peak_rss_mb" else "tab:purple",
                )
        right.axhline(
            SENDER_RSS_GOAL_MB, color="tab:red", linestyle=":", label="goal for the sender's peak"
        )
        right.set_ylabel("sender's peak resident set (MiB)")
        highest = max(v for points in megabytes.values() for _, v in points)
        right.set_ylim(0, max(highest, SENDER_RSS_GOAL_MB) * 1.3)
        handles, names = ax.get_legend_handles_labels()
        more, more_names = right.get_legend_handles_labels()
        ax.legend(handles + more, names + more_names, fontsize="small", loc="upper left")
        ax.set_title("Seconds and MB against audience size")
        save(fig, ax, "audience_size.png", "Seconds and MB against audience size", legend=False)

    found = _find_series(results, "series_send_rate")
    if found:
        source, series = found
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.plot(series["t_s"], series["per_s"], label="messages/s accepted")
        if series.get("limit_per_s"):
            ax.axhline(series["limit_per_s"], color="red", linestyle="--", label="provider limit")
        ax.set_xlabel("seconds since the alert was posted")
        ax.set_ylabel("messages per second")
        ax.set_title(f"Send rate against the provider limit ({source})")
        save(fig, ax, "send_rate.png", "Send rate against the provider limit")

    found = _find_series(results, "series_learned_rate")
    if found:
        source, series = found
        limit = series["limit_per_s"]
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.plot(series["t_s"], series["per_s"], label="messages/s accepted", alpha=0.5)
        ax.plot(series["rate_t_s"], series["rate_per_s"], label="learned rate (shared bucket)")
        ax.axhline(limit, color="red", linestyle="--", label="dealer's limit")
        seconds = zip(series["t_s"], series["throttled_per_s"], strict=True)
        refused = [(t, n) for t, n in seconds if n]
        if refused:
            ax.scatter(
                [t for t, _ in refused],
                [limit * 1.04] * len(refused),
                marker="v",
                color="black",
                label="seconds with 429s (count)",
            )
            for t, n in refused:
                ax.annotate(str(n), (t, limit * 1.07), ha="center", fontsize="x-small")
        ax.set_xlabel("seconds since the first accepted batch")
        ax.set_ylabel("messages per second")
        ax.set_title(f"Learned rate against the dealer's limit ({source})")
        save(fig, ax, "learned_rate.png", "Learned rate against the dealer's limit")

    taps = results.get("benchmarks", {}).get("taps", {}).get("figures", {})
    if "taps_per_s" in taps and "healthz_per_s" in taps:
        fig, ax = plt.subplots(figsize=(7, 4))
        groups = [("", "this code")]
        if "baseline_taps_per_s" in taps:
            baseline = (results["benchmarks"]["taps"].get("data") or {}).get("baseline", "?")
            groups.insert(0, ("baseline_", f"before ({baseline})"))
        width = 0.38
        for index, (prefix, label) in enumerate(groups):
            values = [
                taps[f"{prefix}healthz_per_s"]["median"],
                taps[f"{prefix}taps_per_s"]["median"],
            ]
            bars = ax.bar(
                [n + (index - (len(groups) - 1) / 2) * width for n in range(2)],
                values,
                width,
                label=label,
            )
            ax.bar_label(bars, fmt="{:,.0f}", fontsize="small")
        ax.set_xticks(range(2), ["GET /healthz", "GET /r/{token}"])
        ax.set_ylabel("requests per second (wrk, one gateway worker)")
        ax.set_title("Taps/s against the same gateway's /healthz (taps)")
        save(fig, ax, "taps_vs_healthz.png", "Taps/s against /healthz")

    found = _find_series(results, "series_read_rate")
    if found:
        source, series = found
        fig, ax = plt.subplots(figsize=(7, 4))
        scale = float(series.get("time_scale") or 1.0)
        minutes = [t * scale / 60 for t in series["t_s"]]
        ax.plot(minutes, [100 * r for r in series["read_rate"]], label="read rate")
        ax.set_xlabel(
            "minutes since the first delivery"
            + (f" (simulated, clock x{scale:g})" if scale != 1 else "")
        )
        ax.set_ylabel("readers / delivered (%)")
        ax.set_title(f"Read rate over time ({source})")
        save(fig, ax, "read_rate.png", "Read rate over time", legend=False)
    return drawn
