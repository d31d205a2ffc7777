"""A conversation's events → its turns, its tasks and its facts (pure; no database here).

Read in order (by timestamp, then arrival), the events of one conversation say:

- **user turns**: language (the LanguageDetector's, else the ``language`` slot), intent and
  confidence, the nearest real intent of an ``nlu_fallback`` (the runner-up), fallback yes/no
  (``nlu_fallback`` or Rasa's core fallback action), the SentimentAnalyzer's frustration score,
  the satisfaction rating the message set, and whether the next message rephrased it or a
  handoff followed. The copy of a message that Rasa's two-stage fallback re-logs after the
  customer clarified (same ``message_id``) is not a new turn.
- **action turns**: the action, the responses it uttered (``utter_action`` of its bot events),
  its outcome code (``ok``, ``error:<code>`` for ``utter_error_<code>``,
  ``not_eligible:<reason>``, ``unavailable``, ``handoff``, ``handoff_refused``) and what it did
  to a form (``started`` / ``completed`` / ``stopped`` / ``abandoned``).
- **agent turns**: messages an agent wrote in the console (bot events with ``kefu_agent``).
- **tasks**: one per form run or one-shot flow, with its flow and outcome — ``completed``,
  ``failed`` (the submit action answered with an error), ``stopped`` (``form_stopped``: a
  validator gave up), ``abandoned`` (the customer stopped it, another form or a new session
  took over) or ``open`` (still running at the last event).
- **the conversation**: language, flows touched, handoff and its reason, time to the first
  agent reply, CSAT (the last rating), frustration max/last, fallbacks, masked order numbers,
  and containment (no handoff) / resolved (no handoff and a completed task).

Handoff reasons, from what led to ``action_handoff``: ``asked`` (the customer asked for a
person), ``complaint`` / ``frustration`` / ``form_failed`` / ``fallback`` / ``risk`` /
``payment`` (the customer said yes to a person offered by a complaint, the frustration policy,
a form that gave up, a fallback, a task's action on a high complaint risk, a payment problem),
``other``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from analytics.events import order_refs
from contract import frustration_of, rating_of

FALLBACK_INTENT = "nlu_fallback"
#: Actions that mean the bot did not understand (Rasa's core fallback and its give-up).
FALLBACK_ACTIONS = frozenset({"action_default_fallback"})
HANDOFF_ACTION = "action_handoff"
HANDOFF_INTENT = "human_handoff"
#: Messages that ask for or accept a person (not what the bot failed at).
HANDOFF_ANSWERS = frozenset({HANDOFF_INTENT, "affirm", "deny"})
DEACTIVATE_ACTION = "action_deactivate_loop"
#: Answers to a yes/no question (the fallback's "did you mean …?" included): not a new request.
ANSWER_INTENTS = frozenset({"affirm", "deny", "out_of_scope"})
#: Intents a form or a conversation repeats on purpose, so the same one twice is no rephrase
#: (two FAQs are two questions under the one retrieval intent).
NOT_REPHRASE_INTENTS = frozenset(
    {*ANSWER_INTENTS, "inform", "thank", "greet", "goodbye", "faq", "chitchat", "decline"}
)
#: Actions that are bookkeeping, not something the customer sees the bot do.
NOT_TURNS = frozenset({"action_listen", "action_session_start"})

#: Form → flow, and the action a completed form runs to do the task.
FORM_FLOWS = {
    "order_status_form": "tracking",
    "cancel_form": "cancel",
    "address_form": "address",
    "return_form": "return",
    "exchange_form": "exchange",
    "refund_form": "refund",
    "stock_form": "stock",
    "restock_form": "restock",
}
SUBMIT_ACTIONS = {
    "action_show_order_status": "tracking",
    "action_cancel_order": "cancel",
    "action_change_address": "address",
    "action_open_return": "return",
    "action_open_exchange": "exchange",
    "action_show_refund_status": "refund",
    "action_check_stock": "stock",
    "action_subscribe_restock": "restock",
}
#: Flows done by one action (or one response) rather than a form.
ONE_SHOT_FLOWS = {
    "utter_faq": "faq",
    "action_open_complaint": "complaint",
    "action_recommend_products": "recommend",
    # A request Kefu does not handle, answered with a redirect (actions/scope.py): its own
    # outcome, counted apart from the tasks (a redirect contains a conversation, it does not
    # resolve it).
    "action_decline": "declined",
}
#: The intents that open each flow (a flow is touched even when its form never started).
INTENT_FLOWS = {
    "order_status": "tracking",
    "cancel_order": "cancel",
    "change_address": "address",
    "return_item": "return",
    "exchange_item": "exchange",
    "refund_status": "refund",
    "check_stock": "stock",
    "subscribe_restock": "restock",
    "faq": "faq",
    "complaint": "complaint",
    "recommend": "recommend",
    "decline": "declined",
}
FLOWS = (
    "tracking",
    "cancel",
    "address",
    "return",
    "exchange",
    "refund",
    "stock",
    "restock",
    "faq",
    "complaint",
    "recommend",
    "declined",
)
#: Flows that end the customer's request without doing it for them.
NOT_RESOLVING_FLOWS = frozenset({"declined"})
#: Who offered the person the customer then accepted → the handoff's reason.
OFFER_SOURCES = {
    "action_open_complaint": "complaint",
    "action_offer_human_frustrated": "frustration",
    "action_default_fallback": "fallback",
    "action_payment_problem": "payment",
}
#: The offer a task's action makes when the conversation's complaint risk is high.
RISK_OFFER = "utter_offer_human_risk"
HANDOFF_REASONS = (
    "asked",
    "complaint",
    "frustration",
    "form_failed",
    "fallback",
    "risk",
    "payment",
    "other",
)

OK = "ok"
TASK_COMPLETED = "completed"
TASK_FAILED = "failed"
TASK_STOPPED = "stopped"
TASK_ABANDONED = "abandoned"
TASK_OPEN = "open"


def outcome_of(response: str) -> str | None:
    """The outcome code a response stands for, or None for an ordinary answer."""
    if response.startswith("utter_error_"):
        return "error:" + response.removeprefix("utter_error_")
    if response.startswith("utter_return_not_eligible_"):
        return "not_eligible:" + response.removeprefix("utter_return_not_eligible_")
    if response in ("utter_try_again_later", "utter_service_trouble"):
        return "unavailable"
    if response == "utter_handoff_too_many":
        return "handoff_refused"
    return None


@dataclass
class Turn:
    """One row of ``analytics_turns``."""

    position: int
    kind: str  # user | action | agent
    timestamp: float
    language: str | None = None
    intent: str | None = None
    confidence: float | None = None
    nearest_intent: str | None = None
    fallback: bool = False
    frustration: float | None = None
    rephrased: bool = False
    followed_by_handoff: bool = False
    rating: int | None = None
    action: str | None = None
    responses: list[str] = field(default_factory=list)
    outcome: str | None = None
    form: str | None = None
    form_event: str | None = None
    handoff_reason: str | None = None
    agent: str | None = None


@dataclass
class Task:
    """One row of ``analytics_tasks``: a form run or a one-shot flow."""

    position: int
    flow: str
    started_at: float
    form: str | None = None
    outcome: str = TASK_OPEN
    outcome_code: str | None = None
    ended_at: float | None = None


@dataclass
class ConversationFacts:
    """One row of ``analytics_conversations`` and the conversation's turns and tasks."""

    sender_id: str
    started_at: float
    ended_at: float
    events: int
    language: str | None
    user_messages: int
    fallbacks: int
    flows: list[str]
    handoff: bool
    handoff_reason: str | None
    handoff_at: float | None
    first_agent_reply_at: float | None
    agent_wait_s: float | None
    agent: str | None
    csat: int | None
    frustration_max: float | None
    frustration_last: float | None
    order_numbers: list[str]
    order_keys: list[str]
    contained: bool
    resolved: bool
    turns: list[Turn]
    tasks: list[Task]


