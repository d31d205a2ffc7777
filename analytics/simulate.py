"""Simulated, labelled Kefu conversations for the complaint-risk model (no labelled history yet).

``python -m analytics simulate --conversations N --seed S --out FILE.jsonl`` writes ``FILE.jsonl``
(broker bodies, one event per line, as ``python -m analytics consume --from-jsonl`` reads them)
and ``FILE.labels.jsonl`` (one line per conversation: its order, the order's delay, the label
and the hidden drivers). The same seed gives the same files, byte for byte.

Every figure computed on this data is a figure about these assumptions, not about customers.

**What a conversation looks like.** The events follow Kefu's dialogue as the recorded
conversations do (``tests/analytics/record_conversations.py``): ``action_session_start``, a
greeting or not, the request (``order_status`` → ``order_status_form`` with verification →
``action_show_order_status`` → ``utter_order_status_shipped`` / ``utter_order_tracking`` /
``utter_order_eta``; or ``refund_status`` → ``refund_form`` → ``action_show_refund_status`` →
``utter_refund_status_*``), Rasa's two-stage fallback (``nlu_fallback`` → ``utter_ask_rephrase``
→ the reworded message, reverted and re-logged with the same ``message_id``), a failed call
(``utter_try_again_later`` or ``utter_error_commerce_error``), and a closing message (thanks, or
the same request again in anger). English or Chinese per customer, texts from small templates;
the SentimentAnalyzer's frustration score is in each typed message's parse data.

**Generative assumptions** (per order, then per contact about it):

1. An order is late with probability 0.35; a late order's delay against the promised date is
   ``1 + Poisson(3)`` days (capped at 14), else 0. Its refund failed with probability 0.08.
   Each customer has a hidden temper ``u ~ N(0, 1)``.
2. Contacts about one order: ``1 + Poisson(0.15 + 0.18·delay + 0.8·refund_failed)``, at most 4,
   about 1.5 days apart. A contact is about the refund when the refund failed (p 0.7), else
   tracking. ``k`` is the number of earlier contacts about the same order.
3. In one contact: fallbacks ``~ Poisson(0.35)``; a failed action with probability 0.10.
4. Frustration of the request: ``f0 = σ(-2.2 + 0.25·delay + 0.5·k + 0.9·failed +
   0.4·fallbacks + 1.4·refund_failed_shown + 0.6·u + N(0, 0.6))``; each later message adds a
   drift ``0.08·(delay>0) + 0.15·failed - 0.05 ± 0.05``, plus ``N(0, 0.08)`` per message, clipped
   to [0, 1]. With ``f0 + drift > 0.55`` the closing message repeats the request angrily.
5. The label — a complaint opened or a rating of 1-2 after this conversation (never in its
   events, so the model cannot read the answer) — is Bernoulli(``σ(z)``) with
   ``z = -3.4 + 0.28·min(delay, 10) + 0.75·k + 0.9·failed + 1.3·refund_failed_shown +
   0.25·fallbacks + 1.2·last_frustration + 0.5·u + N(0, 0.5)``.

Sentiment is thus informative (through ``u`` and its own drivers) but noisy; the delay and the
repeated contacts drive the label beyond what the customer's words show — the property the
risk model's evaluation measures against a sentiment-only baseline.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

#: 2026-01-01T00:00Z; simulated orders are spread over the 30 days after it.
BASE = 1_767_225_600.0
DAY = 86_400.0
P_LATE = 0.35
P_REFUND_FAILED = 0.08
P_FAILED_ACTION = 0.10
MAX_CONTACTS = 4
MAX_DELAY = 14

TEXTS = {
    "en": {
        "greet": ["hi", "hello there", "hey"],
        "order_status": [
            "where is my order {n}?",
            "has {n} shipped yet",
            "my parcel {n} still hasn't arrived",
        ],
        "refund_status": ["what's happening with the refund for {n}", "refund for {n}?"],
        "inform": ["a***@example.com", "my email is b***@example.com"],
        "fallback": ["my thingy never came??", "uh the stuff", "???"],
        "thank": ["thanks", "ok thank you"],
        "angry": [
            "this is ridiculous, where is {n}",
            "it's been days, {n} is STILL not here",
            "unacceptable, I want my order {n}",
        ],
    },
    "zh": {
        "greet": ["你好", "在吗", "您好"],
        "order_status": ["我的订单{n}到哪了", "{n}发货了吗", "订单{n}怎么还没到"],
        "refund_status": ["{n}的退款怎么样了", "{n}退款到账了吗"],
        "inform": ["a***@example.com", "邮箱是b***@example.com"],
        "fallback": ["东西呢??", "那个啥", "？？？"],
        "thank": ["谢谢", "好的谢谢"],
        "angry": ["太离谱了，{n}到底在哪", "都好几天了{n}还没到", "气死了，我的订单{n}呢"],
    },
}


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


@dataclass
class Case:
    """One simulated conversation's ground truth (a line of ``FILE.labels.jsonl``)."""

    sender_id: str
    language: str
    order_number: str
    delay_days: int
    prior_contacts: int
    refund_failed: bool
    failed_action: bool
    fallbacks: int
    temper: float
    label: int


