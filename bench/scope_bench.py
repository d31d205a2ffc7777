"""Does the trained shop model know the edge of what Kefu does? Scope on never-trained data.

    .venv/bin/python -m bench.scope_bench [--model models/kefu.tar.gz]
        [--out bench/results/scope.json] [--limit N]

Data (neither is ever trained on):
- CLINC150's validation split (/work/shared/datasets/clinc150/val.jsonl, CC BY 3.0, English,
  3,100 rows: 150 intents x 20 + 100 `oos`). bench/data/clinc_to_kefu.yml maps the few CLINC
  intents a shop assistant should handle onto Kefu's intent; every other row, `oos` included,
  is expected `out_of_scope`. Almost all of CLINC is banking, travel, home, work and small talk
  the shop does not do: a strong out-of-scope test.
- bench/data/near_misses.yml: English and Chinese messages written for this shop, real-shopper
  phrasings of what Kefu does and near misses that share its words but ask for something else.

Protocol: the trained model (the full config.yml pipeline, FallbackClassifier included) is
loaded once with `Agent.load`; each message is parsed alone with `Agent.parse_message`, as
`rasa run` does, after 20 warm-up parses. The prediction is the top intent; for the retrieval
intents (faq, chitchat, decline) it is the ResponseSelector's `intent_response_key`
(`faq/shipping_cost`), as long as that key belongs to the top intent.

Scores, per source (clinc, near_miss) and language:
- in-scope accuracy: rows expecting an intent Kefu answers; right when the prediction is one
  of the accepted intents (response key included). `in-scope rejected` is the share of those
  rows sent to out_of_scope or nlu_fallback.
- out-of-scope handled rate: rows expecting `out_of_scope` or `decline/<topic>`; handled when
  the prediction tells the customer, one way or another, that Kefu does not do this (see
  HANDLED_PREDICTIONS): `out_of_scope` (the shop's "I can't help with that, here is what I
  do"), `nlu_fallback` (Kefu asks to rephrase and then offers a person; it pretends nothing),
  any `decline/<topic>` (a polite no with a redirect, even if the redirect is for another
  topic), `human_handoff` and `payment_problem` (both hand the conversation to a person, who
  can say no; no automatic wrong answer reaches the customer). Anything else runs an
  in-scope flow for a request Kefu does not do.
- decline exact: of the rows expecting `decline/<topic>`, those given that very redirect.
- per intent: accuracy of every expected intent (decline/* exact) per source and language;
- top confusions: expected -> predicted with counts, and an example;
- parse p50 / p90 (ms) as a side figure (the machine may be busy).

Writes bench/results/scope.{json,md} (`--out` chooses the JSON path; the table goes next to it
with the `.md` suffix). `--limit N` keeps N evenly spaced rows of each source and language,
for a quick look.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from bench.common import format_table, percentiles, write_results

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(__file__).resolve().parent / "data"
CLINC_VAL = REPO.parent / "shared" / "datasets" / "clinc150" / "val.jsonl"
CLINC_MAP = DATA_DIR / "clinc_to_kefu.yml"
NEAR_MISSES = DATA_DIR / "near_misses.yml"
DEFAULT_MODEL = REPO / "models" / "kefu.tar.gz"
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "scope.json"

OUT_OF_SCOPE = "out_of_scope"
FALLBACK = "nlu_fallback"
RETRIEVAL_INTENTS = ("faq", "chitchat", "decline")
#: Predictions that tell the customer Kefu does not do this (reasons: module docstring).
HANDLED_PREDICTIONS = frozenset({OUT_OF_SCOPE, FALLBACK, "human_handoff", "payment_problem"})
#: Kefu's scope: every intent an expected label may name (the issue "Understanding real
#: shoppers"; some may be newer than the trained model, which then simply misses them).
KEFU_INTENTS = frozenset(
    {
        "affirm",
        "bot_challenge",
        "cancel_order",
        "change_address",
        "check_stock",
        "complaint",
        "deny",
        "exchange_item",
        "goodbye",
        "greet",
        "help",
        "human_handoff",
        "inform",
        "order_status",
        "out_of_scope",
        "payment_problem",
        "recommend",
        "refund_status",
        "return_item",
        "stop",
        "subscribe_restock",
        "switch_language",
        "thank",
        *(
            f"chitchat/{key}"
            for key in ("ask_name", "ask_weather", "compliment", "how_are_you", "joke")
        ),
        *(
            f"faq/{key}"
            for key in (
                "contact",
                "international_shipping",
                "invoice",
                "membership",
                "no_reason_return",
                "payment_methods",
                "return_policy",
                "shipping_cost",
                "shipping_time",
                "size_guide",
                "store_hours",
                "warranty",
                "cancellation_fee",
                "delivery_options",
            )
        ),
        *(
            f"decline/{key}"
            for key in (
                "account",
                "password",
                "newsletter",
                "place_order",
                "review",
                "modify_order",
            )
        ),
    }
)
logger = logging.getLogger("bench.scope_bench")


@dataclass
class Row:
    """One message to parse and what Kefu should make of it."""

    source: str  # "clinc" | "near_miss"
    language: str  # "en" | "zh"
    text: str
    expected: tuple[str, ...]  # accepted labels, the main one first
    origin: str = ""  # the CLINC intent, for CLINC rows
    predicted: str | None = None
    confidence: float | None = None
    seconds: float | None = None

    @property
    def group(self) -> str:
        return f"{self.source}/{self.language}"

    @property
    def main(self) -> str:
        return self.expected[0]


@dataclass
class GroupScore:
    """The figures of one source and language."""

    rows: int = 0
    in_scope: int = 0
    in_scope_correct: int = 0
    in_scope_rejected: int = 0
    out_of_scope: int = 0
    handled: int = 0
    decline: int = 0
    decline_exact: int = 0
    durations: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        ratio = lambda k, n: k / n if n else None  # noqa: E731
        timing = percentiles(self.durations) if self.durations else {"n": 0}
        return {
            "rows": self.rows,
            "in_scope_rows": self.in_scope,
            "in_scope_accuracy": ratio(self.in_scope_correct, self.in_scope),
            "in_scope_rejected": ratio(self.in_scope_rejected, self.in_scope),
            "out_of_scope_rows": self.out_of_scope,
            "out_of_scope_handled": ratio(self.handled, self.out_of_scope),
            "decline_rows": self.decline,
            "decline_exact": ratio(self.decline_exact, self.decline),
            "parse_p50_ms": timing.get("p50_ms"),
            "parse_p90_ms": timing.get("p90_ms"),
        }


# --- labels --------------------------------------------------------------------------------


def is_out_of_scope_label(label: str) -> bool:
    """Expected `out_of_scope` or `decline/<topic>`: a request Kefu does not do."""
    return label == OUT_OF_SCOPE or label.startswith("decline/")


def is_handled(predicted: str) -> bool:
    """Whether a prediction tells the customer Kefu does not do this (module docstring)."""
    return predicted in HANDLED_PREDICTIONS or predicted.startswith("decline/")


def predicted_label(parse: Mapping[str, Any]) -> tuple[str, float | None]:
    """The top intent of a `parse_message` result, with the retrieval response key.

    Kefu's one ResponseSelector answers under the key "default" for every retrieval intent;
    a selector trained for one intent answers under that intent's name. The key counts only
    when it belongs to the top intent (a `faq` top intent with a `chitchat/joke` response is
    left as plain `faq`, which matches no expected label: the customer would get the joke).
    """
    intent = parse.get("intent") or {}
    name = str(intent.get("name") or "None")
    confidence = intent.get("confidence")
    confidence = float(confidence) if isinstance(confidence, (int, float)) else None
    if name not in RETRIEVAL_INTENTS:
        return name, confidence
    full = intent.get("full_retrieval_intent_name")
    if isinstance(full, str) and full.startswith(f"{name}/"):
        return full, confidence
    selectors = parse.get("response_selector") or {}
    for key in (name, "default"):
        selector = selectors.get(key)
        if not isinstance(selector, Mapping):
            continue
        response_key = (selector.get("response") or {}).get("intent_response_key")
        if isinstance(response_key, str) and response_key.startswith(f"{name}/"):
            return response_key, confidence
    return name, confidence


def normalise(text: str) -> str:
    """Lower case, without punctuation, symbols or whitespace: the form texts are compared in."""
    return "".join(
        ch
        for ch in unicodedata.normalize("NFKC", text).casefold()
        if not ch.isspace() and unicodedata.category(ch)[0] not in "PS"
    )


# --- data ----------------------------------------------------------------------------------


def _labels(value: str | Sequence[str], where: str) -> tuple[str, ...]:
    labels = (value,) if isinstance(value, str) else tuple(value)
    if not labels or not all(isinstance(label, str) and label for label in labels):
        raise ValueError(f"{where}: expected must be an intent or a non-empty list of them")
    unknown = [label for label in labels if label not in KEFU_INTENTS]
    if unknown:
        raise ValueError(f"{where}: not Kefu intents: {unknown}")
    if len({is_out_of_scope_label(label) for label in labels}) > 1:
        raise ValueError(f"{where}: mixes in-scope intents with out_of_scope/decline: {labels}")
    return labels


def load_mapping(path: Path = CLINC_MAP) -> dict[str, tuple[str, ...]]:
    """CLINC intent -> accepted Kefu labels, from bench/data/clinc_to_kefu.yml."""
    mapping = yaml.safe_load(path.read_text(encoding="utf-8"))["mapping"]
    odd = [clinc for clinc in mapping if not isinstance(clinc, str)]
    if odd:  # YAML 1.1 reads an unquoted `yes:` / `no:` as a boolean
        raise ValueError(f"{path.name}: CLINC intents must be strings (quote them): {odd}")
    return {clinc: _labels(kefu, f"{path.name}: {clinc}") for clinc, kefu in mapping.items()}


def load_clinc(
    path: Path = CLINC_VAL, mapping: Mapping[str, tuple[str, ...]] | None = None
) -> list[Row]:
    """Every CLINC row, expected its mapped Kefu labels or `out_of_scope`."""
    mapping = load_mapping() if mapping is None else mapping
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                record = json.loads(line)
                expected = mapping.get(record["intent"], (OUT_OF_SCOPE,))
                rows.append(Row("clinc", "en", record["text"], expected, record["intent"]))
    return rows


def load_near_misses(path: Path = NEAR_MISSES) -> list[Row]:
    """The bilingual near-miss set, one Row per message, in file order."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    rows = []
    for language, items in data.items():
        for i, item in enumerate(items):
            where = f"{path.name}: {language}[{i}] {item.get('text')!r}"
            text = item.get("text")
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"{where}: text missing")
            rows.append(Row("near_miss", language, text, _labels(item.get("expected"), where)))
    return rows


