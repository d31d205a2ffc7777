"""Complaints, handoff, recommendations, log masking and outages."""

from __future__ import annotations

import logging
import time

import pytest
from rasa_sdk.events import ConversationPaused, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import create_engine, text

from actions.common import mask_pii
from actions.recommendations import ActionRecommendProducts
from actions.support import (
    ActionDeclineHuman,
    ActionHandoff,
    ActionOfferHumanFrustrated,
    ActionOpenComplaint,
    frustrated_messages,
    transcript_of,
)
from commerce.services.identity import sign_identity_claim
from tests.helpers.actions import (
    ANGRY_LATEST,
    angry_history,
    kwargs_of,
    make_tracker,
    responses,
    slot_events,
    verified,
    without_refresh,
)

ALICE = 1.0
HISTORY = [
    {"event": "user", "text": "where is my order KF-100004", "parse_data": {}},
    {"event": "bot", "text": "What's the email on the order?"},
]
ANGRY = {"label": "negative", "frustration": 0.9}


def rows(url: str, sql: str, **params):
    engine = create_engine(url)
    with engine.connect() as conn:
        result = conn.execute(text(sql), params).all()
    engine.dispose()
    return result


async def test_complaint_opens_a_ticket_and_offers_a_person(database, dispatcher):
    tracker = make_tracker(text="my parcel arrived damaged", intent="complaint", sender_id="c1")
    events = await ActionOpenComplaint().run(dispatcher, tracker, {})
    assert events == [SlotSet("human_offered", True)]
    assert responses(dispatcher) == ["utter_complaint_logged", "utter_offer_human"]
    number = kwargs_of(dispatcher, "utter_complaint_logged")["ticket_number"]
    [(category, severity)] = rows(
        database,
        "SELECT category, severity FROM support_tickets WHERE ticket_number = :n",
        n=number,
    )
    assert (category, severity) == ("delivery", "normal")


async def test_repeated_frustration_apologises_and_raises_severity(database, dispatcher):
    earlier = [{"event": "user", "text": "WHERE IS IT", "parse_data": {"sentiment": ANGRY}}]
    tracker = make_tracker(
        {"language": "zh"},
        text="太差了，快递还没到！！",
        intent="complaint",
        sentiment=ANGRY,
        events=earlier,
        sender_id="c2",
    )
    tracker.events[-1]["parse_data"]["sentiment"] = ANGRY
    await ActionOpenComplaint().run(dispatcher, tracker, {})
    assert responses(dispatcher) == ["utter_apology", "utter_complaint_logged", "utter_offer_human"]
    number = kwargs_of(dispatcher, "utter_complaint_logged")["ticket_number"]
    [(severity, language)] = rows(
        database,
        "SELECT severity, language FROM support_tickets WHERE ticket_number = :n",
        n=number,
    )
    assert (severity, language) == ("urgent", "zh")


async def test_handoff_queues_the_transcript_and_pauses(database, dispatcher):
    tracker = make_tracker(
        {"human_offered": True},
        text="human please",
        intent="human_handoff",
        events=HISTORY,
        sender_id="h1",
    )
    events = await ActionHandoff().run(dispatcher, tracker, {})
    assert events == [SlotSet("human_offered", False), ConversationPaused()]
    assert responses(dispatcher) == ["utter_handoff_queued"]
    queued = kwargs_of(dispatcher, "utter_handoff_queued")
    [(transcript, status)] = rows(
        database,
        "SELECT t.transcript, h.status FROM handoff_queue h "
        "JOIN support_tickets t ON t.id = h.ticket_id WHERE h.conversation_id = 'h1'",
    )
    assert status == "waiting" and queued["position"] >= 1
    assert "customer: where is my order KF-100004" in transcript
    assert "kefu: What's the email on the order?" in transcript


async def test_a_handoff_at_high_complaint_risk_is_flagged_in_the_queue(
    risk_model, database, late_order_asked_about_before, dispatcher
):
    tracker = make_tracker(
        verified(ALICE, order=late_order_asked_about_before),
        events=angry_history(time.time()),
        sender_id="h-risk",
        **ANGRY_LATEST,
    )
    events = await ActionHandoff().run(dispatcher, tracker, {})
    assert slot_events(events)["complaint_risk"] >= 0.5
    [(risk, priority)] = rows(
        database,
        "SELECT risk, priority FROM handoff_queue WHERE conversation_id = 'h-risk'",
    )
    assert risk >= 0.5 and priority <= 1  # at least "high": agents see it before routine ones


