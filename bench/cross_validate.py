"""NLU cross-validation of Kefu's own pipeline on the shop's data, reported per language.

    .venv/bin/python -m bench.cross_validate [--folds 3] [--config config.yml] [--data data/nlu]
        [--train-only data/nlu_public]

Splits data/nlu into stratified folds (by intent, retrieval intents by their full name), trains
the NLU part of `config.yml` on the other folds plus the public examples every model trains on
(data/nlu_public, see scripts/clinc_training_data.py; never scored, so the figures stay the
shop's own), parses every held-out message through the trained model exactly as the server
does, and reports per language (the LanguageDetector's rule):
intent accuracy and macro-F1, FAQ/chitchat response-selection accuracy, and entity precision,
recall and F1 (exact type + value + span), with per-intent and per-entity F1. Writes
bench/results/nlu_cross_validation.{json,md}. Heavy: one full NLU training per fold.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.common import format_table, write_results
from bench.nlu_bench import parse_all, train

ROOT = Path(__file__).resolve().parent.parent


def language_of(text: str) -> str:
    from custom_components.language_detector import chinese_share

    share = chinese_share(text)
    return "zh" if share is not None and share >= 0.25 else "en"


def entity_set(entities: list[dict[str, Any]], extractors: set[str] | None = None) -> set[tuple]:
    """Entities as comparable `(type, value, start, end)`; Kefu's meta-entities left out."""
    return {
        (e["entity"], str(e.get("value")), e.get("start"), e.get("end"))
        for e in entities
        if e["entity"] not in {"language", "sentiment"}
        and (extractors is None or e.get("extractor") in extractors)
    }


