"""Writes ``tests/analytics/conversations.jsonl``: Kefu conversations as the broker publishes them.

Run ``.venv/bin/python -m tests.analytics.record_conversations`` after changing a conversation.

Each line is one event body: ``{"sender_id": …, **event.as_dict()}`` masked by
``channels.tracker_store.mask_event`` (what ``MaskingSQLTrackerStore`` stores and publishes).
The events are made with Rasa's own event classes, in the order Rasa's processor logs them
for Kefu's domain, rules and actions (read from domain/, data/rules/, actions/ and
``rasa/core/processor.py``): the session start, the slots ``action_extract_slots`` sets right
after a message, a form's validation events, its ``active_loop`` switches and the responses its
ask / submit actions utter (``utter_action`` in the bot event's metadata), the two-stage
fallback's revert and clarified copy, ``action_handoff``'s pause, and the agent console's
messages (``kefu_agent`` metadata; the "agent joined" line has no ``utter_action``).
Button payloads (``/inform{"rating": "5"}``) skip the NLU pipeline, so they carry no language
and no sentiment. Lines of different conversations interleave by time, as on the broker.

The conversations (times from :data:`BASE`, 2026-01-01 00:00 UTC) and what a person counts in
them are listed in :data:`CONVERSATIONS`' docstrings and in ``test_report.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rasa.shared.core.events import (
    ActionExecuted,
    ActiveLoop,
    BotUttered,
    ConversationPaused,
    ConversationResumed,
    Event,
    SessionStarted,
    SlotSet,
    UserUtteranceReverted,
    UserUttered,
)

from channels.tracker_store import mask_event
from commerce.privacy import PII_SLOTS

BASE = 1_767_225_600.0  # 2026-01-01T00:00:00Z
OUT = Path(__file__).with_name("conversations.jsonl")
SEALED = "sealed:v1:gAAAAABnTESTsealedvalue"


class Recorder:
    """Builds one conversation's events with Rasa's event classes and realistic timing."""

    def __init__(self, sender_id: str, start: float, language: str) -> None:
        self.sender_id = sender_id
        self.t = start
        self.language = language
        self.events: list[Event] = []
        self.messages = 0
        self.language_set = False

    def add(self, event: Event, gap: float = 0.013) -> None:
        self.t = round(self.t + gap, 3)
        event.timestamp = self.t
        self.events.append(event)

    def session(self) -> None:
        self.add(ActionExecuted("action_session_start", policy=None, confidence=1.0))
        self.add(SessionStarted())
        self.add(ActionExecuted("action_listen"))

    def user(
        self,
        text: str,
        intent: str,
        confidence: float = 0.95,
        *,
        entities: list[dict[str, Any]] | None = None,
        frustration: float | None = 0.05,
        ranking: list[tuple[str, float]] | None = None,
        payload: bool = False,
        wait: float = 12.0,
    ) -> UserUttered:
        self.messages += 1
        message_id = f"{self.sender_id}-m{self.messages}"
        found = [dict(e) for e in entities or []]
        parse_data: dict[str, Any] = {
            "intent": {"name": intent, "confidence": confidence},
            "entities": found,
            "text": text,
            "message_id": message_id,
            "metadata": {},
            "intent_ranking": [
                {"name": n, "confidence": c} for n, c in (ranking or [(intent, confidence)])
            ],
        }
        if not payload:  # the NLU pipeline ran: language and sentiment
            label = "negative" if (frustration or 0) >= 0.4 else "neutral"
            parse_data["language"] = self.language
            parse_data["sentiment"] = {"label": label, "frustration": frustration}
            found.append(
                {
                    "entity": "language",
                    "value": self.language,
                    "start": 0,
                    "end": len(text),
                    "extractor": "LanguageDetector",
                }
            )
            found.append(
                {
                    "entity": "sentiment",
                    "value": label,
                    "start": 0,
                    "end": len(text),
                    "extractor": "SentimentAnalyzer",
                }
            )
        event = UserUttered(
            text,
            intent=parse_data["intent"],
            entities=found,
            parse_data=parse_data,
            input_channel="rest",
            message_id=message_id,
        )
        self.add(event, gap=wait)
        if not payload and not self.language_set:
            self.slot("language", self.language)
            self.language_set = True
        return event

    def action(self, name: str, policy: str = "RulePolicy", confidence: float = 1.0) -> None:
        self.add(ActionExecuted(name, policy=policy, confidence=confidence), gap=0.2)

    def bot(self, response: str, text: str, **metadata: Any) -> None:
        self.add(BotUttered(text, data={}, metadata={"utter_action": response, **metadata}))

    def agent(self, text: str, name: str, wait: float) -> None:
        self.add(BotUttered(text, data={}, metadata={"kefu_agent": name}), gap=wait)

    def console(self, text: str, wait: float) -> None:
        """A line the agent console says outside a prediction (no ``utter_action``)."""
        self.add(BotUttered(text, data={}, metadata={}), gap=wait)

    def slot(self, name: str, value: Any) -> None:
        self.add(SlotSet(name, value))

    def loop(self, name: str | None) -> None:
        self.add(ActiveLoop(name))

    def listen(self) -> None:
        self.action("action_listen")

    def bodies(self) -> list[dict[str, Any]]:
        """Masked as the tracker store masks: with the clear values of the PII slots known."""
        known = [
            e.value
            for e in self.events
            if isinstance(e, SlotSet)
            and e.key in PII_SLOTS
            and isinstance(e.value, str)
            and not e.value.startswith("sealed:")
        ]
        return [
            mask_event({"sender_id": self.sender_id, **e.as_dict()}, known) for e in self.events
        ]


def _order(number: str) -> dict[str, Any]:
    return {"entity": "order_number", "value": number, "extractor": "RegexEntityExtractor"}


def _rating(value: str) -> dict[str, Any]:
    return {"entity": "rating", "value": value}


def en_tracking(start: float) -> Recorder:
    """Order tracking with email verification, then a 5 in the survey (contained, resolved)."""
    r = Recorder("rest-en-track", start, "en")
    r.session()
    r.user("hi there", "greet", 0.98, frustration=0.02)
    r.action("utter_greet")
    r.bot("utter_greet", "Hi! I'm Kefu. How can I help?")
    r.listen()
    r.user("where is my order KF-100023?", "order_status", 0.96, entities=[_order("KF-100023")])
    r.slot("order_number", "KF-100023")
    r.action("order_status_form")
    r.loop("order_status_form")
    r.slot("order_number", "KF-100023")
    r.slot("requested_slot", "verify_contact")
    r.bot("utter_ask_verify_contact", "Which email or phone is on the order?")
    r.listen()
    r.user(
        "amy.lee@example.com",
        "inform",
        0.93,
        entities=[{"entity": "email", "value": "amy.lee@example.com"}],
    )
    r.slot("verify_contact", "amy.lee@example.com")
    r.action("order_status_form")
    r.slot("verify_contact", SEALED)
    r.slot("verified_customer_id", 3)
    r.bot("utter_verified", "Thanks, verified.")
    r.slot("requested_slot", None)
    r.loop(None)
    r.action("action_show_order_status")
    r.bot("utter_order_status_shipped", "KF-100023 has shipped.")
    r.bot("utter_order_tracking", "Tracking: UPS 1Z999.")
    r.bot("utter_order_eta", "It should arrive by Friday.")
    r.bot("utter_ask_rating", "How did I do? 1-5")
    r.listen()
    r.user('/inform{"rating": "5"}', "inform", 1.0, entities=[_rating("5")], payload=True, wait=20)
    r.slot("rating", "5")
    r.action("action_record_rating")
    r.bot("utter_thanks_rating", "Thank you for the rating!")
    r.slot("rating", None)
    r.listen()
    return r


def zh_cancel(start: float) -> Recorder:
    """Cancel with phone + one-time code and a confirmation, then a 4 (contained, resolved)."""
    r = Recorder("rest-zh-cancel", start, "zh")
    r.session()
    r.user(
        "我要取消订单KF-100031",
        "cancel_order",
        0.97,
        entities=[_order("KF-100031")],
        frustration=0.1,
    )
    r.slot("order_number", "KF-100031")
    r.action("cancel_form")
    r.loop("cancel_form")
    r.slot("order_number", "KF-100031")
    r.slot("requested_slot", "verify_contact")
    r.bot("utter_ask_verify_contact", "请提供下单时的邮箱或手机号。")
    r.listen()
    r.user("13800138000", "inform", 0.9, entities=[{"entity": "phone", "value": "13800138000"}])
    r.slot("verify_contact", "13800138000")
    r.action("cancel_form")
    r.slot("verify_contact", SEALED)
    r.slot("verified_customer_id", 5)
    r.bot("utter_verified", "验证成功。")
    r.slot("requested_slot", "verify_code")
    r.bot("utter_code_sent_sms", "验证码已发送到 ***8000。")
    r.listen()
    r.user("482913", "inform", 0.88, entities=[{"entity": "verify_code", "value": "482913"}])
    r.slot("verify_code", "482913")
    r.action("cancel_form")
    r.slot("verify_code", SEALED)
    r.bot("utter_verify_code_accepted", "验证码正确。")
    r.slot("requested_slot", "cancel_confirmed")
    r.bot("utter_ask_cancel_confirmed", "确定取消订单 KF-100031 吗？")
    r.listen()
    r.user("是的", "affirm", 0.99)
    r.slot("cancel_confirmed", True)
    r.action("cancel_form")
    r.slot("requested_slot", None)
    r.loop(None)
    r.action("action_cancel_order")
    r.bot("utter_order_cancelled_refund", "订单已取消，退款将原路退回。")
    r.bot("utter_ask_rating", "请为本次服务打分（1-5）")
    r.listen()
    r.user('/inform{"rating": "4"}', "inform", 1.0, entities=[_rating("4")], payload=True)
    r.slot("rating", "4")
    r.action("action_record_rating")
    r.bot("utter_thanks_rating", "感谢您的评价！")
    r.slot("rating", None)
    r.listen()
    return r


def en_return_handoff(start: float) -> Recorder:
    """A return refused (window expired), the customer asks for a person; Anna replies 95 s
    after the handoff, then hands back (handoff: asked)."""
    r = Recorder("web-en-return", start, "en")
    r.session()
    r.user(
        "I want to return the boots from order KF-100045",
        "return_item",
        0.95,
        entities=[_order("KF-100045")],
        frustration=0.2,
    )
    r.slot("order_number", "KF-100045")
    r.action("return_form")
    r.loop("return_form")
    r.slot("order_number", "KF-100045")
    r.slot("requested_slot", "verify_contact")
    r.bot("utter_ask_verify_contact", "Which email or phone is on the order?")
    r.listen()
    r.user(
        "bob@example.org",
        "inform",
        0.91,
        entities=[{"entity": "email", "value": "bob@example.org"}],
    )
    r.slot("verify_contact", "bob@example.org")
    r.action("return_form")
    r.slot("verify_contact", SEALED)
    r.slot("verified_customer_id", 8)
    r.bot("utter_verified", "Thanks, verified.")
    r.bot("utter_return_not_eligible_window_expired", "Sorry, the 30-day window has passed.")
    r.slot("failed_validations", None)
    r.slot("form_stopped", True)
    r.slot("requested_slot", None)
    r.loop(None)
    r.listen()
    r.user(
        "this is ridiculous, let me talk to a real person", "human_handoff", 0.97, frustration=0.55
    )
    r.action("action_handoff")
    r.bot("utter_handoff_queued", "You're number 1 in the queue; ticket T-2001.")
    r.slot("human_offered", False)
    r.add(ConversationPaused())
    handoff_at = r.t
    r.console("Anna from our customer service team has joined the chat.", wait=30.0)
    r.agent("Hi, I'm Anna. I can make an exception for your boots.", "anna", wait=65.0)
    assert round(r.t - handoff_at, 3) == 95.0
    r.user("thanks a lot!", "thank", 0.97, frustration=0.05, wait=40.0)
    r.add(ConversationResumed(), gap=30.0)
    r.console("You're back with Kefu, the shop assistant.", wait=0.001)
    r.add(ActionExecuted("action_listen"), gap=0.001)
    return r


def zh_stock_faq(start: float) -> Recorder:
    """A stock check, a shipping FAQ and thanks (contained, resolved)."""
    r = Recorder("rest-zh-stock", start, "zh")
    r.session()
    r.user(
        "白色T恤M码还有货吗",
        "check_stock",
        0.94,
        entities=[{"entity": "product", "value": "Classic Tee"}, {"entity": "size", "value": "M"}],
    )
    r.slot("product", "Classic Tee")
    r.slot("size", "M")
    r.action("stock_form")
    r.loop("stock_form")
    r.slot("product", "Classic Tee")
    r.slot("requested_slot", None)
    r.loop(None)
    r.action("action_check_stock")
    r.bot("utter_in_stock", "Classic Tee 白色 M 码有货（12 件）。")
    r.listen()
    r.user("运费怎么算", "faq", 0.92)
    r.action("utter_faq")
    r.bot("utter_faq/shipping_cost", "国内订单满 299 元包邮。")
    r.listen()
    r.user("谢谢", "thank", 0.99)
    r.action("utter_you_are_welcome")
    r.bot("utter_you_are_welcome", "不客气！")
    r.listen()
    return r


def en_fallback_rephrase(start: float) -> Recorder:
    """Not understood ("did you mean…?" → No → rephrased), then the tracking form is stopped
    by the customer (contained, not resolved; one fallback)."""
    r = Recorder("rest-en-fallback", start, "en")
    r.session()
    r.user(
        "my thingy never came??",
        "nlu_fallback",
        0.5,
        frustration=0.3,
        ranking=[("nlu_fallback", 0.5), ("order_status", 0.42), ("complaint", 0.31)],
    )
    r.action("action_two_stage_fallback")
    r.loop("action_two_stage_fallback")
    r.bot("utter_ask_affirmation", "Did you want to know where your order is?")
    r.listen()
    r.user("/out_of_scope", "out_of_scope", 1.0, payload=True, wait=6.0)
    r.action("action_two_stage_fallback")
    r.bot("utter_ask_rephrase", "Sorry, could you say that another way?")
    r.listen()
    rephrased = r.user(
        "where is my package, order KF-100052",
        "order_status",
        0.94,
        entities=[_order("KF-100052")],
        frustration=0.2,
    )
    r.slot("order_number", "KF-100052")
    r.action("action_two_stage_fallback")
    r.loop(None)
    r.add(UserUtteranceReverted())
    r.add(ActionExecuted("action_listen"))
    clarified = UserUttered(
        rephrased.text,
        intent={**rephrased.intent, "confidence": 1.0},
        entities=rephrased.entities,
        parse_data={**rephrased.parse_data, "intent": {**rephrased.intent, "confidence": 1.0}},
        input_channel="rest",
        message_id=rephrased.message_id,
    )
    r.add(clarified)
    r.action("order_status_form")
    r.loop("order_status_form")
    r.slot("order_number", "KF-100052")
    r.slot("requested_slot", "verify_contact")
    r.bot("utter_ask_verify_contact", "Which email or phone is on the order?")
    r.listen()
    r.user("never mind", "stop", 0.9, frustration=0.1)
    r.action("action_deactivate_loop")
    r.loop(None)
    r.action("utter_ok_stopped")
    r.bot("utter_ok_stopped", "OK, stopped.")
    r.listen()
    return r


def zh_complaint_handoff(start: float) -> Recorder:
    """An angry complaint, a person offered and accepted; 李娜 replies 240 s after the handoff
    (handoff: complaint)."""
    r = Recorder("web-zh-complaint", start, "zh")
    r.session()
    r.user("你们的快递太慢了，我要投诉！", "complaint", 0.95, frustration=0.86)
    r.action("action_open_complaint")
    r.bot("utter_apology", "非常抱歉给您带来不便。")
    r.bot("utter_complaint_logged", "已记录您的投诉，工单号 T-2002。")
    r.bot("utter_offer_human", "需要为您转接人工客服吗？")
    r.slot("human_offered", True)
    r.listen()
    r.user("好的", "affirm", 0.98, frustration=0.7, wait=8.0)
    r.action("action_handoff")
    r.bot("utter_handoff_queued", "已为您排队，前面还有 2 位。")
    r.slot("human_offered", False)
    r.add(ConversationPaused())
    handoff_at = r.t
    r.console("人工客服 李娜 已加入对话。", wait=60.0)
    r.agent("您好，我是李娜，马上为您查一下物流。", "李娜", wait=180.0)
    assert round(r.t - handoff_at, 3) == 240.0
    return r


def en_faq(start: float) -> Recorder:
    """Two FAQs and goodbye (contained, resolved)."""
    r = Recorder("rest-en-faq", start, "en")
    r.session()
    r.user("hello", "greet", 0.99, frustration=0.01)
    r.action("utter_greet")
    r.bot("utter_greet", "Hi! I'm Kefu. How can I help?")
    r.listen()
    r.user("what's your return policy?", "faq", 0.9)
    r.action("utter_faq")
    r.bot("utter_faq/return_policy", "International orders can be returned within 30 days.")
    r.listen()
    r.user("and how long does shipping take", "faq", 0.86)
    r.action("utter_faq")
    r.bot("utter_faq/delivery_time", "USPS standard takes 5-8 business days.")
    r.listen()
    r.user("bye", "goodbye", 0.99)
    r.action("utter_goodbye")
    r.bot("utter_goodbye", "Bye!")
    r.listen()
    return r


def zh_failed_verification(start: float) -> Recorder:
    """Tracking where the contact fails three times: the form stops and offers a person, who
    is declined (contained, not resolved)."""
    r = Recorder("rest-zh-verify", start, "zh")
    r.session()
    r.user("查一下订单KF-100077", "order_status", 0.96, entities=[_order("KF-100077")])
    r.slot("order_number", "KF-100077")
    r.action("order_status_form")
    r.loop("order_status_form")
    r.slot("order_number", "KF-100077")
    r.slot("requested_slot", "verify_contact")
    r.bot("utter_ask_verify_contact", "请提供下单时的邮箱或手机号。")
    r.listen()
    for attempt, contact in enumerate(["wang@example.cn", "wang1@example.cn", "w@example.cn"], 1):
        r.user(
            contact,
            "inform",
            0.9,
            entities=[{"entity": "email", "value": contact}],
            frustration=round(0.1 + 0.15 * attempt, 2),
        )
        r.slot("verify_contact", contact)
        r.action("order_status_form")
        if attempt < 3:
            r.bot("utter_verification_failed", "邮箱与订单不符，请再试一次。")
            r.slot("verify_contact", None)
            r.slot("failed_validations", {"verify_contact": attempt})
            r.slot("requested_slot", "verify_contact")
            r.bot("utter_ask_verify_contact", "请提供下单时的邮箱或手机号。")
        else:
            r.bot("utter_offer_human", "需要为您转接人工客服吗？")
            r.slot("verify_contact", None)
            r.slot("human_offered", True)
            r.slot("failed_validations", None)
            r.slot("form_stopped", True)
            r.slot("requested_slot", None)
            r.loop(None)
        r.listen()
    r.user("不用了", "deny", 0.97, frustration=0.3)
    r.action("action_decline_human")
    r.bot("utter_human_declined", "好的，我继续为您服务。")
    r.slot("human_offered", False)
    r.listen()
    return r


def en_old_faq(start: float) -> Recorder:
    """Forty days before the others: outside a 7-day report."""
    r = Recorder("rest-en-old", start, "en")
    r.session()
    r.user("do you ship to canada", "faq", 0.91)
    r.action("utter_faq")
    r.bot("utter_faq/shipping_countries", "Yes, we ship to Canada with UPS.")
    r.listen()
    return r


CONVERSATIONS = [
    (en_tracking, BASE + 3_600),
    (zh_cancel, BASE + 3_660),
    (en_return_handoff, BASE + 3_720),
    (zh_stock_faq, BASE + 7_200),
    (en_fallback_rephrase, BASE + 7_230),
    (zh_complaint_handoff, BASE + 10_800),
    (en_faq, BASE + 10_830),
    (zh_failed_verification, BASE + 14_400),
    (en_old_faq, BASE - 40 * 86_400),
]


def record() -> list[dict[str, Any]]:
    """Every conversation's masked bodies, interleaved by time as on the broker."""
    bodies = [b for make, start in CONVERSATIONS for b in make(start).bodies()]
    return sorted(bodies, key=lambda b: b["timestamp"])  # stable: a conversation keeps its order


def main() -> None:
    bodies = record()
    with OUT.open("w", encoding="utf-8") as f:
        for body in bodies:
            f.write(json.dumps(body, ensure_ascii=False) + "\n")
    print(f"wrote {len(bodies)} events of {len(CONVERSATIONS)} conversations to {OUT}")


if __name__ == "__main__":
    main()
