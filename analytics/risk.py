"""Complaint risk: how likely an open conversation ends in a complaint or a rating of 1-2.

Features (:data:`FEATURES`) come from a conversation's facts (:mod:`analytics.facts`) plus two
things the facts of one conversation do not hold:

- ``prior_contacts``: earlier conversations about the same order, matched by the keyed hash of
  the order number (``analytics_conversations.order_keys``, :func:`analytics.events.order_key`);
- ``delay_days``: the order's delay against the promised date (a shipment's
  ``estimated_delivery``), from the commerce database (:func:`order_delays`) or, on simulated
  data, from the simulator's ground truth. 0 when on time or unknown.

The rest are read from the facts: the frustration trajectory (max, last, least-squares slope
over the customer's messages), failed actions (``error:*`` / ``unavailable`` outcome codes),
a failed refund shown (``utter_refund_status_failed``), fallbacks and rephrases.

The model is a **logistic regression** on standardised features (scikit-learn): the features
are few, monotone in the risk and roughly additive on the log-odds scale, so a linear model
fits them without the variance of a tree ensemble on a few thousand rows; its probabilities are
usable as a 0-1 score as they are; its coefficients say why a conversation scored high. The
baseline is the same model on the frustration features only (:data:`BASELINE_FEATURES`).

Evaluation (:func:`evaluate`) trains on simulated conversations (:mod:`analytics.simulate`),
split by order so that no order's contacts fall on both sides, and reports ROC-AUC and the
precision among the top 10 % of scores on the held-out part. Figures from it describe the
simulator's assumptions, not real customers.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from analytics.events import order_key
from analytics.facts import ConversationFacts, conversation_facts
from analytics.models import Conversation
from contract import HIGH_COMPLAINT_RISK

logger = logging.getLogger(__name__)

FEATURES = (
    "frustration_max",
    "frustration_last",
    "frustration_slope",
    "prior_contacts",
    "delay_days",
    "failed_actions",
    "refund_failed",
    "fallbacks",
    "rephrases",
)
BASELINE_FEATURES = ("frustration_max", "frustration_last", "frustration_slope")
#: Where ``risk-train`` saves the model by default.
DEFAULT_MODEL = Path("var/analytics/risk.joblib")
#: Env var naming the model the action server scores with (default :data:`DEFAULT_MODEL`).
MODEL_ENV = "KEFU_RISK_MODEL"
TOP_SHARE = 0.10
#: The frustration slope is clipped to this: a conversation scored live after two or three
#: messages has slopes (0.4 from 0.5 to 0.9) that complete conversations, the training data,
#: almost never show (1st-99th percentile -0.13..0.20), and a linear model extrapolates them.
SLOPE_LIMIT = 0.2
FAILED_REFUND = "utter_refund_status_failed"


def frustration_slope(scores: Sequence[float]) -> float:
    """Least-squares slope of the scores against message number (0 for fewer than two)."""
    n = len(scores)
    if n < 2:
        return 0.0
    mean_x, mean_y = (n - 1) / 2, sum(scores) / n
    num = sum((i - mean_x) * (s - mean_y) for i, s in enumerate(scores))
    den = sum((i - mean_x) ** 2 for i in range(n))
    return num / den


def features(
    facts: ConversationFacts, *, prior_contacts: int = 0, delay_days: float | None = None
) -> dict[str, float]:
    """The :data:`FEATURES` of one conversation."""
    users = [t for t in facts.turns if t.kind == "user"]
    scores = [t.frustration for t in users if t.frustration is not None]
    actions = [t for t in facts.turns if t.kind == "action"]
    return {
        "frustration_max": max(scores, default=0.0),
        "frustration_last": scores[-1] if scores else 0.0,
        "frustration_slope": max(-SLOPE_LIMIT, min(SLOPE_LIMIT, frustration_slope(scores))),
        "prior_contacts": float(prior_contacts),
        "delay_days": float(max(0.0, delay_days or 0.0)),
        "failed_actions": float(
            sum(1 for t in actions if (t.outcome or "").startswith(("error:", "unavailable")))
        ),
        "refund_failed": float(any(FAILED_REFUND in t.responses for t in actions)),
        "fallbacks": float(facts.fallbacks),
        "rephrases": float(sum(t.rephrased for t in users)),
    }


def prior_contacts(conversations: Iterable[tuple[str, float, Iterable[str]]]) -> dict[str, int]:
    """Per conversation, how many earlier conversations touched one of its orders.

    Args:
        conversations: ``(sender_id, started_at, order_keys)`` of each conversation.
    """
    rows = sorted(((s, t, set(k)) for s, t, k in conversations), key=lambda r: (r[1], r[0]))
    seen: dict[str, set[str]] = defaultdict(set)
    result = {}
    for sender, _, keys in rows:
        earlier = set().union(*(seen[k] for k in keys)) if keys else set()
        result[sender] = len(earlier)
        for k in keys:
            seen[k].add(sender)
    return result


@dataclass
class Dataset:
    rows: list[dict[str, float]]
    labels: list[int]
    groups: list[str]

    def matrix(self, names: Sequence[str]) -> list[list[float]]:
        return [[row[n] for n in names] for row in self.rows]


def simulated_dataset(conversations: int, seed: int, *, order_secret: str = "sim") -> Dataset:
    """Features and labels of simulated conversations, read through the facts as real ones."""
    from analytics.events import reduce_event
    from analytics.simulate import simulate

    sim = simulate(conversations, seed)
    events: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for body in sim.bodies:
        events[body["sender_id"]].append(reduce_event(body, order_secret))
    facts = {
        c.sender_id: conversation_facts(c.sender_id, events[c.sender_id], order_secret=order_secret)
        for c in sim.cases
    }
    prior = prior_contacts((s, f.started_at, f.order_keys) for s, f in facts.items())
    delays = {order_key(c.order_number, order_secret): c.delay_days for c in sim.cases}
    rows = []
    for case in sim.cases:
        f = facts[case.sender_id]
        delay = max((delays.get(k, 0) for k in f.order_keys), default=0)
        rows.append(features(f, prior_contacts=prior[case.sender_id], delay_days=delay))
    return Dataset(
        rows=rows,
        labels=[c.label for c in sim.cases],
        groups=[c.order_number for c in sim.cases],
    )


def _pipeline():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))


def precision_at_top(labels: Sequence[int], scores: Sequence[float], share: float) -> float:
    """The share of positives among the ``share`` highest scores (at least one row)."""
    n = max(1, int(round(len(scores) * share)))
    ranked = sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:n]
    return sum(labels[i] for i in ranked) / n


def evaluate(conversations: int = 2000, seed: int = 7, test_size: float = 0.3) -> dict[str, Any]:
    """Train the model and the sentiment-only baseline on simulated data; score the held-out part."""
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import GroupShuffleSplit

    data = simulated_dataset(conversations, seed)
    split = GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
    train, test = next(split.split(data.rows, data.labels, data.groups))
    y_train = [data.labels[i] for i in train]
    y_test = [data.labels[i] for i in test]
    result: dict[str, Any] = {
        "data": "simulated (analytics.simulate)",
        "conversations": conversations,
        "seed": seed,
        "train": len(train),
        "test": len(test),
        "positive_rate_test": round(sum(y_test) / len(y_test), 4),
        "model": "logistic regression (standardised features)",
        "top_share": TOP_SHARE,
        "results": {},
    }
    for name, names in (("risk model", FEATURES), ("sentiment-only baseline", BASELINE_FEATURES)):
        x = data.matrix(names)
        model = _pipeline().fit([x[i] for i in train], y_train)
        scores = list(model.predict_proba([x[i] for i in test])[:, 1])
        result["results"][name] = {
            "features": list(names),
            "roc_auc": round(float(roc_auc_score(y_test, scores)), 4),
            "precision_top_10": round(precision_at_top(y_test, scores, TOP_SHARE), 4),
            "at_cutoff": at_cutoff(y_test, scores, HIGH_COMPLAINT_RISK),
        }
    return result


def at_cutoff(labels: Sequence[int], scores: Sequence[float], cutoff: float) -> dict[str, float]:
    """What acting at ``cutoff`` does: the share of conversations offered a person, and the
    precision and recall of those offers."""
    flagged = [label for label, score in zip(labels, scores, strict=True) if score >= cutoff]
    positives = sum(labels)
    return {
        "cutoff": cutoff,
        "flagged_share": round(len(flagged) / max(1, len(labels)), 4),
        "precision": round(sum(flagged) / len(flagged), 4) if flagged else 0.0,
        "recall": round(sum(flagged) / positives, 4) if positives else 0.0,
    }


def format_table(result: dict[str, Any]) -> str:
    """The evaluation as a Markdown table."""
    lines = [
        "| model | features | ROC-AUC | precision at top 10% | offered at "
        f"{HIGH_COMPLAINT_RISK} | their precision | recall |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in result["results"].items():
        cut = r["at_cutoff"]
        lines.append(
            f"| {name} | {len(r['features'])} | {r['roc_auc']:.3f} | {r['precision_top_10']:.3f} "
            f"| {cut['flagged_share']:.1%} | {cut['precision']:.3f} | {cut['recall']:.3f} |"
        )
    lines.append(
        f"\n{result['conversations']} simulated conversations (seed {result['seed']}), "
        f"{result['test']} held out by order; positive rate {result['positive_rate_test']:.3f}."
    )
    return "\n".join(lines)


@dataclass
class RiskModel:
    """A trained pipeline and the feature order it expects."""

    pipeline: Any
    feature_names: tuple[str, ...] = FEATURES

    def predict(self, row: dict[str, float]) -> float:
        return float(self.pipeline.predict_proba([[row[n] for n in self.feature_names]])[0, 1])


def train(conversations: int = 2000, seed: int = 7) -> RiskModel:
    """The risk model trained on every simulated conversation."""
    data = simulated_dataset(conversations, seed)
    return RiskModel(_pipeline().fit(data.matrix(FEATURES), data.labels))


def model_path() -> Path:
    """``$KEFU_RISK_MODEL``, else :data:`DEFAULT_MODEL`."""
    return Path(os.environ.get(MODEL_ENV, "").strip() or DEFAULT_MODEL)


def save(model: RiskModel, path: Path) -> None:
    import joblib

    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, path)


def load(path: Path = DEFAULT_MODEL) -> RiskModel:
    import joblib

    return joblib.load(path)


def score(
    facts: ConversationFacts,
    *,
    prior_contacts: int = 0,
    delay_days: float | None = None,
    model: RiskModel | None = None,
) -> float:
    """The 0-1 risk that the conversation ends in a complaint or a rating of 1-2.

    Args:
        facts: the conversation's facts so far.
        prior_contacts: earlier conversations about its orders (:func:`contacts_before`).
        delay_days: its order's delay against the promised date (:func:`order_delays`).
        model: a trained model; default :data:`DEFAULT_MODEL`.
    """
    model = model or load()
    row = features(facts, prior_contacts=prior_contacts, delay_days=delay_days)
    return min(1.0, max(0.0, model.predict(row)))


# ---- the commerce side: late orders and their contacts ---------------------------------------


def _today(today: date | None) -> date:
    return today or datetime.now(timezone.utc).date()


def late_shipments(
    commerce_engine: sa.engine.Engine,
    today: date | None = None,
    *,
    numbers: Sequence[str] | None = None,
) -> list[dict]:
    """Undelivered shipments past their ``estimated_delivery`` on ``today`` (UTC) of orders that
    are still open (not delivered, cancelled or returned), with their order number; only those
    of the orders ``numbers`` when given."""
    from commerce.models import ORDER_CANCELLED, ORDER_DELIVERED, ORDER_RETURNED, Order, Shipment

    closed = (ORDER_CANCELLED, ORDER_DELIVERED, ORDER_RETURNED)
    day = _today(today)
    stmt = (
        sa.select(Order.number, Order.status, Shipment.estimated_delivery, Shipment.carrier)
        .join(Shipment, Shipment.order_id == Order.id)
        .where(Shipment.estimated_delivery.is_not(None))
        .where(Shipment.estimated_delivery < day)
        .where(Shipment.delivered_at.is_(None))
        .where(Order.delivered_at.is_(None))
        .where(Order.status.not_in(closed))
        .order_by(Shipment.estimated_delivery, Order.number)
    )
    if numbers is not None:
        stmt = stmt.where(Order.number.in_(list(numbers)))
    with commerce_engine.connect() as conn:
        rows = conn.execute(stmt).all()
    late: dict[str, dict] = {}
    for number, status, eta, carrier in rows:
        days = (day - eta).days
        if number not in late or days > late[number]["days_late"]:
            late[number] = {
                "number": number,
                "status": status,
                "estimated_delivery": eta.isoformat(),
                "days_late": days,
                "carrier": carrier,
            }
    return list(late.values())


def order_delays(
    commerce_engine: sa.engine.Engine, order_secret: str, today: date | None = None
) -> dict[str, int]:
    """Order key → days late, for the late orders (the ``delay_days`` feature)."""
    return {
        order_key(row["number"], order_secret): row["days_late"]
        for row in late_shipments(commerce_engine, today)
    }


def order_delay(
    commerce_engine: sa.engine.Engine, numbers: Sequence[str], today: date | None = None
) -> int:
    """Days the latest of the orders ``numbers`` is late (0 when none is, or none is known)."""
    if not numbers:
        return 0
    late = late_shipments(commerce_engine, today, numbers=numbers)
    return max((row["days_late"] for row in late), default=0)


def contacts_before(analytics_engine: sa.engine.Engine, facts: ConversationFacts) -> int:
    """Conversations about one of ``facts``' orders that started before it."""
    if not facts.order_keys:
        return 0
    match = sa.or_(*(Conversation.order_keys.contains(k) for k in facts.order_keys))
    stmt = (
        sa.select(sa.func.count())
        .select_from(Conversation)
        .where(match)
        .where(Conversation.started_at < facts.started_at)
        .where(Conversation.sender_id != facts.sender_id)
    )
    with analytics_engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())