@pytest.mark.parametrize(
    "offered_by, said, filed",
    [
        ("action_payment_problem", "I was charged twice", ("payment problem", "payment")),
        (
            "action_answer_product_question",
            "is the trail runner good on ice?",
            ("product question", "product"),
        ),
    ],
)
async def test_yes_to_the_person_offered_files_the_handoff_under_the_offers_reason(
    database, dispatcher, offered_by, said, filed
):
    history = [
        {"event": "user", "text": said, "parse_data": {}},
        {"event": "action", "name": offered_by},
        {"event": "bot", "text": "Shall I get a colleague?"},
        {"event": "slot", "name": "human_offered", "value": True},
        {"event": "action", "name": "action_listen"},
    ]
    tracker = make_tracker(
        {"human_offered": True}, text="yes", intent="affirm", events=history, sender_id="offer-1"
    )
    await ActionHandoff().run(dispatcher, tracker, {})
    assert rows(
        database,
        "SELECT h.reason, t.category FROM handoff_queue h "
        "JOIN support_tickets t ON t.id = h.ticket_id WHERE h.conversation_id = 'offer-1'",
    ) == [filed]


async def test_asking_twice_queues_once(database, dispatcher):
    tracker = make_tracker(text="agent", intent="human_handoff", sender_id="h2")
    await ActionHandoff().run(dispatcher, tracker, {})
    await ActionHandoff().run(dispatcher, tracker, {})
    assert rows(database, "SELECT count(*) FROM handoff_queue WHERE conversation_id = 'h2'") == [
        (1,)
    ]


async def test_handoff_when_the_database_is_down_does_not_pause(database_down, dispatcher):
    tracker = make_tracker(text="agent", intent="human_handoff")
    events = await ActionHandoff().run(dispatcher, tracker, {})
    assert responses(dispatcher) == ["utter_try_again_later"]
    assert events == [SlotSet("human_offered", False)]


async def test_complaint_when_the_database_is_down(database_down, dispatcher):
    tracker = make_tracker(text="terrible", intent="complaint")
    assert await ActionOpenComplaint().run(dispatcher, tracker, {}) == []
    assert responses(dispatcher) == ["utter_try_again_later"]


async def test_declining_the_person(dispatcher):
    events = await ActionDeclineHuman().run(dispatcher, make_tracker(), {})
    assert events == [SlotSet("human_offered", False)]
    assert responses(dispatcher) == ["utter_human_declined"]


def test_transcript_ends_with_the_latest_message():
    # The complaint categories are tested with commerce.policies (tests/commerce/test_policies.py).
    assert transcript_of(make_tracker(text="hi", events=HISTORY)).splitlines()[-1] == (
        "customer: hi"
    )


def test_frustrated_messages_count_the_session_at_the_contract_cut_off():
    earlier = [
        {"event": "user", "text": "meh", "parse_data": {"sentiment": {"frustration": 0.59}}},
        {"event": "session_started"},
        {"event": "user", "text": "WHERE", "parse_data": {"sentiment": {"frustration": 0.6}}},
        {"event": "user", "text": "calm", "parse_data": {"sentiment": {"frustration": 0.1}}},
        {"event": "user", "text": "ANGRY", "parse_data": {"sentiment": ANGRY}},
    ]
    assert frustrated_messages(make_tracker(events=earlier)) == 2


async def test_a_charge_complaint_is_filed_as_a_refund(database, dispatcher):
    tracker = make_tracker(text="I was charged twice", intent="complaint", sender_id="c3")
    await ActionOpenComplaint().run(dispatcher, tracker, {})
    number = kwargs_of(dispatcher, "utter_complaint_logged")["ticket_number"]
    [(category,)] = rows(
        database, "SELECT category FROM support_tickets WHERE ticket_number = :n", n=number
    )
    assert category == "refund"