def evenly_spaced(rows: Sequence[Row], limit: int | None) -> list[Row]:
    """At most `limit` rows of each source and language, spread over the whole list (CLINC is
    sorted by intent, so its first rows alone would be a handful of intents)."""
    if limit is None:
        return list(rows)
    by_group: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        by_group[row.group].append(row)
    kept = []
    for group_rows in by_group.values():
        n, k = len(group_rows), min(limit, len(group_rows))
        kept += [group_rows[i * n // k] for i in range(k)]
    return kept


# --- scoring -------------------------------------------------------------------------------


def score(rows: Iterable[Row], top_confusions: int = 20) -> dict[str, Any]:
    """All figures from parsed rows (each with `predicted`); pure, no model needed."""
    rows = list(rows)
    groups: dict[str, GroupScore] = defaultdict(GroupScore)
    per_intent: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    confusions: Counter[tuple[str, str]] = Counter()
    confusion_groups: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    examples: dict[tuple[str, str], str] = {}
    leaks: Counter[str] = Counter()  # CLINC out-of-scope intents answered as in-scope
    for row in rows:
        if row.predicted is None:
            raise ValueError(f"row not parsed: {row.text!r}")
        g = groups[row.group]
        g.rows += 1
        if row.seconds is not None:
            g.durations.append(row.seconds)
        exact = row.predicted in row.expected
        if is_out_of_scope_label(row.main):
            g.out_of_scope += 1
            handled = is_handled(row.predicted)
            g.handled += handled
            if row.main.startswith("decline/"):
                g.decline += 1
                g.decline_exact += exact
            elif not handled and row.source == "clinc":
                leaks[row.origin] += 1
            wrong = not exact if row.main.startswith("decline/") else not handled
        else:
            g.in_scope += 1
            g.in_scope_correct += exact
            g.in_scope_rejected += row.predicted in (OUT_OF_SCOPE, FALLBACK)
            wrong = not exact
        if row.main != OUT_OF_SCOPE:
            counts = per_intent[row.main][row.group]
            counts[0] += exact
            counts[1] += 1
        if wrong:
            pair = (row.main, row.predicted)
            confusions[pair] += 1
            confusion_groups[pair][row.group] += 1
            examples.setdefault(pair, row.text)
    total = GroupScore()
    for g in groups.values():
        for f in fields(GroupScore):
            setattr(total, f.name, getattr(total, f.name) + getattr(g, f.name))
    return {
        "groups": {name: groups[name].summary() for name in sorted(groups)},
        "all": total.summary(),
        "per_intent": {
            intent: {
                group: {"correct": c, "rows": n, "accuracy": c / n}
                for group, (c, n) in sorted(by_group.items())
            }
            for intent, by_group in sorted(per_intent.items())
        },
        "top_confusions": [
            {
                "expected": expected,
                "predicted": predicted,
                "count": count,
                "groups": dict(confusion_groups[(expected, predicted)]),
                "example": examples[(expected, predicted)],
            }
            for (expected, predicted), count in sorted(
                confusions.items(), key=lambda item: (-item[1], item[0])
            )[:top_confusions]
        ],
        "clinc_out_of_scope_leaks": dict(leaks.most_common(15)),
    }


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def render(scores: Mapping[str, Any]) -> str:
    """The Markdown report: summary, per intent, confusions, CLINC leaks."""
    groups = {**scores["groups"], "all": scores["all"]}
    summary = format_table(
        [
            "source/lang",
            "rows",
            "in-scope rows",
            "in-scope acc.",
            "in-scope rejected",
            "out-of-scope rows",
            "OOS handled",
            "decline rows",
            "decline exact",
            "parse p50 ms",
        ],
        [
            [
                name,
                s["rows"],
                s["in_scope_rows"],
                _pct(s["in_scope_accuracy"]),
                _pct(s["in_scope_rejected"]),
                s["out_of_scope_rows"],
                _pct(s["out_of_scope_handled"]),
                s["decline_rows"],
                _pct(s["decline_exact"]),
                _ms(s["parse_p50_ms"]),
            ]
            for name, s in groups.items()
        ],
    )
    names = list(scores["groups"])
    intent_rows = []
    for intent, by_group in scores["per_intent"].items():
        cells = [
            f"{by_group[g]['correct']}/{by_group[g]['rows']}" if g in by_group else ""
            for g in names
        ]
        intent_rows.append([intent, *cells])
    per_intent = format_table(["expected intent", *names], intent_rows)
    confusion_rows = [
        [
            f"{c['expected']} → {c['predicted']}",
            c["count"],
            ", ".join(f"{g} {n}" for g, n in sorted(c["groups"].items())),
            c["example"].replace("|", "/")[:60],
        ]
        for c in scores["top_confusions"]
    ]
    confusions = (
        format_table(["expected → predicted", "count", "where", "example"], confusion_rows)
        if confusion_rows
        else "(none)"
    )
    leaks = scores["clinc_out_of_scope_leaks"]
    leak_text = ", ".join(f"{intent} {n}" for intent, n in leaks.items()) or "(none)"
    return "\n\n".join(
        [
            summary,
            "In-scope accuracy: the predicted intent (with the retrieval response key) is an "
            "expected one. OOS handled: an out_of_scope or decline/* row predicted out_of_scope, "
            "nlu_fallback, any decline/*, human_handoff or payment_problem. Decline exact: the "
            "right decline/* redirect.",
            "## Per expected intent (correct/rows)\n\n" + per_intent,
            "## Top confusions\n\n" + confusions,
            "## CLINC out-of-scope intents most often answered as in-scope\n\n" + leak_text,
        ]
    )


# --- running -------------------------------------------------------------------------------


def parse_rows(model: Path, rows: list[Row], warmup: int = 20) -> float:
    """Parses every row alone through `Agent.parse_message`; returns the model load seconds."""
    import asyncio

    from rasa.core.agent import Agent

    start = time.perf_counter()
    agent = Agent.load(str(model))
    load_seconds = time.perf_counter() - start

    async def run() -> None:
        for row in rows[:warmup]:
            await agent.parse_message(row.text)
        for i, row in enumerate(rows, 1):
            t0 = time.perf_counter()
            parse = await agent.parse_message(row.text)
            row.seconds = time.perf_counter() - t0
            row.predicted, row.confidence = predicted_label(parse)
            if i % 500 == 0:
                print(f"  parsed {i}/{len(rows)}", flush=True)

    asyncio.run(run())
    return load_seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scope_bench")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON path (.md beside)")
    parser.add_argument("--limit", type=int, default=None, help="rows per source and language")
    parser.add_argument("--clinc", type=Path, default=CLINC_VAL, help="CLINC150 val.jsonl")
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be at least 1")
    if not args.model.is_file():
        parser.error(f"no trained model at {args.model} (make train)")
    if not args.clinc.is_file():
        parser.error(f"CLINC150 validation split not found: {args.clinc}")
    logging.basicConfig(level=logging.WARNING)

    from custom_components.encoder.device import set_offline_env

    set_offline_env()
    started = time.perf_counter()
    rows = evenly_spaced(load_clinc(args.clinc) + load_near_misses(), args.limit)
    print(f"parsing {len(rows)} messages with {args.model} …", flush=True)
    load_seconds = parse_rows(args.model, rows)
    scores = score(rows)
    results = {
        "model": str(args.model),
        "model_mtime": time.strftime(
            "%Y-%m-%dT%H:%M:%S%z", time.localtime(args.model.stat().st_mtime)
        ),
        "settings": {"limit": args.limit, "clinc": str(args.clinc)},
        "model_load_seconds": load_seconds,
        "total_seconds": time.perf_counter() - started,
        **scores,
        "rows": [asdict(row) for row in rows],
    }
    table = render(scores) + (
        f"\n\nmodel: {args.model} ({results['model_mtime']}); "
        f"{len(rows)} messages parsed one at a time; load {load_seconds:.0f} s."
    )
    write_results(args.out.stem, results, table, results_dir=args.out.parent)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