def late_orders_with_contacts(
    commerce_engine: sa.engine.Engine,
    analytics_engine: sa.engine.Engine,
    *,
    order_secret: str,
    today: date | None = None,
    min_contacts: int = 1,
) -> list[dict[str, Any]]:
    """Late orders that customers already asked about: the proactive outreach list.

    A late order is an undelivered shipment past its ``estimated_delivery``; its contacts are
    the analytics conversations whose ``order_keys`` hold the order's keyed hash (computed with
    ``order_secret``, the same key the consumer used). Most days late first.
    """
    late = late_shipments(commerce_engine, today)
    by_key = {order_key(row["number"], order_secret): row for row in late}
    if not by_key:
        return []
    match = sa.or_(*(Conversation.order_keys.contains(k) for k in by_key))
    stmt = sa.select(
        Conversation.sender_id, Conversation.started_at, Conversation.order_keys
    ).where(match)
    contacts: dict[str, list[tuple[float, str]]] = defaultdict(list)
    with analytics_engine.connect() as conn:
        for sender, started, keys in conn.execute(stmt):
            for key in (keys or "").split(","):
                if key in by_key:
                    contacts[key].append((float(started), sender))
    result = []
    for key, row in by_key.items():
        found = sorted(contacts.get(key, []))
        if len(found) < min_contacts:
            continue
        result.append(
            {
                **row,
                "order_key": key,
                "contacts": len(found),
                "last_contact_at": found[-1][0] if found else None,
                "conversations": [s for _, s in found],
            }
        )
    result.sort(key=lambda r: (-r["days_late"], -r["contacts"], r["number"]))
    return result


