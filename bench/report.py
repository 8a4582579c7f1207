"""bench/results.json and the docs/benchmarks.md written from it, with its PNG charts.

    .venv/bin/python bench/report.py      # re-render the doc from the last results

`bench/run.py` and `bench/chaos.py` fill results.json; this module owns its shape:

- `figures`: every figure under its stable name (the median over the runs), flat;
- `benchmarks.<script>`: per script its command, runs, and per figure median/min/max/spread
  and every run's value, plus `data`: the non-numeric output (time series) of one run;
- `chaos`: the last full `make chaos` run: the failure scenarios, each with duplicates,
  missing and time to complete; `chaos_short`: the last short one (`--quick`, the size CI
  runs, which `make bench` runs too); the `chaos_*` figures come from the later of the two;
- `machine`, `command`, `quick`, `started_at`, `finished_at`.

Charts come from figures and series that benchmark scripts print:
`<anything>_seconds_<size>` (size `100k`, `1m`, ...) gives throughput against audience size;
a `series_send_rate` object `{"t_s": [...], "per_s": [...], "limit_per_s": R}` gives send rate
against the provider limit; `series_learned_rate` (the same, with `throttled_per_s` and the
shared bucket's `rate_t_s` / `rate_per_s`) gives the learned rate against the dealer's limit,
429s marked; `series_read_rate` `{"t_s": [...], "read_rate": [...]}` gives the read rate over
time; the `taps` benchmark's `taps_per_s` and `healthz_per_s` (and their `baseline_` twins)
give taps/s against `/healthz`; `<series>_seconds_<size>` with `<series>_peak_rss_mb_<size>`
give seconds and MB against audience size, and with the `scale_*` figures per size, the
table of a national audience.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results.json"
DOC = ROOT / "docs" / "benchmarks.md"
CHART_DIR = ROOT / "docs" / "benchmarks"

# the names issue 7 promises; a run that lacks one says so in the doc and fails
REQUIRED_FIGURES: tuple[str, ...] = (
    "fanout_seconds_100k",
    "fanout_seconds_450k",
    "fanout_seconds_1m",
    "fanout_ratio_vs_raw",
    "rate_fidelity",
    "rate_429_share",
    "first_delivery_p50_ms",
    "first_delivery_p99_ms",
    "sender_peak_rss_mb_1m",
    "sender_peak_rss_mb_5m",
    "taps_per_s",
    "tap_p99_ms",
    "analytics_events_per_s",
    "sandbox_recipients_per_s",
    "chaos_duplicates",
    "chaos_missing",
)
_SIZE = re.compile(r"^(?P<series>.+)_seconds_(?P<size>\d+(?:\.\d+)?)(?P<unit>[km]?)$")
_UNITS = {"": 1, "k": 1_000, "m": 1_000_000}
_PER_SIZE = re.compile(r"^(?P<name>.+)_(?P<size>\d+(?:\.\d+)?[km]?)$")
# per audience size: (figure name without its size suffix, column heading)
AUDIENCE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("fanout_seconds", "fan-out s (gateway, `--role all`)"),
    ("scale_seconds", "s (planner + 1 sender)"),
    ("scale_first_batch_s", "s to first batch"),
    ("scale_cpu_s_per_100k", "broadcaster CPU s / 100k"),
    ("scale_pg_cpu_s_per_100k", "PostgreSQL CPU s / 100k"),
    ("sender_peak_rss_mb", "sender peak MB (sender_memory)"),
    ("scale_sender_peak_rss_mb", "sender peak MB (scale)"),
    ("import_rows_per_s", "`allim import` rows/s"),
)
# issue 20: a sender's memory stays under this, flat from 1M to 10M subscribers
SENDER_RSS_GOAL_MB = 150
# figures of the national audience that are not per size
AUDIENCE_TOTALS: tuple[str, ...] = (
    "pg_subscribers_mb_per_1m",
    "pg_imported_subscribers_mb_per_1m",
    "pg_subscribers_table_mb",
    "pg_subscribers_indexes_mb",
    "pg_subscribers_rows",
    "pg_recipients_sent",
    "pg_batches_rows",
    "pg_batches_mb",
    "pg_batches_mb_per_1m_sent",
    "pg_shards_rows",
    "pg_shards_mb",
    "pg_shards_mb_per_1m_sent",
)


def utc_now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def loads(text: str) -> Any:
    """Parse JSON."""
    return json.loads(text)


def dumps(value: Any) -> str:
    """One-line JSON."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def load_results(path: Path = RESULTS) -> dict[str, Any]:
    """The last results, or an empty skeleton."""
    if not path.exists():
        return {"benchmarks": {}, "figures": {}}
    value = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(value, dict):
        raise SystemExit(f"Results file '{path}' does not hold a JSON object.")
    return value


