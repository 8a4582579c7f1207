"""docs/benchmarks.md, written from bench/results.json: the machine, the figures issue 7
names, the charts, the ratios, the audience table, each benchmark and the chaos runs.

    .venv/bin/python bench/report.py      # re-render the doc from the last results

`bench/run.py` and `bench/chaos.py` fill results.json (its shape: `_results.py`) and call
`write_report`; the charts are drawn by `_charts.py`. The audience table puts the figures
`<name>_<size>` of `AUDIENCE_COLUMNS` side by side per audience size (with the `scale_*`
figures per size, the table of a national audience), then `AUDIENCE_TOTALS`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from _charts import per_size, write_charts
from _results import DOC, ROOT, flat_figures, latest_chaos, load_results, machine

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


def _number(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.1f}"
    if abs(value) >= 1:
        return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    return f"{value:.4g}"


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
        "broadcaster and its two times averaged; `fanout_cpu_ratio_vs_raw_<size>` is the same "
        "for the CPU seconds each side's process spent, in the same round; "
        "`senders_<n>_vs_1` is the speed-up of n sender "
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