# ---- live scoring: the action server asks about the conversation it is serving -------------


class LiveRisk:
    """Scores an open conversation from its Rasa events, for the action server.

    The same features as training (:func:`features` over :func:`conversation_facts` of the
    reduced events), with ``delay_days`` from the commerce database for the orders the caller
    names and ``prior_contacts`` from the analytics tables (conversations the consumer has
    already read). The model loads once; it is ``None`` until ``make risk-model`` has trained
    it, and then every score is ``None`` (no offer, no flag) rather than a guess. A database
    that cannot answer costs its feature (0, logged), never the conversation.

    Args:
        model_path: the trained model (:data:`DEFAULT_MODEL`).
        commerce_engine: the commerce database (default: ``commerce.config.database_url()``).
        analytics_engine: the analytics database (default: :func:`analytics.db.engine`).
        order_secret: key of the order-number hashes (default: ``commerce.config.hash_secret()``,
            the key the consumer uses, so the keys match the stored conversations').
    """

    def __init__(
        self,
        model_path: Path = DEFAULT_MODEL,
        *,
        commerce_engine: sa.engine.Engine | None = None,
        analytics_engine: sa.engine.Engine | None = None,
        order_secret: str | None = None,
    ) -> None:
        self.model_path = Path(model_path)
        self._commerce = commerce_engine
        self._analytics = analytics_engine
        self._secret = order_secret
        self._model: RiskModel | None = None
        self._loaded_mtime: float | None = None
        self._warned = False

    @property
    def model(self) -> RiskModel | None:
        """The trained model, reloaded when ``risk-train`` rewrote the file; None without one."""
        try:
            mtime = self.model_path.stat().st_mtime
        except OSError:
            if not self._warned:
                logger.warning(
                    "no complaint-risk model at %s (make risk-model): conversations are not scored",
                    self.model_path,
                )
                self._warned = True
            self._model, self._loaded_mtime = None, None
            return None
        self._warned = False
        if self._model is None or mtime != self._loaded_mtime:
            self._model, self._loaded_mtime = load(self.model_path), mtime
        return self._model

    @property
    def order_secret(self) -> str:
        if self._secret is None:
            from commerce.config import hash_secret

            self._secret = hash_secret()
        return self._secret

    def _commerce_engine(self) -> sa.engine.Engine:
        if self._commerce is None:
            from commerce.db import make_engine

            self._commerce = make_engine()
        return self._commerce

    def _analytics_engine(self) -> sa.engine.Engine:
        if self._analytics is None:
            from analytics import db

            self._analytics = db.engine()
        return self._analytics

    def score(
        self,
        sender_id: str,
        events: Iterable[dict[str, Any]],
        *,
        order_numbers: Sequence[str] = (),
        today: date | None = None,
    ) -> float | None:
        """The 0-1 risk of the conversation ``sender_id`` so far; None without a model.

        Args:
            sender_id: the conversation.
            events: its Rasa events as the tracker holds them (oldest first).
            order_numbers: the orders it is about (their delay is a feature).
            today: the day delays count from (default: UTC today).
        """
        from analytics.events import MalformedEvent, check_event

        model = self.model
        if model is None:
            return None
        secret = self.order_secret
        reduced = []
        for event in events:
            # Read as the consumer reads them: what it would skip does not count here either.
            try:
                reduced.append(check_event(event, sender_id, order_secret=secret).data)
            except MalformedEvent:
                continue
        facts = conversation_facts(sender_id, reduced, order_secret=secret)
        # The task's order counts even where no event of this conversation named it yet.
        named = {order_key(n, secret) for n in order_numbers} - {None}
        facts = replace(facts, order_keys=sorted(set(facts.order_keys) | named))
        try:
            delay = order_delay(self._commerce_engine(), order_numbers, today)
        except SQLAlchemyError as e:
            logger.warning("complaint risk: order delay unknown (%s)", type(e).__name__)
            delay = 0
        try:
            prior = contacts_before(self._analytics_engine(), facts)
        except SQLAlchemyError as e:
            # No analytics tables yet (the consumer has never run) is the common case.
            logger.info("complaint risk: prior contacts unknown (%s)", type(e).__name__)
            prior = 0
        return score(facts, prior_contacts=prior, delay_days=delay, model=model)


