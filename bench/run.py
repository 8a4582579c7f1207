"""`make bench`: run every benchmark in bench/ several times, keep every figure, write the report.

    .venv/bin/python bench/run.py [--quick] [--runs N] [--only NAME ...]

Each `bench/<name>.py` (not the `_helpers`, not the runners) runs as a child process with
`--quick` when asked; its last stdout line is one JSON object of figures. Numbers are kept
per run and summarised (median, min, max); lists and objects (time series for the charts)
are kept from the run closest to the median. The short chaos run (`chaos.py --quick`) adds
`chaos_duplicates` and `chaos_missing`. Everything lands in bench/results.json, then
bench/report.py rewrites docs/benchmarks.md and its charts.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _results
import report

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
LOG_DIR = ROOT / ".local" / "bench-logs"
# scripts in bench/ that are not benchmarks
RUNNERS = frozenset({"run", "chaos", "report"})


def benchmark_scripts(only: list[str] | None = None) -> list[Path]:
    """Every benchmark script, sorted by name; `only` keeps the named ones."""
    scripts = [
        path
        for path in sorted(BENCH_DIR.glob("*.py"))
        if not path.stem.startswith("_") and path.stem not in RUNNERS
    ]
    if only:
        unknown = set(only) - {path.stem for path in scripts}
        if unknown:
            raise SystemExit(f"No benchmark named {', '.join(sorted(unknown))} in {BENCH_DIR}.")
        scripts = [path for path in scripts if path.stem in only]
    return scripts


def last_json_line(stdout: str) -> dict[str, Any]:
    """The JSON object on the last non-empty line of `stdout`; ValueError when there is none."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        raise ValueError("printed nothing on stdout")
    value = _results.loads(lines[-1])
    if not isinstance(value, dict):
        raise ValueError(f"last stdout line is not a JSON object: {lines[-1][:200]!r}")
    return value


@dataclass
class RunOutcome:
    """One run of one script."""

    seconds: float
    figures: dict[str, Any] | None
    error: str | None = None


@dataclass
class ScriptResult:
    """Every run of one script, summarised."""

    name: str
    command: str
    runs: list[RunOutcome] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The script's entry in results.json."""
        good = [run.figures for run in self.runs if run.figures is not None]
        numbers: dict[str, list[float]] = {}
        for figures in good:
            for name, value in figures.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    numbers.setdefault(name, []).append(float(value))
        stats = {name: summarise(values) for name, values in numbers.items()}
        extra: dict[str, Any] = {}
        if good:
            pick = good[_median_index(good, numbers)]
            extra = {k: v for k, v in pick.items() if k not in numbers}
        return {
            "command": self.command,
            "runs": len(self.runs),
            "succeeded": len(good),
            "seconds": [round(run.seconds, 1) for run in self.runs],
            "errors": [run.error for run in self.runs if run.error],
            "figures": stats,
            "data": extra,
        }


def summarise(values: list[float]) -> dict[str, Any]:
    """Median, min, max and the spread ((max - min) / median) of one figure's runs."""
    median = statistics.median(values)
    low, high = min(values), max(values)
    spread = (high - low) / abs(median) if median else 0.0
    return {
        "median": median,
        "min": low,
        "max": high,
        "spread": round(spread, 4),
        "values": values,
    }


def _median_index(runs: list[dict[str, Any]], numbers: dict[str, list[float]]) -> int:
    """The run whose first figure is closest to that figure's median (for its series)."""
    if not numbers or len(runs) < 3:
        return len(runs) - 1
    name, values = next(iter(numbers.items()))
    median = statistics.median(values)
    distances = [abs(float(run.get(name, median)) - median) for run in runs]
    return distances.index(min(distances))