def save_results(results: dict[str, Any], path: Path = RESULTS) -> None:
    """Write the results (atomically: a reader never sees half a file)."""
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2, ensure_ascii=False, sort_keys=True) + "\n")
    tmp.replace(path)


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = "unknown"
    memory_mb = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_mb = int(line.split()[1]) // 1024
                break
    except OSError:
        pass
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "nproc": os.cpu_count(),
        "memory_mb": memory_mb,
        "cpu": cpu,
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
        "commit": commit or "unknown",
    }


def flat_figures(results: dict[str, Any]) -> dict[str, float]:
    """Every figure under its stable name: benchmark medians, then the chaos totals."""
    figures: dict[str, float] = {}
    for bench in results.get("benchmarks", {}).values():
        for name, stats in bench.get("figures", {}).items():
            figures[name] = stats["median"]
    for name, value in (latest_chaos(results).get("figures") or {}).items():
        figures[name] = value
    return dict(sorted(figures.items()))


CHAOS_KEYS = ("chaos", "chaos_short")


def latest_chaos(results: dict[str, Any]) -> dict[str, Any]:
    """The chaos run (full or short) that finished last, or {}."""
    runs = [results[key] for key in CHAOS_KEYS if results.get(key)]
    return max(runs, key=lambda run: str(run.get("finished_at", "")), default={})


def _number(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.1f}"
    if abs(value) >= 1:
        return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    return f"{value:.4g}"


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


def _machine_section(results: dict[str, Any]) -> list[str]:
    m = results.get("machine") or machine()
    memory = f"{m['memory_mb'] / 1024:.1f} GiB" if m.get("memory_mb") else "unknown"
    return [
        "## Machine",
        "",
        "| nproc | memory | CPU | Python | system | commit |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| {m.get('nproc')} | {memory} | {m.get('cpu')} | {m.get('python')} "
        f"| {m.get('system')} | `{m.get('commit')}` |",
        "",
    ]


def _headline(results: dict[str, Any]) -> list[str]:
    figures = results.get("figures", {})
    where = {
        name: script
        for script, bench in results.get("benchmarks", {}).items()
        for name in bench.get("figures", {})
    }
    lines = [
        "## The figures issue 7 names",
        "",
        "| figure | value | from |",
        "| --- | --- | --- |",
    ]
    for name in REQUIRED_FIGURES:
        if name in figures:
            source = where.get(name, "chaos" if name.startswith("chaos_") else "")
            lines.append(f"| `{name}` | {_number(figures[name])} | {source} |")
        else:
            lines.append(f"| `{name}` | **not measured**: {_why_missing(results, name)} | |")
    return [*lines, ""]


def _ratios(results: dict[str, Any]) -> list[str]:
    """Figures that compare two things measured side by side within one run."""
    rows = [
        f"| `{name}` | {_number(stats['median'])} | {script} |"
        for script, bench in sorted(results.get("benchmarks", {}).items())
        for name, stats in sorted(bench.get("figures", {}).items())
        if "ratio" in name or "_vs_" in name
    ]
    if not rows:
        return []
    return [
        "## Ratios measured side by side",
        "",
        "Each ratio compares two measurements taken in the same run of one benchmark, one "
        "right after the other on the same stack (so they share the machine's state): "
        "`fanout_ratio_vs_raw` is the raw posting loop's time over the broadcaster's for the "
        "same subscribers and sandbox, the raw loop timed right before and right after the "
        "broadcaster and its two times averaged; `senders_<n>_vs_1` is the speed-up of n sender "
        "processes over one on the same broadcast; `taps_vs_healthz` is taps/s over the same "
        "gateway's `/healthz`/s, both driven by wrk; `taps_vs_baseline` and "
        "`tap_cpu_vs_baseline` compare taps/s and CPU per tap with a gateway of an earlier "
        "revision (`ALLIM_BENCH_TAPS_BASELINE`) measured just before on the same stack.",
        "",
        "| ratio | median | from |",
        "| --- | --- | --- |",
        *rows,
        "",
    ]


