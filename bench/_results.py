"""bench/results.json: where it lives (and the doc written from it), its shape, reading and
writing it, the machine the numbers were measured on, and its figures flattened.

`bench/run.py` and `bench/chaos.py` fill results.json, `bench/report.py` writes
docs/benchmarks.md from it; this module owns its shape:

- `figures`: every figure under its stable name (the median over the runs), flat;
- `benchmarks.<script>`: per script its command, runs, and per figure median/min/max/spread
  and every run's value, plus `data`: the non-numeric output (time series) of one run;
- `chaos`: the last full `make chaos` run: the failure scenarios, each with duplicates,
  missing and time to complete; `chaos_short`: the last short one (`--quick`, the size CI
  runs, which `make bench` runs too); the `chaos_*` figures come from the later of the two;
- `machine`, `command`, `quick`, `started_at`, `finished_at`.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results.json"
DOC = ROOT / "docs" / "benchmarks.md"


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