class _Reader:
    """Walks one conversation's events, keeping the state the facts need."""

    def __init__(self, sender_id: str, order_secret: str) -> None:
        self.sender_id = sender_id
        self.order_secret = order_secret
        self.turns: list[Turn] = []
        self.tasks: list[Task] = []
        self.slots: dict[str, Any] = {}
        self.user: Turn | None = None  # latest user turn
        self.substantive: Turn | None = None  # latest user turn that was no yes/no answer
        self.last_message_id: str | None = None
        self.action: Turn | None = None  # action running now (until action_listen)
        self.form_task: Task | None = None
        self.submit_task: dict[str, Task] = {}  # flow → completed form waiting for its action
        self.offer_source: str | None = None
        self.handoff_reason: str | None = None
        self.handoff_at: float | None = None
        self.first_agent_reply_at: float | None = None
        self.agent: str | None = None
        self.csat: int | None = None
        self.flows: list[str] = []
        self.orders: dict[str, str] = {}  # key → masked

    # --- helpers -------------------------------------------------------------------------------

    def touch(self, flow: str) -> None:
        if flow not in self.flows:
            self.flows.append(flow)

    def note_order(self, value: Any) -> None:
        # Reduced events hold ``{"masked", "key"}`` refs; a raw event the number itself.
        items = value if isinstance(value, list) else [value]
        if not all(isinstance(i, dict) for i in items):
            items = order_refs(value, self.order_secret)
        for ref in items:
            if ref.get("masked") and ref.get("key"):
                self.orders.setdefault(str(ref["key"]), str(ref["masked"]))

    def end_form(self, outcome: str, ts: float) -> None:
        task = self.form_task
        if task is None:
            return
        task.outcome, task.ended_at = outcome, ts
        if outcome == TASK_COMPLETED:
            self.submit_task[task.flow] = task
        self.form_task = None

    def start_task(self, position: int, flow: str, ts: float, form: str | None) -> Task:
        task = Task(position=position, flow=flow, started_at=ts, form=form)
        self.tasks.append(task)
        self.touch(flow)
        return task

    # --- events --------------------------------------------------------------------------------

    def read(self, position: int, event: dict[str, Any]) -> None:
        kind = event.get("event")
        ts = float(event["timestamp"])
        handler = getattr(self, f"on_{kind}", None)
        if handler is not None:
            handler(position, event, ts)

    def on_session_started(self, position: int, event: dict[str, Any], ts: float) -> None:
        self.end_form(TASK_ABANDONED, ts)
        self.slots = {}
        self.action = None

    on_restart = on_session_started

    def on_user(self, position: int, event: dict[str, Any], ts: float) -> None:
        self.action = None
        message_id = event.get("message_id")
        if message_id and message_id == self.last_message_id:
            return  # the two-stage fallback re-logs the clarified message: not a new turn
        self.last_message_id = message_id
        parse_data = event.get("parse_data") or {}
        intent = (parse_data.get("intent") or {}).get("name")
        confidence = (parse_data.get("intent") or {}).get("confidence")
        nearest = intent
        if intent == FALLBACK_INTENT:
            ranked = [r.get("name") for r in parse_data.get("intent_ranking") or []]
            nearest = next((n for n in ranked if n and n != FALLBACK_INTENT), intent)
        language = parse_data.get("language") or self.slots.get("language")
        turn = Turn(
            position=position,
            kind="user",
            timestamp=ts,
            language=language if isinstance(language, str) else None,
            intent=intent,
            confidence=float(confidence) if isinstance(confidence, (int, float)) else None,
            nearest_intent=nearest,
            fallback=intent == FALLBACK_INTENT,
            # Button payloads skip the NLU pipeline: no sentiment, no score (not a calm 0).
            frustration=frustration_of(parse_data) if parse_data.get("sentiment") else None,
        )
        if intent not in ANSWER_INTENTS:
            # The customer's next own message (not a yes/no to a question) says whether the
            # previous one was understood: a fallback again, or the same request reworded.
            previous = self.substantive
            if previous is not None:
                same = intent == previous.nearest_intent and intent not in NOT_REPHRASE_INTENTS
                previous.rephrased = turn.fallback or same
            self.substantive = turn
        self.turns.append(turn)
        self.user = turn
        if intent in INTENT_FLOWS:
            self.touch(INTENT_FLOWS[intent])
        for entity in parse_data.get("entities") or []:
            if entity.get("entity") == "order_number":
                self.note_order(entity.get("value"))

    def on_slot(self, position: int, event: dict[str, Any], ts: float) -> None:
        name, value = event.get("name"), event.get("value")
        self.slots[name] = value
        if name == "order_number" and value:
            self.note_order(value)
        elif name == "rating":
            rating = rating_of(value)
            if rating is not None:
                self.csat = rating
                if self.user is not None:
                    self.user.rating = rating

    def on_action(self, position: int, event: dict[str, Any], ts: float) -> None:
        name = event.get("name")
        if name in NOT_TURNS:
            self.action = None
            return
        turn = Turn(position=position, kind="action", timestamp=ts, action=name, outcome=OK)
        self.turns.append(turn)
        self.action = turn
        if name in FALLBACK_ACTIONS and self.user is not None:
            self.user.fallback = True
        if name in ONE_SHOT_FLOWS:
            task = self.start_task(position, ONE_SHOT_FLOWS[name], ts, None)
            task.outcome, task.ended_at = TASK_COMPLETED, ts
            self.submit_task[task.flow] = task
        if name == DEACTIVATE_ACTION:
            turn.form = self.form_task.form if self.form_task else None
        if name == HANDOFF_ACTION:
            turn.handoff_reason = self._handoff_reason()

    def _handoff_reason(self) -> str:
        intent = self.user.intent if self.user else None
        if intent == HANDOFF_INTENT:
            return "asked"
        if intent == "affirm" and self.offer_source:
            return self.offer_source
        return "other"

    def on_bot(self, position: int, event: dict[str, Any], ts: float) -> None:
        metadata = event.get("metadata") or {}
        agent = metadata.get("kefu_agent")
        if agent:
            self.turns.append(Turn(position=position, kind="agent", timestamp=ts, agent=agent))
            if self.handoff_at is not None and self.first_agent_reply_at is None:
                self.first_agent_reply_at, self.agent = ts, str(agent)
            return
        response = metadata.get("utter_action")
        action = self.action
        if action is None or not isinstance(response, str):
            return  # said outside a prediction (the console's "agent joined")
        action.responses.append(response)
        code = outcome_of(response)
        if code and action.outcome == OK:
            action.outcome = code
            flow = SUBMIT_ACTIONS.get(action.action or "") or ONE_SHOT_FLOWS.get(
                action.action or ""
            )
            task = self.submit_task.get(flow or "")
            if task is not None and task.outcome == TASK_COMPLETED:
                task.outcome, task.outcome_code = TASK_FAILED, code
            form_task = self.form_task
            if form_task is not None and action.action == form_task.form:
                form_task.outcome_code = form_task.outcome_code or code  # why it will stop
        if response == "utter_offer_human":
            name = action.action or ""
            form_action = name.endswith("_form") or name.startswith("validate_")
            self.offer_source = "form_failed" if form_action else OFFER_SOURCES.get(name, "other")
        elif response == RISK_OFFER:
            self.offer_source = "risk"

    def on_active_loop(self, position: int, event: dict[str, Any], ts: float) -> None:
        name = event.get("name")
        action = self.action
        if name in FORM_FLOWS:
            if self.form_task is not None and self.form_task.form != name:
                self.end_form(TASK_ABANDONED, ts)  # another form took over
            if self.form_task is None:
                self.form_task = self.start_task(position, FORM_FLOWS[name], ts, name)
                if action is not None:
                    action.form, action.form_event = name, "started"
        elif not name and self.form_task is not None:
            form = self.form_task.form
            if action is not None and action.action == DEACTIVATE_ACTION:
                outcome = TASK_ABANDONED
            elif self.slots.get("form_stopped"):
                outcome = TASK_STOPPED
            else:
                outcome = TASK_COMPLETED
            self.end_form(outcome, ts)
            if action is not None:
                action.form, action.form_event = form, outcome

    def on_pause(self, position: int, event: dict[str, Any], ts: float) -> None:
        action = self.action
        if action is None or action.action != HANDOFF_ACTION or self.handoff_at is not None:
            return
        action.outcome = "handoff"
        self.handoff_at = ts
        self.handoff_reason = action.handoff_reason or "other"
        self.end_form(TASK_ABANDONED, ts)
        # What the bot failed at: the customer's last request (not the request for a person,
        # an answer to an offer or a form's question).
        for turn in reversed(self.turns):
            if turn.kind == "user" and turn.intent not in HANDOFF_ANSWERS | NOT_REPHRASE_INTENTS:
                turn.followed_by_handoff = True
                break


