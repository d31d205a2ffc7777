"""Requests Kefu declines with a redirect (the shop's links), and payment problems."""

from __future__ import annotations

import pytest
import yaml
from rasa_sdk.events import SlotSet

from actions.scope import (
    DECLINE_RESPONSES,
    DEFAULT_LINKS,
    ActionDecline,
    ActionPaymentProblem,
    declined_topic,
    load_shop_links,
)
from commerce.errors import ConfigurationError
from tests.helpers.actions import kwargs_of, make_tracker, responses


def selected(key: str, selector: str = "default") -> dict:
    """A message's parse data whose ResponseSelector picked ``key``."""
    return {
        "intent": {"name": key.split("/")[0], "confidence": 0.97},
        "response_selector": {
            selector: {"response": {"intent_response_key": key, "confidence": 0.93}}
        },
    }


def decline_tracker(key: str, language: str = "en"):
    tracker = make_tracker({"language": language}, text="…", intent="decline")
    tracker.latest_message.update(selected(key))
    return tracker


def test_the_shops_links_file_names_a_page_per_topic_and_language():
    links = load_shop_links(DEFAULT_LINKS)
    assert set(links) == set(DECLINE_RESPONSES)
    assert all(set(by_language) == {"en", "zh"} for by_language in links.values())


@pytest.mark.parametrize(
    "text, problem",
    [
        ("version: '1'\n", "no `links:`"),
        ("links:\n  account: {en: https://a, zh: https://b}\n", "no link for `password`"),
        ("links: [", "cannot read"),
    ],
)
def test_a_broken_links_file_says_what_to_fix(tmp_path, text, problem):
    path = tmp_path / "links.yml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigurationError, match=problem):
        load_shop_links(path)


def test_a_link_must_be_a_url_or_a_path_and_topics_must_be_known(tmp_path):
    good = {topic: {"en": "/x", "zh": "https://shop.example.cn/x"} for topic in DECLINE_RESPONSES}
    path = tmp_path / "links.yml"
    bad_url = {**good, "review": {"en": "javascript:alert(1)", "zh": "/x"}}
    path.write_text(yaml.safe_dump({"links": bad_url}), encoding="utf-8")
    with pytest.raises(ConfigurationError, match="review.en"):
        load_shop_links(path)
    unknown = tmp_path / "unknown.yml"
    unknown.write_text(
        yaml.safe_dump({"links": {**good, "gift_cards": good["review"]}}),
        encoding="utf-8",
    )
    with pytest.raises(ConfigurationError, match="gift_cards"):
        load_shop_links(unknown)


@pytest.mark.parametrize(
    "parse_data, topic",
    [
        (selected("decline/password"), "password"),
        (selected("decline/account", selector="decline"), "account"),
        (selected("faq/shipping_cost"), None),  # not a declined request
        (selected("decline/gift_cards"), None),  # a topic this action server does not know
        ({}, None),
    ],
)
def test_the_declined_topic_comes_from_the_response_selector(parse_data, topic):
    assert declined_topic(parse_data) == topic


@pytest.mark.parametrize("language", ["en", "zh"])
async def test_a_declined_request_gets_the_shops_page_in_its_language(dispatcher, language):
    events = await ActionDecline().run(
        dispatcher, decline_tracker("decline/password", language), {}
    )
    assert events == []
    assert responses(dispatcher) == ["utter_decline/password"]
    link = load_shop_links(DEFAULT_LINKS)["password"][language]
    assert kwargs_of(dispatcher, "utter_decline/password")["link"] == link


async def test_an_unknown_topic_gets_the_general_answer(dispatcher):
    await ActionDecline().run(dispatcher, decline_tracker("decline/gift_cards"), {})
    assert responses(dispatcher) == ["utter_out_of_scope"]


async def test_a_payment_problem_is_explained_and_a_person_offered(dispatcher):
    tracker = make_tracker(text="my payment failed", intent="payment_problem")
    events = await ActionPaymentProblem().run(dispatcher, tracker, {})
    assert events == [SlotSet("human_offered", True)]
    assert responses(dispatcher) == ["utter_payment_problem", "utter_offer_human"]