# ---- command line (``python -m analytics simulate | risk-eval | risk-train | risk-outreach``) --


def _cmd_simulate(args) -> int:
    from analytics.simulate import simulate, write

    sim = simulate(args.conversations, args.seed)
    labels = write(sim, Path(args.out))
    positives = sum(c.label for c in sim.cases)
    print(
        f"{len(sim.cases)} simulated conversations ({positives} labelled complaint/bad rating), "
        f"{len(sim.bodies)} events in {args.out}; labels in {labels}"
    )
    return 0


def _cmd_risk_eval(args) -> int:
    import json

    result = evaluate(args.conversations, args.seed)
    print(format_table(result))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"JSON in {out}")
    return 0


def _cmd_risk_train(args) -> int:
    model = train(args.conversations, args.seed)
    save(model, Path(args.out))
    print(f"risk model (trained on {args.conversations} simulated conversations) in {args.out}")
    return 0


def _cmd_risk_outreach(args) -> int:
    import json

    from analytics import db
    from commerce.config import hash_secret
    from commerce.db import make_engine

    rows = late_orders_with_contacts(
        make_engine(args.commerce_url) if args.commerce_url else make_engine(),
        db.engine(args.database_url),
        order_secret=hash_secret(),
        today=date.fromisoformat(args.today) if args.today else None,
        min_contacts=args.min_contacts,
    )
    print(json.dumps(rows, indent=2, ensure_ascii=False))
    return 0


