"""Shared benchmark helpers: timing, percentiles, peak memory, JSON + table output.

Every benchmark writes `bench/results/<name>.json` (machine-readable, with the environment) and
`bench/results/<name>.md` (the same figures as a table), and prints the table.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def percentiles(samples_s: Sequence[float], points: Iterable[int] = (50, 90, 99)) -> dict:
    """Summary of durations in seconds, reported in milliseconds (nearest-rank percentiles)."""
    ordered = sorted(samples_s)
    if not ordered:
        return {"n": 0}
    summary: dict[str, float] = {"n": len(ordered)}
    for p in points:
        rank = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
        summary[f"p{p}_ms"] = ordered[rank] * 1e3
    summary["mean_ms"] = statistics.fmean(ordered) * 1e3
    summary["max_ms"] = ordered[-1] * 1e3
    return summary


def time_each(fn: Callable[[Any], Any], items: Iterable[Any]) -> list[float]:
    """Calls `fn(item)` for every item; returns the duration of each call in seconds."""
    durations = []
    for item in items:
        start = time.perf_counter()
        fn(item)
        durations.append(time.perf_counter() - start)
    return durations


def throughput(fn: Callable[[], Any], n_items: int) -> dict:
    """Runs `fn` once; returns items per second and the wall time."""
    start = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - start
    return {"items": n_items, "seconds": elapsed, "per_second": n_items / elapsed}


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_peak_code() -> str:
    """Python source printing this interpreter's peak RSS (VmHWM) as `PEAK_RSS_KB <kib>`."""
    return (
        "from pathlib import Path\n"
        "hwm = [l for l in Path('/proc/self/status').read_text().splitlines()"
        " if l.startswith('VmHWM')][0].split()[1]\n"
        "print('PEAK_RSS_KB', hwm)\n"
    )


def run_python_for_peak_rss(code: str, env: dict | None = None, timeout: int = 600) -> dict:
    """Runs `code` in a fresh interpreter; returns its peak RSS (MiB) and last stdout line.

    A separate process keeps the measurement free of whatever the benchmark itself loaded.
    """
    # VmHWM, not getrusage: ru_maxrss survives fork+exec and would report the parent's peak.
    wrapped = code + "\n" + child_peak_code()
    proc = subprocess.run(
        [sys.executable, "-c", wrapped],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=Path(__file__).resolve().parents[1],
    )
    if proc.returncode != 0:
        raise RuntimeError(f"memory probe failed:\n{proc.stderr[-3000:]}")
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    peak = next(line for line in reversed(lines) if line.startswith("PEAK_RSS_KB"))
    return {"peak_rss_mb": int(peak.split()[1]) / 1024, "stdout_tail": lines[-2:]}


def environment() -> dict:
    """What the figures were measured on."""
    info = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor() or _cpu_model(),
        "cpus": os.cpu_count(),
        "load_avg_1m": os.getloadavg()[0],
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    try:
        import tensorflow as tf

        info["tensorflow"] = tf.__version__
        info["gpus"] = [d.name for d in tf.config.list_physical_devices("GPU")]
    except ImportError:
        pass
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table; floats get 2 decimals (or 3 significant if small)."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.3g}" if abs(value) < 1 else f"{value:,.2f}"
        return str(value)

    text_rows = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in text_rows)) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(list(headers)), sep, *(line(r) for r in text_rows)])


def write_results(name: str, results: dict, table: str, results_dir: Path = RESULTS_DIR) -> Path:
    """Writes `<name>.json` (results + environment) and `<name>.md`; prints the table."""
    results_dir.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name, "environment": environment(), **results}
    json_path = results_dir / f"{name}.json"
    json_path.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    (results_dir / f"{name}.md").write_text(f"# {name}\n\n{table}\n", encoding="utf-8")
    print(table)
    print(f"\nwritten: {json_path} and {json_path.with_suffix('.md')}")
    return json_path