@dataclass
class Simulation:
    bodies: list[dict[str, Any]]
    cases: list[Case]


class _Conversation:
    """Builds one conversation's broker bodies in the shape Rasa's events have."""

    def __init__(self, sender_id: str, start: float, language: str, rng: random.Random) -> None:
        self.sender_id, self.t, self.language, self.rng = sender_id, start, language, rng
        self.bodies: list[dict[str, Any]] = []
        self.messages = 0

    def add(self, body: dict[str, Any], gap: float = 0.013) -> dict[str, Any]:
        self.t = round(self.t + gap, 3)
        self.bodies.append({"sender_id": self.sender_id, **body, "timestamp": self.t})
        return self.bodies[-1]

    def action(self, name: str, policy: str | None = "RulePolicy") -> None:
        self.add(
            {
                "event": "action",
                "name": name,
                "policy": policy,
                "confidence": 1.0,
                "action_text": None,
                "hide_rule_turn": False,
            },
            gap=0.2,
        )

    def listen(self) -> None:
        self.action("action_listen")

    def bot(self, response: str) -> None:
        self.add({"event": "bot", "metadata": {"utter_action": response}, "text": "", "data": {}})

    def slot(self, name: str, value: Any) -> None:
        self.add({"event": "slot", "name": name, "value": value})

    def loop(self, name: str | None) -> None:
        self.add({"event": "active_loop", "name": name})

    def text(self, kind: str, number: str = "") -> str:
        return self.rng.choice(TEXTS[self.language][kind]).format(n=number)

    def user(
        self,
        text: str,
        intent: str,
        frustration: float,
        *,
        confidence: float = 0.95,
        order: str | None = None,
        ranking: list[tuple[str, float]] | None = None,
        message_id: str | None = None,
    ) -> dict[str, Any]:
        if message_id is None:
            self.messages += 1
            message_id = f"{self.sender_id}-m{self.messages}"
        label = "negative" if frustration >= 0.4 else "neutral"
        entities: list[dict[str, Any]] = []
        if order:
            entities.append({"entity": "order_number", "value": order})
        entities += [
            {"entity": "language", "value": self.language, "extractor": "LanguageDetector"},
            {"entity": "sentiment", "value": label, "extractor": "SentimentAnalyzer"},
        ]
        parse_data = {
            "intent": {"name": intent, "confidence": confidence},
            "entities": entities,
            "text": text,
            "message_id": message_id,
            "metadata": {},
            "intent_ranking": [
                {"name": n, "confidence": c} for n, c in (ranking or [(intent, confidence)])
            ],
            "language": self.language,
            "sentiment": {"label": label, "frustration": round(frustration, 3)},
        }
        gap = 6.0 + 20.0 * self.rng.random()
        return self.add(
            {
                "event": "user",
                "text": text,
                "parse_data": parse_data,
                "input_channel": "rest",
                "message_id": message_id,
                "metadata": {},
            },
            gap=gap,
        )