def add_commands(sub, common) -> None:
    """The risk subcommands on ``python -m analytics``'s parser."""
    simulate = sub.add_parser("simulate", help="write simulated, labelled conversations")
    simulate.add_argument("--conversations", type=int, default=2000)
    simulate.add_argument("--seed", type=int, default=7)
    simulate.add_argument("--out", required=True, help="FILE.jsonl (labels: FILE.labels.jsonl)")
    simulate.set_defaults(func=_cmd_simulate)

    evaluate_ = sub.add_parser(
        "risk-eval", help="complaint-risk model vs sentiment-only baseline on simulated data"
    )
    evaluate_.add_argument("--conversations", type=int, default=2000)
    evaluate_.add_argument("--seed", type=int, default=7)
    evaluate_.add_argument("--out", default="var/analytics/risk_eval.json", help="JSON result")
    evaluate_.set_defaults(func=_cmd_risk_eval)

    train_ = sub.add_parser("risk-train", help="train the complaint-risk model (simulated data)")
    train_.add_argument("--conversations", type=int, default=2000)
    train_.add_argument("--seed", type=int, default=7)
    train_.add_argument("--out", default=str(DEFAULT_MODEL))
    train_.set_defaults(func=_cmd_risk_train)

    outreach = sub.add_parser(
        "risk-outreach",
        parents=[common],
        help="late orders customers already asked about (proactive outreach list, JSON)",
    )
    outreach.add_argument("--commerce-url", help="commerce database (default: $KEFU_DATABASE_URL)")
    outreach.add_argument("--min-contacts", type=int, default=1)
    outreach.add_argument("--today", help="the day to count delays from, ISO (default: UTC today)")
    outreach.set_defaults(func=_cmd_risk_outreach)
