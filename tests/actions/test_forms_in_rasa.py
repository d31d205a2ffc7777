"""The forms as Rasa runs them: Rasa's own slot extraction and form loop, the real domain, the
real actions (in process, through rasa-sdk's executor) and the seeded database. No model is needed:
the test plays the part of the policies (it names the form or action Rasa would predict) and of
NLU (it gives the intent and entities).

This is what unit tests of validators cannot show: that the slot mappings fill ``verify_code`` and
a typed US phone, that Rasa asks through ``action_ask_verify_code``, and that the loop moves on.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from rasa.core.actions.action import ActionExecutionRejection, ActionExtractSlots, RemoteAction
from rasa.core.actions.forms import FormAction
from rasa.core.channels import CollectingOutputChannel
from rasa.core.nlg import TemplatedNaturalLanguageGenerator
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.utils.endpoints import EndpointConfig
from rasa_sdk.executor import ActionExecutor

from commerce.services.identity import sign_identity_claim
from tests.helpers import ROOT
from tests.helpers.actions import latest_code

HAN = re.compile(r"[\u4e00-\u9fff]")


class InProcessActions(EndpointConfig):
    """An action endpoint that runs the call in this process instead of over HTTP."""

    def __init__(self) -> None:
        super().__init__(url="http://in-process/webhook")
        self.executor = ActionExecutor()
        self.executor.register_package("actions")

    async def request(self, method: str = "post", subpath=None, **kwargs: Any) -> Any:
        return await self.executor.run(kwargs["json"])


@pytest.fixture(scope="module")
def domain() -> Domain:
    return Domain.load(str(ROOT / "domain"))


class Conversation:
    """One conversation driven turn by turn through Rasa's form machinery."""

    def __init__(self, domain: Domain, sender: str = "rasa-form-user", metadata=None) -> None:
        self.domain = domain
        self.endpoint = InProcessActions()
        self.nlg = TemplatedNaturalLanguageGenerator(domain.responses)
        self.metadata = metadata or {}
        self.tracker = DialogueStateTracker.from_events(
            sender, [ActionExecuted("action_listen")], slots=domain.slots
        )

    async def _run(self, action, *, logged: bool = True) -> list[str]:
        events = await action.run(CollectingOutputChannel(), self.nlg, self.tracker, self.domain)
        if logged:  # as Rasa's processor: the action first, then its events
            self.tracker.update(ActionExecuted(action.name()), self.domain)
        self.tracker.update_with_events(events, self.domain)
        return [e.metadata.get("utter_action") for e in events if isinstance(e, BotUttered)]

    async def say(self, text: str, intent: str = "inform", entities=(), then: str | None = None):
        """The customer's message, then ``then`` (the form or action a policy would predict)."""
        entities = [
            {"entity": name, "value": value, "start": 0, "end": len(str(value))}
            for name, value in entities
        ]
        parse = {"intent": {"name": intent, "confidence": 1.0}, "entities": entities}
        if self.tracker.latest_action_name != "action_listen":
            self.tracker.update(ActionExecuted("action_listen"), self.domain)
        self.tracker.update(
            UserUttered(text, parse["intent"], entities, parse, metadata=self.metadata),
            self.domain,
        )
        # Rasa runs the extraction after every message without logging it as an action.
        await self._run(ActionExtractSlots(self.endpoint), logged=False)
        name = then or self.tracker.active_loop_name
        if name in self.domain.form_names:
            said = await self._run(FormAction(name, self.endpoint))
        else:
            said = await self._run(RemoteAction(name, self.endpoint))
        return said

    async def then(self, action: str) -> list[str]:
        return await self._run(RemoteAction(action, self.endpoint))

    def slot(self, name: str) -> Any:
        return self.tracker.get_slot(name)


async def test_cancel_with_the_code_from_the_outbox(database, domain, outbox_log):
    chat = Conversation(domain)
    said = await chat.say(
        "cancel order KF-100002", "cancel_order", [("order_number", "KF-100002")], "cancel_form"
    )
    assert said == ["utter_ask_verify_contact"]
    said = await chat.say("alice@example.com", entities=[("email", "alice@example.com")])
    assert said == ["utter_verified", "utter_code_sent_email"]
    assert chat.slot("requested_slot") == "verify_code" and chat.slot("verify_contact") is None

    said = await chat.say("000000" if latest_code(outbox_log) != "000000" else "111111")
    assert said == ["utter_verify_code_wrong", "utter_ask_verify_code_again"]
    said = await chat.say(f"the code is {latest_code(outbox_log)}")
    assert said == ["utter_verify_code_accepted", "utter_ask_cancel_confirmed"]
    assert chat.slot("second_factor") is True and chat.slot("verify_code") is None

    assert await chat.say("yes", "affirm") == []
    assert chat.tracker.active_loop_name is None
    said = await chat.then("action_cancel_order")
    assert said[0] == "utter_order_cancelled_refund"
    assert outbox_log.read_text().count("\n--- ") == 0  # one code sent in all


async def test_a_signed_in_customer_is_asked_for_neither(database, domain, token_secret):
    claim = sign_identity_claim("rasa-form-user", 1, int(time.time()) + 600)
    chat = Conversation(domain, metadata={"kefu_identity": claim})
    said = await chat.say(
        "cancel KF-100001", "cancel_order", [("order_number", "KF-100001")], "cancel_form"
    )
    assert said == ["utter_ask_cancel_confirmed"]
    await chat.say("yes", "affirm")
    assert (await chat.then("action_cancel_order"))[0] == "utter_order_cancelled"