def _poisson(rng: random.Random, lam: float) -> int:
    """Knuth's method (small means only)."""
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def _conversation(
    rng: random.Random,
    sender_id: str,
    start: float,
    language: str,
    number: str,
    *,
    delay: int,
    k: int,
    refund_failed: bool,
    temper: float,
) -> tuple[list[dict[str, Any]], Case]:
    c = _Conversation(sender_id, start, language, rng)
    refund = refund_failed and rng.random() < 0.7
    fallbacks = _poisson(rng, 0.35)
    failed = rng.random() < P_FAILED_ACTION
    z0 = (
        -1.8
        + 0.12 * delay
        + 0.25 * k
        + 0.6 * failed
        + 0.3 * fallbacks
        + 0.8 * refund
        + 0.8 * temper
        + rng.gauss(0, 0.7)
    )
    level = sigmoid(z0)
    drift = 0.08 * (delay > 0) + 0.15 * failed - 0.05 + rng.uniform(-0.05, 0.05)
    step = [0]

    def mood() -> float:
        value = level + drift * step[0] + rng.gauss(0, 0.08)
        step[0] += 1
        return min(1.0, max(0.0, value))

    c.action("action_session_start", policy=None)
    c.add({"event": "session_started"})
    c.listen()
    if rng.random() < 0.5:
        c.user(c.text("greet"), "greet", mood(), confidence=0.98)
        c.action("utter_greet")
        c.bot("utter_greet")
        c.listen()
    intent, form = ("refund_status", "refund_form") if refund else ("order_status", None)
    form = form or "order_status_form"
    request = c.text(intent, number)
    for _ in range(fallbacks):
        c.user(
            c.text("fallback"),
            "nlu_fallback",
            mood(),
            confidence=0.45,
            ranking=[("nlu_fallback", 0.45), (intent, 0.4), ("complaint", 0.2)],
        )
        c.action("action_two_stage_fallback")
        c.loop("action_two_stage_fallback")
        c.bot("utter_ask_rephrase")
        c.listen()
    first = c.user(request, intent, mood(), order=number)
    if fallbacks:  # the fallback ends: the reworded message is reverted and logged again
        c.action("action_two_stage_fallback")
        c.loop(None)
        c.add({"event": "rewind"})
        c.listen()
        again = {k: v for k, v in first.items() if k not in ("sender_id", "timestamp")}
        c.add(again)
    c.slot("order_number", number)
    c.action(form)
    c.loop(form)
    c.slot("requested_slot", "verify_contact")
    c.bot("utter_ask_verify_contact")
    c.listen()
    c.user(c.text("inform"), "inform", mood(), confidence=0.93)
    c.slot("verify_contact", "***")
    c.action(form)
    c.slot("verified_customer_id", 1)
    c.bot("utter_verified")
    c.slot("requested_slot", None)
    c.loop(None)
    if refund:
        c.action("action_show_refund_status")
        if failed:
            c.bot(rng.choice(["utter_try_again_later", "utter_error_commerce_error"]))
        else:
            c.bot("utter_refund_status_failed")
    else:
        c.action("action_show_order_status")
        if failed:
            c.bot(rng.choice(["utter_try_again_later", "utter_error_commerce_error"]))
        else:
            c.bot("utter_order_status_shipped")
            c.bot("utter_order_tracking")
            c.bot("utter_order_eta")
    c.listen()
    closing = mood()
    if level + drift > 0.55:
        c.user(c.text("angry", number), intent, closing, confidence=0.9, order=number)
        c.action("utter_apology")
        c.bot("utter_apology")
    else:
        c.user(c.text("thank"), "thank", closing, confidence=0.97)
        c.action("utter_you_are_welcome")
        c.bot("utter_you_are_welcome")
    c.listen()
    refund_shown = refund and not failed
    z = (
        -3.4
        + 0.28 * min(delay, 10)
        + 0.75 * k
        + 0.9 * failed
        + 1.3 * refund_shown
        + 0.25 * fallbacks
        + 1.2 * closing
        + 0.5 * temper
        + rng.gauss(0, 0.5)
    )
    label = int(rng.random() < sigmoid(z))
    case = Case(
        sender_id=sender_id,
        language=language,
        order_number=number,
        delay_days=delay,
        prior_contacts=k,
        refund_failed=refund_failed,
        failed_action=failed,
        fallbacks=fallbacks,
        temper=round(temper, 4),
        label=label,
    )
    return c.bodies, case


def simulate(conversations: int, seed: int, *, start: float = BASE) -> Simulation:
    """``conversations`` labelled conversations; the same ``seed`` gives the same ones."""
    rng = random.Random(seed)
    bodies: list[dict[str, Any]] = []
    cases: list[Case] = []
    order = 0
    while len(cases) < conversations:
        order += 1
        number = f"KF-{500000 + order}"
        language = "zh" if rng.random() < 0.5 else "en"
        delay = min(MAX_DELAY, 1 + _poisson(rng, 3.0)) if rng.random() < P_LATE else 0
        refund_failed = rng.random() < P_REFUND_FAILED
        temper = rng.gauss(0, 1)
        contacts = 1 + _poisson(rng, 0.15 + 0.18 * delay + 0.8 * refund_failed)
        first = start + rng.random() * 30 * DAY
        for k in range(min(contacts, MAX_CONTACTS)):
            if len(cases) >= conversations:
                break
            sender = f"sim-{language}-{len(cases) + 1:05d}"
            at = first + k * (1.5 * DAY + rng.random() * 3600)
            events, case = _conversation(
                rng,
                sender,
                at,
                language,
                number,
                delay=delay,
                k=k,
                refund_failed=refund_failed,
                temper=temper,
            )
            bodies += events
            cases.append(case)
    bodies.sort(key=lambda b: (b["timestamp"], b["sender_id"]))
    return Simulation(bodies=bodies, cases=cases)


def labels_path(out: Path) -> Path:
    """``FILE.jsonl`` → ``FILE.labels.jsonl``."""
    return out.with_name(out.name.removesuffix(".jsonl") + ".labels.jsonl")


def write(simulation: Simulation, out: Path) -> Path:
    """Write the bodies to ``out`` and the cases beside it; returns the labels file."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as f:
        for body in simulation.bodies:
            f.write(json.dumps(body, ensure_ascii=False, sort_keys=True) + "\n")
    labels = labels_path(out)
    with labels.open("w", encoding="utf-8") as f:
        for case in simulation.cases:
            f.write(json.dumps(asdict(case), ensure_ascii=False, sort_keys=True) + "\n")
    return labels
