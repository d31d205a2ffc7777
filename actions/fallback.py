"""The first stage of Rasa's two-stage fallback, in the customer's language.

Rasa's default `action_default_ask_affirmation` asks "Did you mean 'cancel_order'?" with the
raw intent name, in English. Kefu asks with a short description of the intent in the customer's
language and Yes / No buttons; "No" leads to `utter_ask_rephrase`, a second miss to
`utter_default` (both in domain/core.yml).
"""

from __future__ import annotations

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import lang

# What each intent means to a customer: (English, Chinese).
INTENT_DESCRIPTIONS: dict[str, tuple[str, str]] = {
    "greet": ("saying hello", "打招呼"),
    "goodbye": ("ending the chat", "结束对话"),
    "thank": ("saying thanks", "表示感谢"),
    "help": ("what I can help with", "我能帮您做什么"),
    "affirm": ("yes", "是的"),
    "deny": ("no", "不是"),
    "stop": ("stopping what we're doing", "停止当前操作"),
    "bot_challenge": ("whether you're talking to a bot", "您是否在和机器人对话"),
    "order_status": ("where your order is", "查询订单物流"),
    "cancel_order": ("cancelling an order", "取消订单"),
    "change_address": ("changing the delivery address", "修改收货地址"),
    "inform": ("giving me some details", "提供信息"),
    "check_stock": ("whether a product is in stock", "查询商品库存"),
    "subscribe_restock": ("an alert when a product is back", "到货提醒"),
    "return_item": ("returning an item", "退货"),
    "exchange_item": ("exchanging an item", "换货"),
    "refund_status": ("the status of a refund", "查询退款进度"),
    "complaint": ("making a complaint", "投诉"),
    "human_handoff": ("talking to a person", "转人工客服"),
    "recommend": ("product recommendations", "商品推荐"),
}
NO_INTENT = "out_of_scope"
RETRIEVAL_INTENTS = frozenset({"faq", "chitchat"})


def intent_to_affirm(parse_data: dict) -> str | None:
    """The intent to ask about: the top one, or the runner-up after an `nlu_fallback`."""
    intent = (parse_data.get("intent") or {}).get("name")
    ranking = parse_data.get("intent_ranking") or []
    if intent == "nlu_fallback" and len(ranking) > 1:
        intent = ranking[1].get("name")
    return intent


class ActionDefaultAskAffirmation(Action):
    """Asks "Did you mean …?" about the most likely intent, in the customer's language."""

    def name(self) -> str:
        return "action_default_ask_affirmation"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        intent = intent_to_affirm(tracker.latest_message or {})
        description = INTENT_DESCRIPTIONS.get(intent or "")
        if description is None or intent in RETRIEVAL_INTENTS:
            # A button payload cannot carry an FAQ's sub-intent, and an unknown intent has no
            # description: ask the customer to put it another way instead.
            dispatcher.utter_message(response="utter_ask_rephrase")
            return []
        topic = description[1] if lang(tracker) == "zh" else description[0]
        dispatcher.utter_message(
            response="utter_ask_affirmation",
            topic=topic,
            buttons=[
                {"title": "Yes" if lang(tracker) == "en" else "是的", "payload": f"/{intent}"},
                {"title": "No" if lang(tracker) == "en" else "不是", "payload": f"/{NO_INTENT}"},
            ],
        )
        return []