def conversation_facts(
    sender_id: str, events: Iterable[dict[str, Any]], *, order_secret: str = ""
) -> ConversationFacts:
    """The facts of one conversation from its reduced events, in order.

    Args:
        sender_id: the conversation.
        events: its events (:func:`analytics.events.reduce_event` dicts), oldest first.
        order_secret: key of the order-number hashes (``commerce.config.hash_secret()``).
    """
    reader = _Reader(sender_id, order_secret)
    events = list(events)
    for position, event in enumerate(events):
        reader.read(position, event)
    timestamps = [float(e["timestamp"]) for e in events] or [0.0]
    users = [t for t in reader.turns if t.kind == "user"]
    languages = Counter(t.language for t in users if t.language)
    language = languages.most_common(1)[0][0] if languages else reader.slots.get("language")
    scores = [t.frustration for t in users if t.frustration is not None]
    handoff = reader.handoff_at is not None
    wait = None
    if handoff and reader.first_agent_reply_at is not None:
        wait = round(reader.first_agent_reply_at - reader.handoff_at, 3)
    completed = any(
        t.outcome == TASK_COMPLETED and t.flow not in NOT_RESOLVING_FLOWS for t in reader.tasks
    )
    return ConversationFacts(
        sender_id=sender_id,
        started_at=min(timestamps),
        ended_at=max(timestamps),
        events=len(events),
        language=language if isinstance(language, str) else None,
        user_messages=len(users),
        fallbacks=sum(t.fallback for t in users),
        flows=list(reader.flows),
        handoff=handoff,
        handoff_reason=reader.handoff_reason,
        handoff_at=reader.handoff_at,
        first_agent_reply_at=reader.first_agent_reply_at,
        agent_wait_s=wait,
        agent=reader.agent,
        csat=reader.csat,
        frustration_max=max(scores) if scores else None,
        frustration_last=scores[-1] if scores else None,
        order_numbers=sorted(reader.orders.values()),
        order_keys=sorted(reader.orders),
        contained=bool(users) and not handoff,
        resolved=bool(users) and not handoff and completed,
        turns=reader.turns,
        tasks=reader.tasks,
    )