def f1(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    score = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, score


def macro_f1(pairs: list[tuple[str, str]]) -> tuple[float, dict[str, float]]:
    """Macro-F1 over the gold labels, and each label's F1."""
    labels = sorted({gold for gold, _ in pairs})
    per_label = {}
    for label in labels:
        tp = sum(g == label and p == label for g, p in pairs)
        fp = sum(g != label and p == label for g, p in pairs)
        fn = sum(g == label and p != label for g, p in pairs)
        per_label[label] = f1(tp, fp, fn)[2]
    return (sum(per_label.values()) / len(per_label) if per_label else 0.0), per_label


def score(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Metrics of one language's held-out predictions."""
    intents = [(r["intent"], r["predicted_intent"]) for r in records]
    macro, per_intent = macro_f1(intents)
    retrieval = [r for r in records if r["response_key"]]
    tp = fp = fn = 0
    per_entity: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for r in records:
        gold, predicted = set(map(tuple, r["entities"])), set(map(tuple, r["predicted_entities"]))
        for e in gold & predicted:
            per_entity[e[0]][0] += 1
        for e in predicted - gold:
            per_entity[e[0]][1] += 1
        for e in gold - predicted:
            per_entity[e[0]][2] += 1
        tp, fp, fn = (
            tp + len(gold & predicted),
            fp + len(predicted - gold),
            fn + len(gold - predicted),
        )
    precision, recall, entity_f1 = f1(tp, fp, fn)
    return {
        "examples": len(records),
        "intent_accuracy": sum(g == p for g, p in intents) / len(intents) if intents else 0.0,
        "intent_macro_f1": macro,
        "response_selection_accuracy": (
            sum(r["response_key"] == r["predicted_response_key"] for r in retrieval)
            / len(retrieval)
            if retrieval
            else None
        ),
        "entity_precision": precision,
        "entity_recall": recall,
        "entity_f1": entity_f1,
        "per_intent_f1": per_intent,
        "per_entity_f1": {name: f1(*counts)[2] for name, counts in sorted(per_entity.items())},
    }


def held_out_records(model: str, examples: list) -> list[dict[str, Any]]:
    """Parses each held-out example; gold and predicted labels side by side."""
    parses, _ = parse_all(model, [m.get("text") for m in examples], warmup=5)
    records = []
    for message, parse in zip(examples, parses, strict=True):
        selector = (parse.get("response_selector") or {}).get("default", {}).get("response", {})
        records.append(
            {
                "text": message.get("text"),
                "language": language_of(message.get("text")),
                "intent": message.get("intent"),
                "predicted_intent": (parse.get("intent") or {}).get("name"),
                "response_key": message.get("intent_response_key")
                if message.get("intent") in {"faq", "chitchat"}
                else None,
                "predicted_response_key": selector.get("intent_response_key"),
                # With the answer key's confidence and the ranking, a threshold curve for
                # AnswerKeyFallback can be drawn from the records without retraining.
                "predicted_response_confidence": selector.get("confidence"),
                "intent_ranking": [
                    (r.get("name"), r.get("confidence")) for r in parse.get("intent_ranking") or []
                ][:3],
                "entities": sorted(entity_set(message.get("entities") or [])),
                "predicted_entities": sorted(entity_set(parse.get("entities") or [])),
            }
        )
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--config", type=Path, default=ROOT / "config.yml")
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "nlu")
    parser.add_argument(
        "--train-only",
        default=str(ROOT / "data" / "nlu_public"),
        help="examples added to every fold's training and never scored ('' for none)",
    )
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--out", type=Path, default=None, help="results folder (default bench/results)"
    )
    args = parser.parse_args(argv)

    from rasa.shared.nlu.training_data.loading import load_data
    from rasa.shared.nlu.training_data.training_data import TrainingData
    from sklearn.model_selection import StratifiedKFold

    data = load_data(str(args.data))
    examples = [m for m in data.intent_examples if m.get("text")]
    public = []
    if args.train_only and Path(args.train_only).exists():
        public = [m for m in load_data(args.train_only).intent_examples if m.get("text")]
    labels = [m.get("intent_response_key") or m.get("intent") for m in examples]
    folds = StratifiedKFold(n_splits=args.folds, shuffle=True, random_state=args.seed)
    records: list[dict[str, Any]] = []
    started = time.perf_counter()
    for fold, (train_index, test_index) in enumerate(folds.split(examples, labels), start=1):
        train_data = TrainingData(
            [examples[i] for i in train_index] + public,
            entity_synonyms=data.entity_synonyms,
            regex_features=data.regex_features,
            lookup_tables=data.lookup_tables,
            responses=data.responses,
        )
        with tempfile.TemporaryDirectory() as tmp:
            nlu_file = Path(tmp) / "nlu.yml"
            nlu_file.write_text(train_data.nlu_as_yaml(), encoding="utf-8")
            model, seconds = train(args.config, nlu_file, Path(tmp), f"fold{fold}")
            print(f"fold {fold}/{args.folds}: trained in {seconds:.0f} s", flush=True)
            records.extend(held_out_records(model, [examples[i] for i in test_index]))

    by_language = {
        language: score([r for r in records if r["language"] == language])
        for language in ("en", "zh")
    }
    by_language["all"] = score(records)
    rows = [
        [
            language,
            m["examples"],
            f"{m['intent_accuracy']:.3f}",
            f"{m['intent_macro_f1']:.3f}",
            "-"
            if m["response_selection_accuracy"] is None
            else f"{m['response_selection_accuracy']:.3f}",
            f"{m['entity_precision']:.3f}",
            f"{m['entity_recall']:.3f}",
            f"{m['entity_f1']:.3f}",
        ]
        for language, m in by_language.items()
    ]
    table = format_table(
        [
            "language",
            "examples",
            "intent acc",
            "intent macro-F1",
            "FAQ/chitchat acc",
            "entity P",
            "entity R",
            "entity F1",
        ],
        rows,
    )
    per_class = format_table(
        ["intent", "F1 en", "F1 zh"],
        [
            [
                name,
                f"{by_language['en']['per_intent_f1'].get(name, 0):.3f}",
                f"{by_language['zh']['per_intent_f1'].get(name, 0):.3f}",
            ]
            for name in sorted(by_language["all"]["per_intent_f1"])
        ],
    )
    per_entity = format_table(
        ["entity", "F1 en", "F1 zh"],
        [
            [
                name,
                f"{by_language['en']['per_entity_f1'].get(name, 0):.3f}",
                f"{by_language['zh']['per_entity_f1'].get(name, 0):.3f}",
            ]
            for name in sorted(by_language["all"]["per_entity_f1"])
        ],
    )
    command = f"python -m bench.cross_validate --folds {args.folds} --config {args.config.name}"
    trained_too = f"; {len(public)} public examples in every fold's training" if public else ""
    text = f"{table}\n\n{per_class}\n\n{per_entity}\n\n{args.folds}-fold, {time.perf_counter() - started:.0f} s{trained_too}; `{command}`"
    kwargs = {"results_dir": args.out} if args.out else {}
    write_results(
        "nlu_cross_validation",
        {"command": command, "folds": args.folds, "metrics": by_language, "predictions": records},
        text,
        **kwargs,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