def _audience(results: dict[str, Any]) -> list[str]:
    """The cost of each audience size, side by side, and what the database holds for it."""
    figures = results.get("figures", {})
    columns = [(name, title, dict(per_size(figures, name))) for name, title in AUDIENCE_COLUMNS]
    sizes = sorted({size for _, _, values in columns for size in values})
    if len(sizes) < 2:
        return []
    columns = [column for column in columns if column[2]]
    lines = [
        "## Audience size",
        "",
        "How cost grows with the audience, from the `fanout`, `scale` and `sender_memory` "
        "benchmarks (each its own run and database, so a row mixes measurements made "
        "minutes apart on the same machine). CPU seconds are user + system time from /proc "
        "per 100,000 recipients; the sender's peak is its `VmHWM`, the most it held so far "
        "in that run; MB are MiB.",
        "",
        "| subscribers | " + " | ".join(title for _, title, _ in columns) + " |",
        "| --- |" + " --- |" * len(columns),
    ]
    for size in sizes:
        cells = [_number(values[size]) if size in values else "" for _, _, values in columns]
        lines.append(f"| {size:,} | " + " | ".join(cells) + " |")
    totals = [name for name in AUDIENCE_TOTALS if name in figures]
    if totals:
        lines += [
            "",
            "PostgreSQL on disk (`pg_total_relation_size`, MiB; `scale`'s database after its "
            "largest send, subscribers loaded by COPY without district or tags; "
            "`pg_imported_subscribers_mb_per_1m` from the `allim import` of a CSV with them):",
            "",
            "| figure | value |",
            "| --- | --- |",
            *(f"| `{name}` | {_number(figures[name])} |" for name in totals),
        ]
    return [*lines, ""]


def _why_missing(results: dict[str, Any], figure: str) -> str:
    """Why a named figure is missing: its benchmark failed, did not run, or left it out."""
    stem = figure.split("_")[0]
    if stem == "chaos":
        return str(latest_chaos(results).get("error") or "no chaos run recorded")
    for script, bench in sorted(results.get("benchmarks", {}).items()):
        if script.split("_")[0] == stem:
            if bench.get("errors"):
                return f"`{script}` failed ({bench['errors'][0]})"
            return f"`{script}` ran but did not print it (in this mode)"
    return "no benchmark prints it"


def _bench_sections(results: dict[str, Any]) -> list[str]:
    lines = [
        "## Each benchmark",
        "",
        "Median, min and max over the runs; spread = (max - min) / median. Figures whose "
        "name holds `ratio` (or `_vs_`) compare two things measured side by side in the "
        "same run, against the same stack.",
        "",
    ]
    for name, bench in sorted(results.get("benchmarks", {}).items()):
        lines += [
            f"### {name}",
            "",
            f"`.venv/bin/python {bench['command']}`: {bench['succeeded']} of "
            f"{bench['runs']} runs succeeded, wall time per run "
            f"{', '.join(f'{s:g} s' for s in bench['seconds'])}."
            + (
                f" Measured by `{bench['by']}`, finished {bench['finished_at']}"
                f" at commit `{bench.get('commit') or '?'}`."
                if bench.get("by")
                else " Measured before runs were dated (see `Last run` above for the latest)."
            ),
            "",
        ]
        for error in bench.get("errors", []):
            lines += [f"- failed: {error}", ""]
        if bench["figures"]:
            lines += ["| figure | median | min | max | spread |", "| --- | --- | --- | --- | --- |"]
            for figure, stats in sorted(bench["figures"].items()):
                lines.append(
                    f"| `{figure}` | {_number(stats['median'])} | {_number(stats['min'])} "
                    f"| {_number(stats['max'])} | {100 * stats['spread']:.1f}% |"
                )
            lines.append("")
    return lines


