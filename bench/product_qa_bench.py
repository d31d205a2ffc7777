"""Product-question answering on held-out questions written for the seed catalog.

Seeds a fresh SQLite catalog (docs/SEED.md), builds the passage index with Kefu's encoder (what
`make catalog` builds), then asks every question of bench/data/product_questions.yml through
``commerce.services.products.answer_product_question`` in one process, as a guest of the store
its language implies. A question counts as correct when the top answer is one of its accepted
answers, or when it should be refused and was (no answer, or an honest "not listed").

    .venv/bin/python -m bench.product_qa_bench               # the test split: accuracy, latency
    .venv/bin/python -m bench.product_qa_bench --calibrate   # the refusal bar per language

``--calibrate`` answers the calibration split with no bar, then reports for each language the
bar that maximises correct answers plus correct refusals there; copy it into
``commerce.services.products.ANSWER_MIN_SCORE``. The test split never sets the bar.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import yaml

from bench.common import format_table, percentiles, write_results

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = ROOT / "bench" / "data" / "product_questions.yml"


@dataclass(frozen=True)
class Question:
    lang: str
    q: str
    accept: tuple[str, ...]
    context: str | None = None

    @property
    def kind(self) -> str:
        """What the main accepted answer is: attr, passage, faq, price or refuse."""
        return self.accept[0].split(":", 1)[0]


def load_questions(path: Path = QUESTIONS, split: str = "test") -> list[Question]:
    """The questions of one split ("test" or "calibration")."""
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [
        Question(
            lang=row["lang"], q=row["q"], accept=tuple(row["accept"]), context=row.get("context")
        )
        for row in document[split]
    ]


def answer_key(answer) -> str:
    """The accepted-answer string an answer stands for (see the questions file's header)."""
    if answer is None or (answer.source == "attribute" and answer.score == 0):
        return "refuse"  # no answer, or "the listing doesn't state it": an honest refusal
    if answer.source == "price":
        return f"price:{answer.code}"
    if answer.source == "attribute":
        return f"attr:{answer.code}:{answer.ref}"
    if not answer.code:
        return f"faq:{answer.ref}"
    return f"passage:{answer.code}:{answer.ref.removeprefix('description/')}"


def judge(question: Question, answer) -> bool:
    """Top-1 correct, or a correct refusal."""
    return answer_key(answer) in question.accept


def ask(session_factory, index, question: Question, min_score: float | None = None):
    """Answers one question as the dialogue would, as a guest of the language's store."""
    from commerce.services.products import answer_product_question, store_for

    return answer_product_question(
        session_factory,
        question.q,
        question.lang,
        store_for(None, question.lang),
        question.context,
        index=index,
        min_score=min_score,
    )


def prepare(encoder_dir: Path, workdir: Path):
    """A seeded catalog database and its passage index, built as `make catalog` builds it."""
    from commerce.__main__ import upgrade
    from commerce.db import make_engine, make_session_factory
    from commerce.seed import seed
    from commerce.services.catalog import PassageEncoder, PassageIndex, product_passages
    from scripts.export_catalog import faq_passages

    url = f"sqlite:///{workdir / 'catalog.db'}"
    upgrade(url)
    engine = make_engine(url)
    seed(engine)
    session_factory = make_session_factory(engine)
    passages = product_passages(session_factory) + faq_passages(ROOT / "domain")
    index = PassageIndex.build(passages, PassageEncoder(encoder_dir))
    return session_factory, index


def evaluate(session_factory, index, questions: list[Question]) -> dict:
    """Accuracy (overall, per language, per kind) and per-question answer latency."""
    ask(session_factory, index, Question("en", "warm up", ("refuse",)))  # traces the graph once
    rows, durations = [], []
    for question in questions:
        start = time.perf_counter()
        answer = ask(session_factory, index, question)
        durations.append(time.perf_counter() - start)
        rows.append((question, answer_key(answer), judge(question, answer)))
    groups: dict[str, list[bool]] = defaultdict(list)
    for question, _got, ok in rows:
        groups["all"].append(ok)
        groups[f"lang={question.lang}"].append(ok)
        groups[f"kind={question.kind}"].append(ok)
    return {
        "accuracy": {name: sum(oks) / len(oks) for name, oks in groups.items()},
        "counts": {name: len(oks) for name, oks in groups.items()},
        "latency": percentiles(durations),
        "misses": [
            {"q": q.q, "lang": q.lang, "accept": list(q.accept), "got": got}
            for q, got, ok in rows
            if not ok
        ],
    }


def calibrate(session_factory, index, questions: list[Question]) -> dict[str, dict]:
    """Per language, the refusal bar that maximises correct answers + refusals on ``questions``.

    Each question is answered once with no bar; a passage answer scoring ``s`` is kept under a
    bar ``t`` when ``s >= t`` and turns into a refusal otherwise.
    """
    scored: dict[str, list[tuple[Question, object]]] = defaultdict(list)
    for question in questions:
        scored[question.lang].append((question, ask(session_factory, index, question, -1.0)))
    bars = {}
    for lang, pairs in scored.items():
        candidates = sorted({round(a.score, 3) for _, a in pairs if a and a.source == "passage"})
        best = None
        for bar in [*candidates, 1.01]:
            correct = sum(
                (
                    "refuse" in q.accept
                    if a is not None and a.source == "passage" and a.score < bar
                    else judge(q, a)
                )
                for q, a in pairs
            )
            if best is None or correct > best[1]:
                best = (bar, correct)
        # Every bar in (previous score, best bar] gives the same result on this split: take the
        # middle, the bar least sensitive to a small shift of scores on new questions.
        below = [c for c in candidates if c < best[0]]
        bar = round((below[-1] + best[0]) / 2, 3) if below else best[0]
        bars[lang] = {"bar": bar, "correct": best[1], "n": len(pairs)}
    return bars


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoder", default="multilingual-e5-small", help="name or folder")
    parser.add_argument("--calibrate", action="store_true", help="set the bar, do not report")
    args = parser.parse_args(argv)

    from custom_components.encoder.assets import resolve_model_path

    encoder_dir = resolve_model_path(args.encoder)
    with tempfile.TemporaryDirectory(prefix="kefu-qa-") as tmp:
        started = time.perf_counter()
        session_factory, index = prepare(encoder_dir, Path(tmp))
        built_s = time.perf_counter() - started
        if args.calibrate:
            bars = calibrate(session_factory, index, load_questions(split="calibration"))
            for lang, found in sorted(bars.items()):
                print(f"{lang}: bar {found['bar']} ({found['correct']}/{found['n']} correct)")
            return 0
        result = evaluate(session_factory, index, load_questions(split="test"))
    latency = result["latency"]
    rows = [
        [name, result["counts"][name], round(acc, 3)]
        for name, acc in sorted(result["accuracy"].items())
    ]
    table = format_table(["questions", "n", "top-1 correct or correct refusal"], rows)
    table += (
        f"\n\nanswer latency: p50 {latency['p50_ms']:.1f} ms, p90 {latency['p90_ms']:.1f} ms "
        f"(n={latency['n']}); index of {len(index.passages)} passages built in {built_s:.1f} s"
    )
    write_results(
        "product_qa",
        {"encoder": str(encoder_dir), "passages": len(index.passages), **result},
        table,
    )
    for miss in result["misses"]:
        print(f"miss [{miss['lang']}] {miss['q']!r}: got {miss['got']}, want {miss['accept']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
