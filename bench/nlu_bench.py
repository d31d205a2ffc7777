"""NLU accuracy with out-of-scope detection: our classifier vs DIET on our features vs stock.

    .venv/bin/python -m bench.nlu_bench [--train PATH] [--test PATH] [--oos-label oos]
        [--only ours,diet_ours,stock] [--limit-per-intent N] [--tune-fraction 0.1]
        [--target-oos-recall 0.75] [--train-oos-fraction 0]
    .venv/bin/python -m bench.nlu_bench --shop-data data/nlu     # time bench/configs/shop.yml

Data: JSONL, one `{"text", "intent"}` per line (default CLINC150 train -> val from
../shared/datasets/clinc150); rows whose intent is `--oos-label` are out-of-scope.

Protocol (the CLINC150 "oos-threshold" setup):
1. In-scope TRAIN rows are split per intent: `--tune-fraction` goes to a tuning slice, the rest
   trains each pipeline. Out-of-scope train rows join the tuning slice; with
   `--train-oos-fraction F`, that share of them is trained as one more intent instead (the
   `--oos-label` itself, as the shop trains its own `out_of_scope` intent). Nothing of `--test`
   is used before the final evaluation.
2. Each pipeline (a Rasa config in bench/configs/<name>.yml) is trained with Rasa's Python API
   on a temporary NLU YAML, loaded with `Agent.load`, and every tuning and test message is
   parsed one at a time (`Agent.parse_message`, the `rasa run` path), timing each parse.
3. The confidence threshold (what `FallbackClassifier.threshold` would be) is the lowest one
   reaching `--target-oos-recall` on the tuning slice; without out-of-scope tuning rows, the
   one keeping `--keep-in-scope` of the correctly classified in-scope tuning rows.
4. On the test set, a message is out-of-scope when its top intent is the out-of-scope one or
   its top confidence is below the threshold. Reported: in-scope accuracy (right intent and
   not rejected), closed-set accuracy (top intent right, ignoring the threshold), macro-F1
   over the in-scope intents plus out-of-scope, out-of-scope recall and precision, training
   time, parse latency p50 / p99.

Results: bench/results/<name>.{json,md} (after every pipeline, so a cut-off run keeps its rows).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import random
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from custom_components.encoder.device import set_offline_env

set_offline_env()

from bench.common import RESULTS_DIR, format_table, percentiles, write_results  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATASET = REPO.parent / "shared" / "datasets" / "clinc150"
CONFIG_DIR = Path(__file__).resolve().parent / "configs"
PIPELINES = {
    "ours": "(a) TransformerIntentClassifier (fine-tuned e5-small)",
    "diet_ours": "(b) TransformerFeaturizer + DIET",
    "stock": "(c) stock Rasa: CountVectors + DIET",
}
logger = logging.getLogger("bench.nlu_bench")


# --------------------------------------------------------------------------- data


def load_jsonl(
    path: Path, limit_per_intent: int | None = None, unlimited: str | None = None
) -> list[dict[str, str]]:
    """Reads `{"text", "intent"}` rows, keeping the first `limit_per_intent` of each intent.

    Rows of the `unlimited` intent (out-of-scope) are all kept: subsampled runs still measure
    out-of-scope detection on every out-of-scope row.
    """
    rows, seen = [], Counter()
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            if not isinstance(row.get("text"), str) or not isinstance(row.get("intent"), str):
                raise ValueError(f"{path}:{number}: expected {{'text': str, 'intent': str}}")
            limited = limit_per_intent and row["intent"] != unlimited
            if limited and seen[row["intent"]] >= limit_per_intent:
                continue
            seen[row["intent"]] += 1
            rows.append({"text": row["text"], "intent": row["intent"]})
    return rows


def split_train(
    rows: list[dict[str, str]],
    oos_label: str,
    tune_fraction: float,
    seed: int,
    train_oos_fraction: float = 0.0,
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(fit rows, tuning rows).

    Each in-scope intent gives `tune_fraction` of its rows to tuning; `train_oos_fraction` of
    the out-of-scope rows (shuffled) is trained on, the rest tune.
    """
    rng = random.Random(seed)
    by_intent: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        by_intent[row["intent"]].append(row)
    oos = by_intent.pop(oos_label, [])
    fit: list[dict[str, str]] = []
    tune: list[dict[str, str]] = []
    for _intent, examples in sorted(by_intent.items()):
        examples = examples[:]
        rng.shuffle(examples)
        n_tune = int(len(examples) * tune_fraction) if len(examples) > 1 else 0
        tune += examples[:n_tune]
        fit += examples[n_tune:]
    # After the in-scope split, so the in-scope tuning slice does not depend on this share.
    rng.shuffle(oos)
    n_train_oos = int(len(oos) * train_oos_fraction)
    return fit + oos[:n_train_oos], tune + oos[n_train_oos:]


