"""A trained model's footprint: `Agent.load` time, resident memory, parse latency per language.

    .venv/bin/python -m bench.footprint models/kefu.tar.gz [--reference var/bench/reference.tar.gz]

Each model is measured in a fresh interpreter of its own, one after the other (never two at
once: the figures are for an idle 2-core machine): the seconds `Agent.load` takes; resident
memory (VmRSS) after loading and after parsing, and its peak (VmHWM); and the latency of
`Agent.parse_message` — the whole NLU pipeline of the model's config, as a Rasa server runs it
for each message — over the user messages of `tests/stories` (annotations stripped), split by
language, each message parsed alone, `--rounds` times, after 10 warm-up parses. With
`--reference`, every figure is also given as a ratio against the reference model
(`make bench-footprint` trains `bench/configs/reference.yml`, the pipeline before the
multi-task encoder, on the same data). Writes bench/results/footprint.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from bench.common import format_table, percentiles, write_results
from bench.cross_validate import language_of

ROOT = Path(__file__).resolve().parent.parent
STORIES = ROOT / "tests" / "stories"
# `[words]{"entity": ...}` or `[words](entity)` -> words
ANNOTATION = re.compile(r"\[([^\]]+)\](?:\{[^}]*\}|\([^)]*\))")
WARMUP = 10


def story_messages(folder: Path = STORIES) -> list[str]:
    """The distinct user texts of the test stories, annotations stripped, in file order."""
    texts: list[str] = []
    for path in sorted(folder.glob("*.yml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for story in data.get("stories", []):
            for step in story.get("steps", []):
                text = step.get("user") if isinstance(step, dict) else None
                if isinstance(text, str) and not text.startswith("/"):
                    texts.append(ANNOTATION.sub(r"\1", text).strip())
    return list(dict.fromkeys(t for t in texts if t))


def memory_mib() -> dict[str, float]:
    """This process's resident memory now (VmRSS) and at its peak (VmHWM), in MiB."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields


def measure(model: str, rounds: int) -> dict[str, Any]:
    """Loads `model` and parses the story messages (run in a fresh interpreter)."""
    from rasa.core.agent import Agent

    before = memory_mib()["VmRSS"]
    started = time.perf_counter()
    agent = Agent.load(model)
    load_s = time.perf_counter() - started
    after_load = memory_mib()
    texts = story_messages()

    async def parse_all() -> dict[str, list[float]]:
        for text in texts[:WARMUP]:
            await agent.parse_message(text)
        durations: dict[str, list[float]] = {"en": [], "zh": []}
        for _ in range(rounds):
            for text in texts:
                start = time.perf_counter()
                await agent.parse_message(text)
                durations[language_of(text)].append(time.perf_counter() - start)
        return durations

    durations = asyncio.run(parse_all())
    after_parse = memory_mib()
    return {
        "model": model,
        "load_s": load_s,
        "rss_imports_mib": before,
        "rss_loaded_mib": after_load["VmRSS"],
        "rss_after_parsing_mib": after_parse["VmRSS"],
        "peak_rss_mib": after_parse["VmHWM"],
        "parse": {language: percentiles(d) for language, d in durations.items()},
        "messages": {language: len(d) // rounds for language, d in durations.items()},
    }


def measure_in_child(model: Path, rounds: int) -> dict[str, Any]:
    """`measure` in a fresh interpreter, so one model's memory never counts for another."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench.footprint", "--child", str(model), "--rounds", str(rounds)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=1800,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"measuring {model} failed:\n{proc.stderr[-3000:]}")
    last = [line for line in proc.stdout.splitlines() if line.startswith("{")][-1]
    return json.loads(last)


ROWS = [
    ("`Agent.load` (s)", lambda m: m["load_s"], "{:.1f}"),
    ("RSS after load (MiB)", lambda m: m["rss_loaded_mib"], "{:,.0f}"),
    ("RSS after parsing (MiB)", lambda m: m["rss_after_parsing_mib"], "{:,.0f}"),
    ("peak RSS (MiB)", lambda m: m["peak_rss_mib"], "{:,.0f}"),
    ("parse p50 en (ms)", lambda m: m["parse"]["en"]["p50_ms"], "{:.1f}"),
    ("parse p90 en (ms)", lambda m: m["parse"]["en"]["p90_ms"], "{:.1f}"),
    ("parse p50 zh (ms)", lambda m: m["parse"]["zh"]["p50_ms"], "{:.1f}"),
    ("parse p90 zh (ms)", lambda m: m["parse"]["zh"]["p90_ms"], "{:.1f}"),
]


def table(model: dict[str, Any], reference: dict[str, Any] | None) -> str:
    headers = ["metric", "model"]
    if reference:
        headers += ["reference", "model / reference"]
    rows = []
    for name, value, fmt in ROWS:
        row = [name, fmt.format(value(model))]
        if reference:
            row += [fmt.format(value(reference)), f"{value(model) / value(reference):.2f}"]
        rows.append(row)
    return format_table(headers, rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("model", type=Path, nargs="?", default=ROOT / "models" / "kefu.tar.gz")
    parser.add_argument("--reference", type=Path, default=None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.child, args.rounds)), flush=True)
        return 0

    results = {"model": measure_in_child(args.model, args.rounds)}
    if args.reference:
        results["reference"] = measure_in_child(args.reference, args.rounds)
    command = f"python -m bench.footprint {args.model}" + (
        f" --reference {args.reference}" if args.reference else ""
    )
    messages = results["model"]["messages"]
    text = (
        f"{table(results['model'], results.get('reference'))}\n\n"
        f"{messages['en']} en + {messages['zh']} zh story messages x {args.rounds} rounds, "
        f"each model in its own process; `{command}`"
    )
    write_results("footprint", {"command": command, **results}, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
