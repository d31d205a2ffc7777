"""The fine-tuned encoder through TensorFlow vs ONNX Runtime: memory, load time, latency.

    .venv/bin/python -m bench.onnx_encoder_bench [--model DIR] [--messages 200] [--repeat 1]

Builds a `FineTunedEncoder` on the real encoder (`--trainable-layers` top layers copied, random
intent / tag / response heads: speed and memory do not depend on training), saves its weights
and exports it to ONNX float32 and int8 (`custom_components.encoder.onnx_encoder`). Then each
way of serving it is measured in a fresh interpreter of its own, one after the other (never two
at once): `tf` (`FineTunedEncoder.predict`, as the classifier runs it today), `fp32` and
`int8` (`OnnxEncoder.predict`, default session options), and int8 with one option changed:
`int8-arena` (CPU memory arena and memory patterns on), `int8-spin` (idle intra-op threads
spin) and `int8-1thread` (one intra-op thread, not `--threads` / all cores).
Each child imports TensorFlow first (a Rasa process always has), then loads: resident memory
(VmRSS) after imports and after load, load seconds, then one message per call (as a Rasa
server parses) over `--messages` short English and Chinese shop messages (the test stories'
user turns, topped up with NLU examples) after a warm-up of every bucket: p50 / p90 latency.
The outputs are compared: int8 and TensorFlow against ONNX float32.

Not part of CI. On a shared machine, compare the ratios of one run (`--repeat` alternates
the order), not absolute figures.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from bench.common import format_table, percentiles
from bench.cross_validate import language_of
from bench.footprint import ANNOTATION, memory_mib, story_messages

ROOT = Path(__file__).resolve().parent.parent
MODES = ("tf", "fp32", "int8", "int8-arena", "int8-spin", "int8-1thread")
MAX_LENGTH, BUCKETS = 64, (16, 32, 64)  # TransformerIntentClassifier's defaults
SEED = 3


def shop_messages(count: int, seed: int = 0) -> list[str]:
    """`count` distinct short user texts: the test stories' turns, then NLU examples (en + zh)."""
    texts = story_messages()
    examples: list[str] = []
    for path in sorted((ROOT / "data" / "nlu").glob("*/*.yml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for item in data.get("nlu", []):
            for line in str(item.get("examples", "")).splitlines():
                line = line.strip()
                if line.startswith("- "):
                    examples.append(ANNOTATION.sub(r"\1", line[2:]).strip())
    rng = np.random.default_rng(seed)
    pool = [t for t in dict.fromkeys(examples) if t and t not in set(texts)]
    extra = [pool[i] for i in rng.permutation(len(pool))]
    return (texts + extra)[:count]


# ---------------------------------------------------------------------- children


def prepare(model_dir: Path, work: Path, trainable_layers: int, labels: int) -> dict[str, Any]:
    """Random-head encoder -> weights.npz, fp32.onnx, int8.onnx in `work`."""
    from custom_components.encoder.finetune import FineTunedEncoder
    from custom_components.encoder.onnx_encoder import export_onnx
    from custom_components.encoder.runtime import get_runtime

    runtime = get_runtime(model_dir, device="cpu")
    encoder = FineTunedEncoder(
        runtime, trainable_layers, labels, seed=SEED, num_tags=9, num_responses=12
    )
    np.savez(work / "weights.npz", **encoder.get_weights())
    return {
        "fp32": export_onnx(encoder, work / "fp32.onnx", quantize=False),
        "int8": export_onnx(encoder, work / "int8.onnx", quantize=True),
    }


def measure(mode: str, model_dir: Path, work: Path, count: int, threads: int | None) -> dict:
    """Loads one way of serving and times single-message predictions (a fresh interpreter)."""
    import tensorflow as tf  # noqa: F401  (a Rasa process has it imported before any model)

    from custom_components.encoder.finetune import FineTunedEncoder
    from custom_components.encoder.onnx_encoder import OnnxEncoder
    from custom_components.encoder.runtime import get_runtime

    prefix = json.loads((model_dir / "kefu_manifest.json").read_text())["prefix"]
    with np.load(work / "weights.npz") as npz:
        weights = {name: npz[name] for name in npz.files}
    trainable = len({k.split("/")[0] for k in weights if k.startswith("layer_")})
    before = memory_mib()["VmRSS"]
    started = time.perf_counter()
    runtime = get_runtime(model_dir, device="cpu")
    if mode == "tf":
        encoder: Any = FineTunedEncoder(
            runtime, trainable, len(weights["head/bias"]), num_tags=9, num_responses=12
        )
    else:
        path = work / ("fp32.onnx" if mode == "fp32" else "int8.onnx")
        threads = 1 if mode.endswith("1thread") else threads
        arena, spin = mode.endswith("-arena"), mode.endswith("-spin")
        encoder = OnnxEncoder(path, runtime, threads=threads, arena=arena, spin=spin)
    encoder.set_weights(weights)
    load_s = time.perf_counter() - started
    loaded = memory_mib()["VmRSS"]
    encoder.warm_up(BUCKETS, MAX_LENGTH)
    texts = shop_messages(count)
    durations: dict[str, list[float]] = {"en": [], "zh": [], "all": []}
    sentences, logits = [], []
    for text in texts:
        start = time.perf_counter()
        (prediction,) = encoder.predict([prefix + text], MAX_LENGTH, 64, BUCKETS)
        elapsed = time.perf_counter() - start
        durations[language_of(text)].append(elapsed)
        durations["all"].append(elapsed)
        sentences.append(prediction.sentence)
        logits.append(prediction.logits)
    np.savez(work / f"out-{mode}.npz", sentence=np.stack(sentences), logits=np.stack(logits))
    after = memory_mib()
    # Then all messages in batches of 64 (as `rasa test` or a bulk job calls the classifier).
    started = time.perf_counter()
    encoder.predict([prefix + text for text in texts], MAX_LENGTH, 64, BUCKETS)
    batched_s = time.perf_counter() - started
    after_batches = memory_mib()
    return {
        "mode": mode,
        "load_s": load_s,
        "rss_imports_mib": before,
        "rss_loaded_mib": loaded,
        "rss_after_mib": after["VmRSS"],
        "peak_rss_mib": after["VmHWM"],
        "rss_after_batches_mib": after_batches["VmRSS"],
        "batched_messages_per_s": len(texts) / batched_s,
        "tf_model_loaded": runtime.model_loaded,
        "latency": {k: percentiles(v, (50, 90)) for k, v in durations.items()},
    }


def in_child(*args: str) -> dict:
    """Runs this module with `args` in a fresh interpreter; returns its JSON line."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench.onnx_encoder_bench", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=1800,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{args} failed:\n{proc.stderr[-3000:]}")
    return json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])


# ---------------------------------------------------------------------- report


def agreement(work: Path, mode: str, reference: str = "fp32") -> dict[str, float]:
    """Sentence cosine, max |logit diff| and argmax agreement of `mode` against `reference`."""
    with np.load(work / f"out-{mode}.npz") as a, np.load(work / f"out-{reference}.npz") as b:
        sa, sb, la, lb = a["sentence"], b["sentence"], a["logits"], b["logits"]
    cosine = (sa * sb).sum(1) / (np.linalg.norm(sa, axis=1) * np.linalg.norm(sb, axis=1))
    return {
        "cosine_min": float(cosine.min()),
        "cosine_mean": float(cosine.mean()),
        "logit_max_abs_diff": float(np.abs(la - lb).max()),
        "logit_std": float(lb.std()),
        "argmax_agree": float((la.argmax(1) == lb.argmax(1)).mean()),
    }


def report(runs: list[dict], agree: dict[str, dict], exports: dict) -> str:
    """Markdown: one column per mode (medians over repeats), ratios against `tf`."""
    modes = [m for m in MODES if any(r["mode"] == m for r in runs)]

    def median(mode: str, get) -> float:
        return float(np.median([get(r) for r in runs if r["mode"] == mode]))

    rows_spec = [
        ("RSS after imports (MiB)", lambda r: r["rss_imports_mib"], "{:,.0f}"),
        ("RSS after load (MiB)", lambda r: r["rss_loaded_mib"], "{:,.0f}"),
        ("load delta (MiB)", lambda r: r["rss_loaded_mib"] - r["rss_imports_mib"], "{:,.0f}"),
        ("RSS after parsing (MiB)", lambda r: r["rss_after_mib"], "{:,.0f}"),
        ("peak RSS, single messages (MiB)", lambda r: r["peak_rss_mib"], "{:,.0f}"),
        ("RSS after batches of 64 (MiB)", lambda r: r["rss_after_batches_mib"], "{:,.0f}"),
        ("batched messages / s", lambda r: r["batched_messages_per_s"], "{:,.0f}"),
        ("load (s)", lambda r: r["load_s"], "{:.2f}"),
        ("p50 all (ms)", lambda r: r["latency"]["all"]["p50_ms"], "{:.2f}"),
        ("p90 all (ms)", lambda r: r["latency"]["all"]["p90_ms"], "{:.2f}"),
        ("p50 en (ms)", lambda r: r["latency"]["en"]["p50_ms"], "{:.2f}"),
        ("p50 zh (ms)", lambda r: r["latency"]["zh"]["p50_ms"], "{:.2f}"),
    ]
    rows = []
    for name, get, fmt in rows_spec:
        values = {m: median(m, get) for m in modes}
        cells = [fmt.format(values[m]) for m in modes]
        if "tf" in values and values["tf"]:
            cells += [f"{values[m] / values['tf']:.2f}" for m in modes if m != "tf"]
        rows.append([name, *cells])
    ratio_heads = [f"{m} / tf" for m in modes if m != "tf"] if "tf" in modes else []
    loaded = [str(any(r["tf_model_loaded"] for r in runs if r["mode"] == m)) for m in modes]
    rows.append(["TFBertModel loaded", *loaded, *([""] * len(ratio_heads))])
    main = format_table(["metric", *modes, *ratio_heads], rows)
    agree_rows = [
        [
            f"{mode} vs fp32",
            f"{a['cosine_min']:.5f}",
            f"{a['cosine_mean']:.5f}",
            f"{a['logit_max_abs_diff']:.2e}",
            f"{a['logit_std']:.2e}",
            f"{a['argmax_agree']:.3f}",
        ]
        for mode, a in agree.items()
    ]
    agree_table = format_table(
        ["outputs", "cosine min", "cosine mean", "max |Δlogit|", "logit std", "argmax agree"],
        agree_rows,
    )
    files = ", ".join(
        f"{k}.onnx {v['bytes'] / 2**20:,.0f} MiB ({v['seconds']:.0f} s)" for k, v in exports.items()
    )
    return f"{main}\n\n{agree_table}\n\nexported: {files}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=None, help="encoder folder (default: e5)")
    parser.add_argument("--work", type=Path, default=None, help="keep exports here")
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--trainable-layers", type=int, default=4)
    parser.add_argument("--labels", type=int, default=40)
    parser.add_argument("--threads", type=int, default=None, help="ONNX intra-op threads")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--repeat", type=int, default=1, help="rounds, order reversed each")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    from custom_components.encoder.assets import DEFAULT_MODEL, resolve_model_path

    model_dir = Path(resolve_model_path(str(args.model or DEFAULT_MODEL)))
    if args.child == "prepare":
        exports = prepare(model_dir, args.work, args.trainable_layers, args.labels)
        print(json.dumps(exports), flush=True)
        return 0
    if args.child:
        result = measure(args.child, model_dir, args.work, args.messages, args.threads)
        print(json.dumps(result), flush=True)
        return 0

    work = args.work or Path(tempfile.mkdtemp(prefix="kefu-onnx-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    common = ["--model", str(model_dir), "--work", str(work), "--messages", str(args.messages)]
    if args.threads:
        common += ["--threads", str(args.threads)]
    print(f"exporting into {work} …", flush=True)
    exports = in_child(
        "--child",
        "prepare",
        "--trainable-layers",
        str(args.trainable_layers),
        "--labels",
        str(args.labels),
        *common,
    )
    modes = [m for m in args.modes.split(",") if m]
    runs = []
    for round_ in range(args.repeat):
        for mode in modes if round_ % 2 == 0 else modes[::-1]:
            print(f"measuring {mode} …", flush=True)
            runs.append(in_child("--child", mode, *common))
    agree = {m: agreement(work, m) for m in modes if m != "fp32" and "fp32" in modes}
    print()
    print(report(runs, agree, exports))
    (work / "results.json").write_text(json.dumps({"runs": runs, "agreement": agree}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