def write_nlu_yaml(rows: list[dict[str, str]], path: Path) -> Path:
    """Rasa NLU training data (YAML) for the rows; texts JSON-quoted so nothing is parsed."""
    by_intent: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        by_intent[row["intent"]].append(row["text"])
    lines = ['version: "3.1"', "nlu:"]
    for intent, texts in by_intent.items():
        lines += [f"- intent: {intent}", "  examples: |"]
        lines += [f"    - {' '.join(text.split())}" for text in texts if text.strip()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --------------------------------------------------------------------------- metrics


def pick_threshold(
    tune: list[tuple[str, str, float]],
    oos_label: str,
    target_oos_recall: float,
    keep_in_scope: float,
) -> tuple[float, str]:
    """The fallback threshold chosen on the tuning slice, and how it was chosen.

    Args:
        tune: (gold intent, predicted intent, confidence) per tuning message.
    """
    oos = sorted(conf for gold, _, conf in tune if gold == oos_label)
    if oos:
        # Lowest threshold rejecting `target` of out-of-scope rows: keeps most in-scope.
        k = min(len(oos) - 1, max(0, math.ceil(target_oos_recall * len(oos)) - 1))
        threshold = oos[k] + 1e-9
        return threshold, f"lowest reaching out-of-scope recall {target_oos_recall} on tuning"
    correct = sorted(conf for gold, pred, conf in tune if gold == pred)
    if not correct:
        return 0.0, "no correct tuning predictions"
    k = int((1 - keep_in_scope) * len(correct))
    return correct[k], f"keeps {keep_in_scope} of correct in-scope tuning predictions"


def evaluate(
    results: list[tuple[str, str, float]], oos_label: str, threshold: float
) -> dict[str, float]:
    """Accuracy / F1 / out-of-scope figures for (gold, predicted, confidence) triples."""
    from sklearn.metrics import f1_score

    gold = [g for g, _, _ in results]
    final = [p if c >= threshold else oos_label for _, p, c in results]
    in_scope = [i for i, g in enumerate(gold) if g != oos_label]
    oos = [i for i, g in enumerate(gold) if g == oos_label]
    predicted_oos = [i for i, p in enumerate(final) if p == oos_label]
    labels = sorted(set(gold) | {oos_label})
    ratio = lambda n, d: n / d if d else float("nan")  # noqa: E731
    ece = calibration_error([results[i] for i in in_scope])
    return {
        "in_scope_accuracy": ratio(sum(final[i] == gold[i] for i in in_scope), len(in_scope)),
        "closed_set_accuracy": ratio(
            sum(results[i][1] == gold[i] for i in in_scope), len(in_scope)
        ),
        "macro_f1": float(f1_score(gold, final, labels=labels, average="macro", zero_division=0)),
        "oos_recall": ratio(sum(final[i] == oos_label for i in oos), len(oos)),
        "oos_precision": ratio(
            sum(gold[i] == oos_label for i in predicted_oos), len(predicted_oos)
        ),
        "in_scope_ece": ece,
        "in_scope_messages": len(in_scope),
        "oos_messages": len(oos),
    }


def calibration_error(results: list[tuple[str, str, float]], bins: int = 15) -> float:
    """ECE of the top confidence on in-scope messages (|accuracy - confidence| per bin)."""
    if not results:
        return float("nan")
    ece = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        cell = [(g == p, c) for g, p, c in results if lo < c <= hi or (b == 0 and c == 0)]
        if cell:
            accuracy = sum(ok for ok, _ in cell) / len(cell)
            confidence = sum(c for _, c in cell) / len(cell)
            ece += len(cell) / len(results) * abs(accuracy - confidence)
    return ece


def classifier_metrics(model: str) -> dict[str, Any]:
    """The held-out metrics our classifier stored in the model archive (empty for others)."""
    import tarfile

    with tarfile.open(model) as archive:
        for member in archive.getmembers():
            if member.name.endswith("transformer_intent_classifier.json"):
                meta = json.load(archive.extractfile(member))  # type: ignore[arg-type]
                return {"temperature": meta.get("temperature"), **meta.get("metrics", {})}
    return {}


# --------------------------------------------------------------------------- pipelines


def train(config: Path, nlu: Path, out: Path, name: str) -> tuple[str, float]:
    """Trains an NLU-only Rasa model; returns its path and the wall time."""
    from rasa.model_training import train_nlu

    start = time.perf_counter()
    model = train_nlu(str(config), str(nlu), str(out), fixed_model_name=name)
    if not model:
        raise RuntimeError(f"rasa train_nlu produced no model for {config}")
    return model, time.perf_counter() - start


def parse_all(model: str, texts: list[str], warmup: int = 20) -> tuple[list[dict], list[float]]:
    """Parses each text alone through `Agent.parse_message`; returns parses and durations."""
    from rasa.core.agent import Agent

    agent = Agent.load(model)

    async def run() -> tuple[list[dict], list[float]]:
        for text in texts[:warmup]:
            await agent.parse_message(text)
        parses, durations = [], []
        for text in texts:
            start = time.perf_counter()
            parses.append(await agent.parse_message(text))
            durations.append(time.perf_counter() - start)
        return parses, durations

    return asyncio.run(run())


def top(parse: dict, oos_label: str) -> tuple[str, float]:
    """(top intent, its confidence); a trained out-of-scope intent scores 0, so any
    threshold rejects it (the fallback need not fire for a message already out of scope)."""
    intent = parse.get("intent") or {}
    name = str(intent.get("name"))
    return name, 0.0 if name == oos_label else float(intent.get("confidence") or 0.0)


def run_pipeline(
    name: str,
    nlu: Path,
    tmp: Path,
    tune_rows: list[dict[str, str]],
    test_rows: list[dict[str, str]],
    args: argparse.Namespace,
) -> dict[str, Any]:
    from custom_components.encoder.runtime import clear_runtimes

    config = args.config_dir / f"{name}.yml"
    logger.info("training %s (%s)", name, config)
    model, train_seconds = train(config, nlu, tmp / "models", name)
    clear_runtimes()  # Agent.load must load the encoder itself, as `rasa run` does
    texts = [r["text"] for r in tune_rows] + [r["text"] for r in test_rows]
    logger.info("parsing %d messages with %s", len(texts), name)
    parses, durations = parse_all(model, texts)
    predicted = [top(p, args.oos_label) for p in parses]
    n_tune = len(tune_rows)
    tune = [(r["intent"], *predicted[i]) for i, r in enumerate(tune_rows)]
    test = [(r["intent"], *predicted[n_tune + i]) for i, r in enumerate(test_rows)]
    threshold, rule = pick_threshold(
        tune, args.oos_label, args.target_oos_recall, args.keep_in_scope
    )
    # Per-message predictions, for threshold curves without re-running the pipelines.
    predictions = RESULTS_DIR / f"{args.results_name}_{name}_predictions.jsonl"
    predictions.parent.mkdir(parents=True, exist_ok=True)
    with open(predictions, "w", encoding="utf-8") as f:
        for split, triples in (("tune", tune), ("test", test)):
            for gold, pred, conf in triples:
                row = {"split": split, "gold": gold, "pred": pred, "conf": conf}
                f.write(json.dumps(row) + "\n")
    return {
        "pipeline": name,
        "description": PIPELINES.get(name, name),
        "config": str(config.relative_to(REPO)) if config.is_relative_to(REPO) else str(config),
        "train_seconds": train_seconds,
        "threshold": threshold,
        "threshold_rule": rule,
        "tuning": evaluate(tune, args.oos_label, threshold),
        "test": evaluate(test, args.oos_label, threshold),
        "test_at_threshold_0": evaluate(test, args.oos_label, 0.0),
        # The shop's FallbackClassifier threshold, untuned.
        "test_at_threshold_0.5": evaluate(test, args.oos_label, 0.5),
        "parse_latency": percentiles(durations[n_tune:]),
        "classifier_metrics": classifier_metrics(model),
        "predictions": str(predictions),
    }


def table(rows: list[dict[str, Any]]) -> str:
    headers = [
        "pipeline",
        "in-scope acc",
        "closed-set acc",
        "macro-F1",
        "OOS recall",
        "OOS precision",
        "threshold",
        "train (s)",
        "parse p50 (ms)",
        "parse p99 (ms)",
    ]
    body = [
        [
            r["description"],
            r["test"]["in_scope_accuracy"],
            r["test"]["closed_set_accuracy"],
            r["test"]["macro_f1"],
            r["test"]["oos_recall"],
            r["test"]["oos_precision"],
            r["threshold"],
            r["train_seconds"],
            r["parse_latency"].get("p50_ms", float("nan")),
            r["parse_latency"].get("p99_ms", float("nan")),
        ]
        for r in rows
    ]
    return format_table(headers, body)


# --------------------------------------------------------------------------- shop data


class _ComponentTimer(logging.Handler):
    """Collects Rasa's "Starting/Finished training component 'X'" log lines with times."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.started: dict[str, float] = {}
        self.seconds: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if "train component '" not in text and "training component '" not in text:
            return
        component = text.split("'")[1]
        if text.startswith("Starting"):
            self.started[component] = record.created
        elif text.startswith("Finished") and component in self.started:
            self.seconds[component] = record.created - self.started.pop(component)


def time_shop_training(nlu_dir: Path, config: Path) -> int:
    """Trains `config` on the shop's own NLU data; reports wall time and per-component time."""
    from rasa.shared.nlu.training_data.loading import load_data

    timer = _ComponentTimer()
    logging.getLogger("rasa.engine.training.hooks").addHandler(timer)
    with tempfile.TemporaryDirectory(prefix="kefu-nlu-bench-") as tmp:
        _model, seconds = train(config, nlu_dir, Path(tmp), "shop")
    data = load_data(str(nlu_dir))
    result = {
        "nlu_data": str(nlu_dir),
        "config": str(config),
        "examples": len(data.intent_examples),
        "intents": len(data.intents),
        "train_seconds": seconds,
        "component_seconds": timer.seconds,
    }
    rows = [["whole `rasa train` (NLU)", seconds]]
    rows += [[f"  {name}", value] for name, value in timer.seconds.items()]
    text = (
        f"{result['examples']} examples, {result['intents']} intents from {nlu_dir}, "
        f"config {config}\n\n" + format_table(["step", "seconds"], rows)
    )
    write_results("nlu_bench_shop_training", result, text)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=Path, default=DATASET / "train.jsonl")
    parser.add_argument("--test", type=Path, default=DATASET / "val.jsonl")
    parser.add_argument("--oos-label", default="oos", help="intent of out-of-scope rows")
    parser.add_argument("--only", default=",".join(PIPELINES), help="comma-separated pipelines")
    parser.add_argument("--config-dir", type=Path, default=CONFIG_DIR)
    parser.add_argument("--limit-per-intent", type=int, default=None, help="train rows/intent")
    parser.add_argument("--test-limit-per-intent", type=int, default=None)
    parser.add_argument("--tune-fraction", type=float, default=0.1)
    parser.add_argument("--target-oos-recall", type=float, default=0.75)
    parser.add_argument(
        "--train-oos-fraction",
        type=float,
        default=0.0,
        help="share of out-of-scope train rows trained as an intent (the rest tune)",
    )
    parser.add_argument("--keep-in-scope", type=float, default=0.97)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--name", default=None, help="results name (default from the data)")
    parser.add_argument("--shop-data", type=Path, default=None, help="time training only")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    if args.shop_data:
        return time_shop_training(args.shop_data, args.config_dir / "shop.yml")

    if not 0.0 <= args.train_oos_fraction <= 1.0:
        parser.error(f"--train-oos-fraction must be in [0, 1], got {args.train_oos_fraction}")
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    missing = [n for n in names if not (args.config_dir / f"{n}.yml").is_file()]
    if missing:
        parser.error(f"no config for {missing} in {args.config_dir}; have {sorted(PIPELINES)}")
    train_rows = load_jsonl(args.train, args.limit_per_intent, args.oos_label)
    test_rows = load_jsonl(args.test, args.test_limit_per_intent, args.oos_label)
    fit_rows, tune_rows = split_train(
        train_rows, args.oos_label, args.tune_fraction, args.seed, args.train_oos_fraction
    )
    name = args.results_name = args.name or f"nlu_bench_{args.train.parent.name}"
    setup = {
        "command": "python -m bench.nlu_bench " + " ".join(argv or __import__("sys").argv[1:]),
        "train": str(args.train),
        "test": str(args.test),
        "oos_label": args.oos_label,
        "fit_rows": len(fit_rows),
        "tune_rows": len(tune_rows),
        "tune_oos_rows": sum(r["intent"] == args.oos_label for r in tune_rows),
        "fit_oos_rows": sum(r["intent"] == args.oos_label for r in fit_rows),
        "test_rows": len(test_rows),
        "intents": len({r["intent"] for r in fit_rows}),
        "target_oos_recall": args.target_oos_recall,
    }
    logger.info("setup %s", setup)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="kefu-nlu-bench-") as tmp_name:
        tmp = Path(tmp_name)
        nlu = write_nlu_yaml(fit_rows, tmp / "nlu.yml")
        for pipeline in names:
            rows.append(run_pipeline(pipeline, nlu, tmp, tune_rows, test_rows, args))
            write_results(name, {"setup": setup, "pipelines": rows}, table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