@pytest.mark.parametrize("typed", ["415-555-0101", "+1 415 555 0101", "(415) 555-0101"])
async def test_a_us_phone_typed_any_way_verifies(database, domain, typed):
    chat = Conversation(domain, sender=f"us-phone-{typed}")
    await chat.say("where is KF-100004", "order_status", [("order_number", "KF-100004")],
                   "order_status_form")  # fmt: skip
    # No entity extractor knows US formats: the answer itself fills the contact.
    said = await chat.say(typed)
    assert said == ["utter_verified"]
    assert chat.slot("verified_customer_id") == 1.0 and chat.slot("verified_method") == "phone"


async def test_a_new_session_starts_as_nobody(database, domain):
    chat = Conversation(domain)
    await chat.say("where is KF-100004", "order_status", [("order_number", "KF-100004")],
                   "order_status_form")  # fmt: skip
    await chat.say("alice@example.com", entities=[("email", "alice@example.com")])
    assert chat.slot("verified_customer_id") == 1.0
    await chat.then("action_session_start")
    assert chat.slot("verified_customer_id") is None and chat.slot("verified_until") is None
    assert chat.slot("language") == "en"


async def test_a_new_code_on_request_in_chinese(database, domain, outbox_log):
    chat = Conversation(domain, sender="zh-resend")
    chat.tracker.update_with_events([SlotSet("language", "zh")], domain)
    await chat.say("取消订单KF-200001", "cancel_order", [("order_number", "KF-200001")],
                   "cancel_form")  # fmt: skip
    said = await chat.say("wang.fang@example.cn", entities=[("email", "wang.fang@example.cn")])
    assert said == ["utter_verified", "utter_code_sent_email"]
    first = latest_code(outbox_log)
    said = await chat.say("没收到，请重新发送")
    assert said == ["utter_code_sent_email"]  # a fresh code, no failure counted
    assert outbox_log.read_text().count("\n--- ") == 1
    assert chat.slot("failed_validations") is None
    second = latest_code(outbox_log)
    if first != second:  # the first code was replaced by the second
        assert (await chat.say(first))[0] == "utter_verify_code_wrong"
    said = await chat.say(second)
    assert said == ["utter_verify_code_accepted", "utter_ask_cancel_confirmed"]
    assert HAN.search(chat.tracker.latest_bot_utterance.text)


async def test_three_wrong_codes_end_the_form_with_a_person_offered(database, domain, outbox_log):
    chat = Conversation(domain, sender="wrong-codes")
    await chat.say("cancel KF-100002", "cancel_order", [("order_number", "KF-100002")],
                   "cancel_form")  # fmt: skip
    await chat.say("alice@example.com", entities=[("email", "alice@example.com")])
    wrong = "000000" if latest_code(outbox_log) != "000000" else "111111"
    await chat.say(wrong)
    await chat.say(wrong)
    said = await chat.say(wrong)
    assert said == ["utter_offer_human"]
    assert chat.tracker.active_loop_name is None and chat.slot("human_offered") is True
    # Stopped, not completed: the "stopped" rule waits for the answer to the offer.
    assert chat.slot("form_stopped") is True
    assert await chat.then("action_cancel_order") == []  # nothing confirmed, nothing said


async def test_a_stopped_form_does_not_leak_its_outcome_into_the_next_form(database, domain):
    chat = Conversation(domain, sender="stopped-then-done")
    await chat.say("where is my order", "order_status", then="order_status_form")
    for _ in range(3):
        said = await chat.say("KF-12", entities=[("order_number", "KF-12")])
    assert said == ["utter_offer_human"] and chat.slot("form_stopped") is True
    # The next form starts clean and completes: its "done" rule reads form_stopped unset.
    await chat.say("where is KF-100004", "order_status", [("order_number", "KF-100004")],
                   "order_status_form")  # fmt: skip
    assert chat.slot("form_stopped") is None and chat.slot("failed_validations") is None
    await chat.say("alice@example.com", entities=[("email", "alice@example.com")])
    assert chat.tracker.active_loop_name is None
    assert chat.slot("requested_slot") is None and chat.slot("form_stopped") is None


@pytest.mark.parametrize(
    "text, intent",
    [
        ("can you speak Chinese?", "switch_language"),
        ("what's your return policy?", "faq"),
        ("never mind", "stop"),
        ("I want a person", "human_handoff"),
    ],
)
async def test_the_address_form_takes_no_request_as_an_address(
    database, domain, token_secret, text, intent
):
    claim = sign_identity_claim("rasa-form-user", 1, int(time.time()) + 600)
    chat = Conversation(domain, metadata={"kefu_identity": claim})
    said = await chat.say("change the address of KF-100001", "change_address",
                          [("order_number", "KF-100001")], "address_form")  # fmt: skip
    assert said == ["utter_ask_new_address"]
    # The form rejects (nothing extracted), so the rules answer the request and resume it.
    with pytest.raises(ActionExecutionRejection):
        await chat.say(text, intent)
    assert chat.slot("new_address") is None and chat.slot("requested_slot") == "new_address"


async def test_a_form_refused_on_its_first_message_stops_at_once(database, domain, token_secret):
    claim = sign_identity_claim("rasa-form-user", 1, int(time.time()) + 600)
    chat = Conversation(domain, metadata={"kefu_identity": claim})
    said = await chat.say("cancel KF-100004", "cancel_order", [("order_number", "KF-100004")],
                          "cancel_form")  # fmt: skip
    assert said == ["utter_error_order_not_cancellable"]  # shipped: a return instead
    assert chat.tracker.active_loop_name is None and chat.slot("form_stopped") is True