def _chaos_table(chaos: dict[str, Any]) -> list[str]:
    if not chaos.get("scenarios"):
        error = chaos.get("error")
        return [f"`{chaos.get('command', 'chaos')}` recorded no scenario ({error}).", ""]
    lines = [
        f"`{chaos['command']}`, finished {chaos.get('finished_at', '?')}: a broadcast to "
        f"{chaos['audience']:,} active subscribers per scenario, {chaos.get('senders', '?')} "
        f"sender processes, the provider's limit {chaos.get('rate_per_s', 0):,.0f} messages/s"
        + (
            f", ALLIM_BROADCASTER_STALL_SECONDS={chaos['broadcaster_stall_seconds']:g}. "
            if chaos.get("broadcaster_stall_seconds")
            else ". "
        )
        + (
            f"The clean run, with no failure, took {chaos['clean_seconds']:.1f} s."
            if chaos.get("clean_seconds") is not None
            else "The clean run did not complete."
        ),
        "",
        "| scenario | what happened | duplicates | missing | time to complete | vs clean "
        "| result |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for s in chaos["scenarios"]:
        seconds = f"{s['seconds']:.1f} s" if s.get("seconds") is not None else "-"
        ratio = f"{s['vs_clean']:.2f}x" if s.get("vs_clean") is not None else "-"
        missing = "n/a" if s["missing"] is None else f"{s['missing']:,}"
        verdict = "survived" if s["ok"] else f"**FAILED** {s.get('error') or ''}".strip()
        happened = s["description"] + "".join(f"; {note}" for note in s.get("notes") or [])
        lines.append(
            f"| {s['name']} | {happened} | {s['duplicates']:,} | {missing} "
            f"| {seconds} | {ratio} | {verdict} |"
        )
    return [*lines, ""]


def _chaos_section(results: dict[str, Any]) -> list[str]:
    lines = [
        "## Failures survived",
        "",
        "Duplicates and missing recipients are counted at the sandbox's ledger: a duplicate "
        "is a recipient accepted more than once, missing is an active subscriber in "
        "PostgreSQL that the ledger never accepted. Time to complete runs from the POST to "
        "the alert's end, against the clean run of the same session.",
        "",
    ]
    full, short = results.get("chaos"), results.get("chaos_short")
    if not full and not short:
        return [*lines, "No chaos run recorded yet: `make chaos`.", ""]
    if full:
        lines += ["### `make chaos`", "", *_chaos_table(full)]
    if short:
        lines += ["### The short run (`make bench`, and CI's size)", "", *_chaos_table(short)]
    return lines


def write_report(results: dict[str, Any], path: Path = DOC) -> None:
    """Rewrite docs/benchmarks.md (and its charts) from `results`."""
    charts = write_charts(results, path)
    command = results.get("command", "make bench")
    kind = "short (`--quick`)" if results.get("quick") else "full"
    lines = [
        "# Benchmarks",
        "",
        "Written by `bench/report.py` from `bench/results.json`; do not edit by hand.",
        "Reproduce with `make bench` (or `make bench QUICK=1`, under 10 minutes) and "
        "`make chaos`; both start the local stack under `.local/bench` first.",
        "",
        f"Last run: `{command}`, {kind}, from {results.get('started_at', '?')} to "
        f"{results.get('finished_at', '?')}.",
        "",
        *_machine_section(results),
        *_headline(results),
        "## Charts",
        "",
    ]
    if charts:
        for title, rel in charts.items():
            lines += [f"### {title}", "", f"![{title}]({rel})", ""]
    else:
        lines += ["No benchmark printed the figures or series the charts need yet.", ""]
    missing = {
        "Throughput against audience size",
        "Seconds and MB against audience size",
        "Send rate against the provider limit",
        "Learned rate against the dealer's limit",
        "Read rate over time",
        "Taps/s against /healthz",
    } - set(charts)
    for title in sorted(missing):
        lines += [f"- {title}: not drawn, no benchmark printed its data in this run.", ""]
    lines += _ratios(results)
    lines += _audience(results)
    lines += _bench_sections(results)
    lines += _chaos_section(results)
    path.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")


def main() -> int:
    """Re-render the doc from bench/results.json."""
    results = load_results()
    results["figures"] = flat_figures(results)
    write_report(results)
    print(f"wrote {DOC.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