def run_script(script: Path, args: list[str], timeout: float, log: Path) -> RunOutcome:
    """Run one script once; its stderr goes to `log`, its stdout is parsed.

    Past `timeout` the script gets SIGINT, so that its `finally` blocks stop the services it
    started (they run in sessions of their own), and SIGKILL a minute later.
    """
    started = time.monotonic()
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as err:
        process = subprocess.Popen(
            [sys.executable, str(script), *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=err,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        try:
            stdout, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGINT)
            try:
                stdout, _ = process.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                stdout, _ = process.communicate()
            err.write("\n--- stdout ---\n" + stdout)
            return RunOutcome(time.monotonic() - started, None, f"timed out after {timeout} s")
        err.write("\n--- stdout ---\n" + stdout)
    seconds = time.monotonic() - started
    if process.returncode != 0:
        return RunOutcome(
            seconds, None, f"exit status {process.returncode}; log {log.relative_to(ROOT)}"
        )
    try:
        return RunOutcome(seconds, last_json_line(stdout))
    except ValueError as exc:
        return RunOutcome(seconds, None, f"{exc}; log {log.relative_to(ROOT)}")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks, update results.json and the report; non-zero when one failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs (under 10 minutes)")
    parser.add_argument("--runs", type=int, help="runs per benchmark (default 3, quick 1)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run these benchmarks only")
    parser.add_argument("--no-chaos", action="store_true", help="skip the short chaos run")
    parser.add_argument("--command", help="the command to print in the report")
    args = parser.parse_args(argv)
    runs = args.runs or (1 if args.quick else 3)
    if runs < 1:
        raise SystemExit("--runs must be at least 1.")
    timeout = 240.0 if args.quick else 3600.0
    flags = ["--quick"] if args.quick else []
    for name in ("ALLIM_DATABASE_URL", "ALLIM_KAFKA_BOOTSTRAP"):
        if not os.environ.get(name):
            raise SystemExit(f"Environment variable '{name}' is missing: run `make bench`.")

    results = _results.load_results()
    results["benchmarks"] = {} if not args.only else results.get("benchmarks", {})
    results["machine"] = _results.machine()
    results["command"] = args.command or shlex.join(["python", "bench/run.py", *sys.argv[1:]])
    results["quick"] = args.quick
    results["started_at"] = _results.utc_now()
    failed: list[str] = []
    for script in benchmark_scripts(args.only):
        result = ScriptResult(script.stem, shlex.join([f"bench/{script.name}", *flags]))
        for index in range(runs):
            log = LOG_DIR / f"{script.stem}-{index + 1}.log"
            print(f"bench: {script.stem} run {index + 1}/{runs} ...", file=sys.stderr, flush=True)
            outcome = run_script(script, flags, timeout, log)
            result.runs.append(outcome)
            state = outcome.error or "ok"
            print(f"bench: {script.stem} {outcome.seconds:.1f} s: {state}", file=sys.stderr)
            if outcome.error:
                break
        summary = result.summary()
        # a run with --only keeps the other benchmarks' entries: each says when, from which
        # commit and by which command it was measured
        summary["finished_at"] = _results.utc_now()
        summary["commit"] = results["machine"].get("commit")
        summary["by"] = results["command"]
        results["benchmarks"][script.stem] = summary
        if summary["errors"]:
            failed.append(script.stem)
        _results.save_results(results)

    if not args.no_chaos and not args.only:
        chaos_args = ["--quick"]
        print("bench: short chaos run ...", file=sys.stderr, flush=True)
        outcome = run_script(BENCH_DIR / "chaos.py", chaos_args, timeout * 2, LOG_DIR / "chaos.log")
        if outcome.error:
            failed.append("chaos")
        # chaos.py wrote its own sections of results.json; keep them
        written = _results.load_results()
        for key in _results.CHAOS_KEYS:
            if key in written:
                results[key] = written[key]
        if outcome.error:
            results.setdefault("chaos_short", {})["error"] = outcome.error

    results["figures"] = _results.flat_figures(results)
    results["finished_at"] = _results.utc_now()
    _results.save_results(results)
    report.write_report(results)
    print(_results.dumps(results["figures"]))
    missing = [name for name in report.REQUIRED_FIGURES if name not in results["figures"]]
    if missing:
        print(f"bench: figures missing: {', '.join(missing)}", file=sys.stderr)
    if failed:
        print(f"bench: failed: {', '.join(failed)} (logs in {LOG_DIR})", file=sys.stderr)
    return 1 if failed or missing else 0


if __name__ == "__main__":
    sys.exit(main())
