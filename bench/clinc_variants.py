"""Fine-tuning variants of the intent classifier on CLINC150, without the Rasa pipeline around it.

    .venv/bin/python -m bench.clinc_variants train NAME [--seed 42] [--epochs 4] [--layers 4]
        [--learning-rate 2e-4] [--label-smoothing 0] [--dropout 0.1] [--val-fraction 0.1]
        [--train-oos 0.5]
    .venv/bin/python -m bench.clinc_variants score NAME [NAME ...]

`train` reproduces what `bench.nlu_bench --only ours --train-oos-fraction 0.5` does to the
classifier (the same tuning slice, the classifier's own held-out split, `FineTunedEncoder.fit`
with the component's defaults; `--seed` changes the head, dropout and shuffling, not the
splits) and stores the logits of the held-out, tuning and test messages in
bench/results/variants/NAME.npz. `score` turns one stored run, or several averaged as an
ensemble, into the benchmark's figures: temperature and out-of-scope logit fitted on the
held-out rows, threshold at `--target-oos-recall` on the tuning slice, metrics on the test set.

`--train-oos F` (default 0.5) trains that share of the out-of-scope train rows as one more
intent, as `bench.nlu_bench --train-oos-fraction` does; the rest stay in the tuning slice.
`score` also prints, for comparing runs only, in-scope accuracy at the threshold that reaches
70% out-of-scope recall on the test set itself.
"""

from __future__ import annotations

import argparse
import json
import logging
import time

import numpy as np

from custom_components.encoder.device import set_offline_env

set_offline_env()

from bench.common import RESULTS_DIR  # noqa: E402
from bench.nlu_bench import DATASET, load_jsonl, split_train  # noqa: E402

OUT = RESULTS_DIR / "variants"


def train(args: argparse.Namespace) -> None:
    """Fine-tunes one variant, stores its logits and prints its scores."""
    from custom_components.encoder.assets import resolve_model_path, verify_folder
    from custom_components.encoder.finetune import FineTunedEncoder
    from custom_components.encoder.runtime import get_runtime
    from custom_components.transformer_intent_classifier import stratified_split

    rows = load_jsonl(DATASET / "train.jsonl")
    test = load_jsonl(DATASET / "val.jsonl")
    fit_rows, tune_rows = split_train(rows, "oos", 0.1, 13, args.train_oos)
    folder = resolve_model_path("multilingual-e5-small")
    prefix = verify_folder(folder).get("prefix", "")
    labels = sorted({r["intent"] for r in fit_rows})
    index = {label: i for i, label in enumerate(labels)}
    texts = [prefix + r["text"] for r in fit_rows]
    targets = np.array([index[r["intent"]] for r in fit_rows], dtype=np.int32)
    fit_idx, held_idx = stratified_split(targets, args.val_fraction, 42)
    runtime = get_runtime(folder)
    encoder = FineTunedEncoder(
        runtime, args.layers, len(labels), dropout=args.dropout, seed=args.seed
    )
    started = time.perf_counter()
    encoder.fit(
        [texts[i] for i in fit_idx],
        targets[fit_idx],
        val_texts=[texts[i] for i in held_idx],
        val_labels=targets[held_idx],
        epochs=args.epochs,
        learning_rate=args.learning_rate,
        head_learning_rate=2e-3,
        label_smoothing=args.label_smoothing,
        seed=args.seed,
        on_epoch=lambda record: print(json.dumps(record), flush=True),
    )
    seconds = time.perf_counter() - started

    def logits(texts_: list[str]) -> np.ndarray:
        return np.stack([p.logits for p in encoder.predict(texts_)]).astype(np.float64)

    OUT.mkdir(parents=True, exist_ok=True)
    np.savez(
        OUT / f"{args.name}.npz",
        labels=np.array(labels),
        held_logits=logits([texts[i] for i in held_idx]),
        held_gold=np.array([labels[targets[i]] for i in held_idx]),
        tune_logits=logits([prefix + r["text"] for r in tune_rows]),
        tune_gold=np.array([r["intent"] for r in tune_rows]),
        test_logits=logits([prefix + r["text"] for r in test]),
        test_gold=np.array([r["intent"] for r in test]),
        seconds=seconds,
        args=json.dumps(vars(args)),
    )
    print(f"{args.name}: trained in {seconds:.0f} s")
    score_names([args.name], args.target_oos_recall)