async def test_recommendations_for_a_verified_customer(database, dispatcher):
    tracker = make_tracker({"language": "zh", **verified(14.0)})
    assert without_refresh(await ActionRecommendProducts().run(dispatcher, tracker, {})) == []
    assert responses(dispatcher) == ["utter_recommendations"]
    products = kwargs_of(dispatcher, "utter_recommendations")["products"]
    assert any("\u4e00" <= c <= "\u9fff" for c in products)


async def test_a_guest_gets_best_sellers_and_hears_how_to_get_personal_picks(database, dispatcher):
    await ActionRecommendProducts().run(dispatcher, make_tracker(), {})
    assert responses(dispatcher) == [
        "utter_recommendations_matching",
        "utter_recommend_needs_identity",
    ]


@pytest.mark.parametrize(
    "line, masked",
    [
        ("verify anna.lee@example.com", "verify a***@example.com"),
        ("phone +86 138 0013 8000 given", "phone ***8000 given"),
        (
            "{'new_address': '1 Main St', 'order_number': 'KF-100023'}",
            "{'new_address': '***', 'order_number': 'KF-100023'}",
        ),
    ],
)
def test_mask_pii(line, masked):
    assert mask_pii(line) == masked


def test_log_records_are_masked(caplog):
    with caplog.at_level(logging.INFO):
        logging.getLogger("actions.test").info("contact %s", "bob@example.com")
    assert "bob@example.com" not in caplog.text and "b***@example.com" in caplog.text


async def test_recommendations_for_a_signed_in_customer(database, dispatcher, token_secret):
    claim = sign_identity_claim("test-user", 14, int(time.time()) + 600)
    tracker = make_tracker(metadata={"kefu_identity": claim})
    events = await ActionRecommendProducts().run(dispatcher, tracker, {})
    slots = slot_events(events)
    assert slots["verified_customer_id"] == 14.0 and slots["verified_method"] == "token"
    assert slots["verified_until"] == claim["exp"]
    assert responses(dispatcher) == ["utter_recommendations"]


async def test_an_expired_identity_gets_guest_picks_not_personal_ones(database, dispatcher):
    tracker = make_tracker(verified(14.0, until=time.time() - 1))
    events = await ActionRecommendProducts().run(dispatcher, tracker, {})
    assert "utter_recommendations" not in responses(dispatcher)
    assert responses(dispatcher)[-1] == "utter_recommend_needs_identity"
    assert slot_events(events)["verified_customer_id"] is None


async def test_handoff_links_the_verified_order(database, dispatcher):
    tracker = make_tracker(
        verified(1.0, order="KF-100004"),
        text="human please",
        intent="human_handoff",
        metadata={"kefu_client": "203.0.113.9"},
        sender_id="h3",
    )
    events = await ActionHandoff().run(dispatcher, tracker, {})
    assert ConversationPaused() in events
    [(customer_id, order_id)] = rows(
        database,
        "SELECT t.customer_id, t.order_id FROM handoff_queue h "
        "JOIN support_tickets t ON t.id = h.ticket_id WHERE h.conversation_id = 'h3'",
    )
    assert customer_id == 1 and order_id is not None


async def test_frustrated_customer_gets_apology_and_offer(dispatcher):
    tracker = make_tracker(text="THIS IS THE THIRD TIME I ASK", intent="complaint")
    events = await ActionOfferHumanFrustrated().run(dispatcher, tracker, {})
    assert responses(dispatcher) == ["utter_apology", "utter_offer_human"]
    assert events == [SlotSet("human_offered", True)]


async def test_handoffs_per_client_are_limited_politely(database, monkeypatch):
    monkeypatch.setenv("KEFU_HANDOFFS_PER_CLIENT_PER_HOUR", "2")
    for n in range(3):
        dispatcher = CollectingDispatcher()
        tracker = make_tracker(
            text="human please",
            intent="human_handoff",
            metadata={"kefu_client": "198.51.100.7"},
            sender_id=f"flood-{n}",
        )
        events = await ActionHandoff().run(dispatcher, tracker, {})
    assert responses(dispatcher) == ["utter_handoff_too_many"]
    assert events == [SlotSet("human_offered", False)]  # not paused: the bot carries on
