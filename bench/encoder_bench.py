"""TransformerFeaturizer vs Rasa's stock LanguageModelFeaturizer, same weights, one run.

    .venv/bin/python -m bench.encoder_bench [--model multilingual-e5-small] [--messages 1000]
        [--latency-messages 500]

Measures, on this machine:
1. featurization throughput in training (`process_training_data`, messages/s) — target >= 5x;
2. single-message latency of the whole NLU pipeline (`Agent.parse_message`), p50 / p99 over
   the latency messages after warm-up — target <= 0.5x of stock;
3. peak RSS of a fresh process that loads each trained model and parses one message.

Both pipelines are WhitespaceTokenizer + featurizer + DIETClassifier (1 epoch) trained on the
same CLINC150 subset; the featurizers read the same converted asset folder. Rasa's stock
featurizer only knows WordPiece BERT tokenizers (`BertTokenizer`, hard-coded [CLS]=101,
[SEP]=102); for an XLM-R vocabulary such as E5's, `StockLanguageModelFeaturizer` below keeps
all of its inference code and swaps in only the folder's own tokenizer and special-token ids.
Results: bench/results/encoder_bench.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import logging
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from custom_components.encoder.device import set_offline_env

set_offline_env()

from rasa.engine.graph import ExecutionContext, GraphSchema  # noqa: E402
from rasa.engine.recipes.default_recipe import DefaultV1Recipe  # noqa: E402
from rasa.engine.storage.local_model_storage import LocalModelStorage  # noqa: E402
from rasa.engine.storage.resource import Resource  # noqa: E402
from rasa.nlu.featurizers.dense_featurizer.lm_featurizer import (  # noqa: E402
    LanguageModelFeaturizer,
)

from bench.common import (  # noqa: E402
    format_table,
    percentiles,
    run_python_for_peak_rss,
    throughput,
    write_results,
)

DATASET = Path("/work/shared/datasets/clinc150")
REPO = Path(__file__).resolve().parents[1]
OURS = "custom_components.transformer_featurizer.TransformerFeaturizer"
STOCK_XLMR = "bench.encoder_bench.StockLanguageModelFeaturizer"
logger = logging.getLogger("bench.encoder_bench")


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER, is_trainable=False)
class StockLanguageModelFeaturizer(LanguageModelFeaturizer):
    """Rasa's LanguageModelFeaturizer, able to read a non-WordPiece (XLM-R) BERT folder.

    Only the tokenizer loading and the special-token ids differ from stock; batching, eager
    forward passes, per-token tokenization and padding are Rasa's own code.
    """

    def _load_model_instance(self) -> None:
        from transformers import AutoTokenizer, TFBertModel

        self.tokenizer = AutoTokenizer.from_pretrained(self.model_weights, local_files_only=True)
        self.model = TFBertModel.from_pretrained(self.model_weights, local_files_only=True)
        self.pad_token_id = self.tokenizer.unk_token_id

    def _add_lm_specific_special_tokens(self, token_ids: list[list[int]]) -> list[list[int]]:
        cls_id, sep_id = self.tokenizer.cls_token_id, self.tokenizer.sep_token_id
        return [[cls_id, *ids, sep_id] for ids in token_ids]


def load_clinc(split: str) -> list[dict[str, str]]:
    with open(DATASET / f"{split}.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def stock_component(folder: Path) -> tuple[str, dict[str, Any]]:
    """Stock LanguageModelFeaturizer for WordPiece folders, the XLM-R-capable one otherwise."""
    name = "LanguageModelFeaturizer" if (folder / "vocab.txt").is_file() else STOCK_XLMR
    return name, {"model_name": "bert", "model_weights": str(folder)}


def tokenized_messages(texts: list[str]):
    from rasa.nlu.tokenizers.whitespace_tokenizer import WhitespaceTokenizer
    from rasa.shared.nlu.training_data.message import Message

    tokenizer = WhitespaceTokenizer(WhitespaceTokenizer.get_default_config())
    messages = [Message(data={"text": t}) for t in texts]
    tokenizer.process(messages)
    return messages


def featurizer_throughput(cls: type, config: dict, texts: list[str], tmp: Path) -> dict:
    """Messages per second of `process_training_data` (model load timed separately)."""
    from rasa.shared.nlu.training_data.training_data import TrainingData

    storage_dir = tmp / f"storage-{cls.__name__}"
    storage_dir.mkdir()
    context = ExecutionContext(GraphSchema({}), node_name=cls.__name__)
    full_config = {**cls.get_default_config(), **config}
    start = time.perf_counter()
    featurizer = cls.create(full_config, LocalModelStorage(storage_dir), Resource("f"), context)
    load_s = time.perf_counter() - start
    # Warm-up: first calls build graphs / caches in both implementations.
    featurizer.process_training_data(TrainingData(tokenized_messages(texts[:64])))
    messages = tokenized_messages(texts)
    data = TrainingData(training_examples=messages)
    result = throughput(lambda: featurizer.process_training_data(data), len(messages))
    result["load_seconds"] = load_s
    sample = messages[0].get_dense_features("text", [])
    result["feature_dims"] = [sample[0].features.shape[-1], sample[1].features.shape[-1]]
    return result


def write_project(tmp: Path, name: str, featurizer: str, config: dict, nlu: list[dict]) -> Path:
    lines = ["recipe: default.v1", "language: en", "assistant_id: encoder-bench", "pipeline:"]
    lines += ["  - name: WhitespaceTokenizer", f"  - name: {featurizer}"]
    lines += [f"    {k}: {json.dumps(v)}" for k, v in config.items()]
    lines += ["  - name: DIETClassifier", "    epochs: 1", "    constrain_similarities: true"]
    lines += ["policies: []"]
    config_path = tmp / f"{name}-config.yml"
    config_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    by_intent: dict[str, list[str]] = {}
    for row in nlu:
        by_intent.setdefault(row["intent"], []).append(row["text"])
    nlu_lines = ['version: "3.1"', "nlu:"]
    for intent, examples in by_intent.items():
        nlu_lines += [f"- intent: {intent}", "  examples: |"]
        nlu_lines += [f"    - {json.dumps(e, ensure_ascii=False)[1:-1]}" for e in examples]
    nlu_path = tmp / "nlu.yml"
    nlu_path.write_text("\n".join(nlu_lines) + "\n", encoding="utf-8")
    return config_path


def train_pipeline(tmp: Path, name: str, featurizer: str, config: dict, nlu: list[dict]) -> dict:
    from rasa.model_training import train_nlu

    config_path = write_project(tmp, name, featurizer, config, nlu)
    start = time.perf_counter()
    model = train_nlu(str(config_path), str(tmp / "nlu.yml"), str(tmp / "models"), name)
    return {"model": model, "train_seconds": time.perf_counter() - start}


def parse_latency(model_path: str, texts: list[str], warmup: int = 20) -> dict:
    from rasa.core.agent import Agent

    start = time.perf_counter()
    agent = Agent.load(model_path)
    load_s = time.perf_counter() - start

    async def run() -> list[float]:
        for text in texts[:warmup]:
            await agent.parse_message(text)
        durations = []
        for text in texts:
            t0 = time.perf_counter()
            await agent.parse_message(text)
            durations.append(time.perf_counter() - t0)
        return durations

    durations = asyncio.run(run())
    return {"load_seconds": load_s, **percentiles(durations)}


def peak_memory(model_path: str) -> dict:
    code = (
        "import asyncio, os\n"
        "from custom_components.encoder.device import set_offline_env; set_offline_env()\n"
        "import bench.encoder_bench  # registers the stock XLM-R featurizer\n"
        "from rasa.core.agent import Agent\n"
        f"agent = Agent.load({model_path!r})\n"
        "print(asyncio.run(agent.parse_message('where is my order'))['intent'])\n"
    )
    return run_python_for_peak_rss(code, env={"PYTHONPATH": str(REPO)})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.encoder_bench")
    parser.add_argument("--model", default="multilingual-e5-small", help="registered name/PATH")
    parser.add_argument("--messages", type=int, default=1000, help="throughput messages")
    parser.add_argument("--latency-messages", type=int, default=500)
    parser.add_argument("--train-intents", type=int, default=10)
    parser.add_argument("--per-intent", type=int, default=15)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from custom_components.encoder.assets import build
    from custom_components.encoder.device import precision_policy, resolve_device
    from custom_components.encoder.runtime import clear_runtimes
    from custom_components.transformer_featurizer import TransformerFeaturizer

    started = time.perf_counter()
    folder, manifest, built = build(args.model)  # fresh checkout: converts once, then cached
    print(f"assets: {folder} ({'built' if built else 'verified'})")
    rng = random.Random(args.seed)
    train_rows, val_rows = load_clinc("train"), load_clinc("val")
    throughput_texts = [r["text"] for r in rng.sample(train_rows, args.messages)]
    latency_texts = [r["text"] for r in rng.sample(val_rows, args.latency_messages)]
    intents = sorted({r["intent"] for r in train_rows})
    chosen = set(rng.sample(intents, args.train_intents))
    nlu: list[dict] = []
    for intent in sorted(chosen):
        rows = [r for r in train_rows if r["intent"] == intent]
        nlu += rng.sample(rows, min(args.per_intent, len(rows)))

    stock_name, stock_config = stock_component(folder)
    stock_cls = (
        LanguageModelFeaturizer
        if stock_name == "LanguageModelFeaturizer"
        else (StockLanguageModelFeaturizer)
    )
    ours_config = {"model_path": str(folder)}
    results: dict[str, Any] = {
        "model": manifest["name"],
        "asset_folder": str(folder),
        "asset_fingerprint": manifest["fingerprint"],
        "stock_component": stock_name,
        "settings": vars(args),
    }
    with tempfile.TemporaryDirectory(prefix="encoder-bench-") as tmp_name:
        tmp = Path(tmp_name)
        print("throughput: ours …")
        ours_tp = featurizer_throughput(TransformerFeaturizer, ours_config, throughput_texts, tmp)
        print(f"  {ours_tp['per_second']:.1f} msg/s; stock …")
        stock_tp = featurizer_throughput(stock_cls, stock_config, throughput_texts, tmp)
        print(f"  {stock_tp['per_second']:.1f} msg/s")
        results["throughput"] = {"ours": ours_tp, "stock": stock_tp}

        trained = {}
        for name, featurizer, config in (
            ("ours", OURS, ours_config),
            ("stock", stock_name, stock_config),
        ):
            print(f"train + latency: {name} …")
            trained[name] = train_pipeline(tmp, name, featurizer, config, copy.deepcopy(nlu))
            clear_runtimes()  # Agent.load below must load the encoder itself, as `rasa run` does
            trained[name].update(parse_latency(trained[name]["model"], latency_texts))
            print(f"  p50 {trained[name]['p50_ms']:.1f} ms, p99 {trained[name]['p99_ms']:.1f} ms")
        results["latency"] = trained

        for name in ("ours", "stock"):
            print(f"peak memory: {name} …")
            trained[name].update(peak_memory(trained[name]["model"]))

    ours_lat, stock_lat = results["latency"]["ours"], results["latency"]["stock"]
    ratios = {
        "throughput_x": ours_tp["per_second"] / stock_tp["per_second"],
        "latency_p50_ratio": ours_lat["p50_ms"] / stock_lat["p50_ms"],
        "latency_p99_ratio": ours_lat["p99_ms"] / stock_lat["p99_ms"],
        "peak_rss_ratio": ours_lat["peak_rss_mb"] / stock_lat["peak_rss_mb"],
    }
    results["ratios"] = ratios
    results["targets_met"] = {
        "throughput_at_least_5x": ratios["throughput_x"] >= 5,
        "latency_p50_at_most_half": ratios["latency_p50_ratio"] <= 0.5,
        "latency_p99_at_most_half": ratios["latency_p99_ratio"] <= 0.5,
    }
    results["total_seconds"] = time.perf_counter() - started
    results["ours_precision"] = precision_policy(
        resolve_device("auto"), TransformerFeaturizer.get_default_config()["mixed_precision"]
    )

    headers = ["metric", "ours", "stock", "ours / stock", "target"]
    rows = [
        [
            "train featurization (msg/s)",
            ours_tp["per_second"],
            stock_tp["per_second"],
            ratios["throughput_x"],
            ">= 5x",
        ],
        [
            "parse latency p50 (ms)",
            ours_lat["p50_ms"],
            stock_lat["p50_ms"],
            ratios["latency_p50_ratio"],
            "<= 0.5",
        ],
        [
            "parse latency p99 (ms)",
            ours_lat["p99_ms"],
            stock_lat["p99_ms"],
            ratios["latency_p99_ratio"],
            "<= 0.5",
        ],
        [
            "peak RSS, loaded model (MiB)",
            ours_lat["peak_rss_mb"],
            stock_lat["peak_rss_mb"],
            ratios["peak_rss_ratio"],
            "-",
        ],
        [
            "featurizer load (s)",
            ours_tp["load_seconds"],
            stock_tp["load_seconds"],
            ours_tp["load_seconds"] / stock_tp["load_seconds"],
            "-",
        ],
        [
            "model load, Agent.load (s)",
            ours_lat["load_seconds"],
            stock_lat["load_seconds"],
            ours_lat["load_seconds"] / stock_lat["load_seconds"],
            "-",
        ],
    ]
    table = format_table(headers, rows)
    table += (
        f"\n\nmodel: {manifest['name']} ({folder}); stock component: {stock_name}; "
        f"{args.messages} throughput messages, {args.latency_messages} latency messages "
        f"(CLINC150), {args.train_intents}x{args.per_intent} training examples, DIET 1 epoch; "
        f"our encoder's precision: {results['ours_precision']} (stock: float32)."
    )
    write_results("encoder_bench", results, table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