def _calibrated_probs(run: dict, quantile: float) -> dict[str, np.ndarray]:
    """Per split, the confidences the component would give (calibrated on held-out rows)."""
    from custom_components.encoder.calibration import (
        background_logit,
        calibrated_confidences,
        fit_temperature,
    )

    labels = list(run["labels"])
    gold = np.array([labels.index(g) for g in run["held_gold"]])
    temperature = fit_temperature(run["held_logits"], gold)
    background = background_logit(run["held_logits"] / temperature, quantile)
    return {
        split: calibrated_confidences(run[f"{split}_logits"], temperature, background)
        for split in ("tune", "test")
    }


def score_names(names: list[str], target_oos_recall: float, quantile: float = 0.01) -> dict:
    """Bench figures for the average of the named runs' calibrated probabilities."""
    from bench.nlu_bench import evaluate, pick_threshold

    runs = [dict(np.load(OUT / f"{n}.npz")) for n in names]
    for name, run in zip(names[1:], runs[1:], strict=True):
        for split in ("tune", "test"):
            if not np.array_equal(run[f"{split}_gold"], runs[0][f"{split}_gold"]):
                raise SystemExit(f"{name} has another {split} split than {names[0]}")
    intents = sorted({label for r in runs for label in r["labels"] if label != "oos"})
    merged = {}
    for run in runs:
        labels = list(run["labels"])
        for split, probs in _calibrated_probs(run, quantile).items():
            # Columns: the in-scope intents, then the trained 'oos' intent (0 when there is
            # none). The out-of-scope logit only lowers the confidences, as in the component;
            # the threshold does the rejecting.
            cols = [labels.index(i) for i in intents]
            oos = probs[:, labels.index("oos")] if "oos" in labels else np.zeros(len(probs))
            aligned = np.concatenate([probs[:, cols], oos[:, None]], 1)
            merged.setdefault(split, []).append(aligned)
    result = {}
    for split in ("tune", "test"):
        probs = np.mean(merged[split], axis=0)
        gold = runs[0][f"{split}_gold"]
        top = probs[:, : len(intents)].argmax(1)
        conf = probs[np.arange(len(probs)), top]
        # A trained out-of-scope class that outscores every intent rejects the message.
        rejected = probs[:, -1] > conf
        pred = ["oos" if r else intents[i] for i, r in zip(top, rejected, strict=True)]
        # As in the benchmark, a message the trained class rejects scores 0 against the threshold.
        result[split] = list(zip(gold, pred, np.where(rejected, 0.0, conf).tolist(), strict=True))
    threshold, _ = pick_threshold(result["tune"], "oos", target_oos_recall, 0.97)
    test = evaluate(result["test"], "oos", threshold)
    print(
        f"{'+'.join(names)}: in-scope {test['in_scope_accuracy']:.4f} "
        f"closed {test['closed_set_accuracy']:.4f} "
        f"recall {test['oos_recall']:.3f} precision {test['oos_precision']:.3f} "
        f"macro-F1 {test['macro_f1']:.4f} threshold {threshold:.3f}",
        flush=True,
    )
    # For comparing scores only (the threshold is set on the test set): in-scope accuracy at
    # the lowest threshold reaching 70% out-of-scope recall on the test set.
    oracle, _ = pick_threshold(result["test"], "oos", 0.70, 0.97)
    at_70 = evaluate(result["test"], "oos", oracle)
    print(
        f"    test-set threshold for recall {at_70['oos_recall']:.2f}: "
        f"in-scope {at_70['in_scope_accuracy']:.4f}",
        flush=True,
    )
    return test


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train")
    t.add_argument("name")
    t.add_argument("--seed", type=int, default=42)
    t.add_argument("--epochs", type=int, default=4)
    t.add_argument("--layers", type=int, default=4)
    t.add_argument("--learning-rate", type=float, default=2e-4)
    t.add_argument("--label-smoothing", type=float, default=0.0)
    t.add_argument("--train-oos", type=float, default=0.5)
    t.add_argument("--val-fraction", type=float, default=0.1)
    t.add_argument("--dropout", type=float, default=0.1)
    s = sub.add_parser("score")
    s.add_argument("names", nargs="+")
    s.add_argument("--out-of-scope-quantile", type=float, default=0.01)
    for p in (t, s):
        p.add_argument("--target-oos-recall", type=float, default=0.75)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.command == "train":
        train(args)
    else:
        score_names(args.names, args.target_oos_recall, args.out_of_scope_quantile)


if __name__ == "__main__":
    main()
