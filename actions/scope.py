"""Requests Kefu declines with a redirect, and payment problems it hands to a person.

Kefu's scope (README, "What Kefu does and does not do"): orders (status, cancel, address),
returns, exchanges, refunds, stock, recommendations, the shop's FAQ, complaints and a person.
Common shop requests outside it are *declined*: the retrieval intent ``decline/<topic>`` (the
message's ``response_selector`` output names the topic) runs :class:`ActionDecline`, which says
what Kefu cannot do here, where the customer can do it (the shop's link for the topic) and what
it can do instead.
A declined request is its own outcome (the rule "a request Kefu does not handle is declined",
the analytics flow ``declined``), not a fallback: a customer told "not here, but there" trusts
the assistant more than one given a wrong answer.

The links are configuration, not code: ``data/shop_links.yml`` (``$KEFU_SHOP_LINKS`` names
another file), one URL per topic and language, checked when the action server loads this module.

A payment problem (failed, declined, charged twice) needs the payment provider's records, which
only a person on the team can see: :class:`ActionPaymentProblem` says so and offers a person;
"yes" hands over (``action_handoff``, reason "payment problem", the conversation's verified order
attached).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import yaml
from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import lang
from actions.forms import offer_human
from commerce.errors import ConfigurationError
from contract import LANGUAGES, selected_response

DECLINE_INTENT = "decline"
#: Topic → the response that declines it (``{link}`` is the shop's page for it).
DECLINE_RESPONSES = {
    "account": "utter_decline/account",
    "password": "utter_decline/password",
    "newsletter": "utter_decline/newsletter",
    "place_order": "utter_decline/place_order",
    "review": "utter_decline/review",
    "modify_order": "utter_decline/modify_order",
}
#: Said when the selector named no topic Kefu knows (a retrained model with a new topic and an
#: old action server): the generic "not something I can do here".
UNKNOWN_TOPIC_RESPONSE = "utter_out_of_scope"
LINKS_ENV = "KEFU_SHOP_LINKS"
DEFAULT_LINKS = Path(__file__).resolve().parent.parent / "data" / "shop_links.yml"


def links_path() -> Path:
    """``$KEFU_SHOP_LINKS``, else ``data/shop_links.yml``."""
    return Path(os.environ.get(LINKS_ENV, "").strip() or DEFAULT_LINKS)


@functools.lru_cache(maxsize=8)
def load_shop_links(path: Path | None = None) -> dict[str, dict[str, str]]:
    """Topic → language → URL, from the shop's links file.

    Raises:
        ConfigurationError: the file is missing or unreadable, a topic or a language is
            missing, or a link is not an http(s) URL or a path on the shop's site.
    """
    path = path or links_path()
    hint = f"edit {path} (see data/shop_links.yml) or point {LINKS_ENV} at a valid file"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ConfigurationError(f"shop links: cannot read {path}: {e}; {hint}") from e
    links = data.get("links") if isinstance(data, dict) else None
    if not isinstance(links, dict):
        raise ConfigurationError(f"shop links: {path} has no `links:` mapping; {hint}")
    result: dict[str, dict[str, str]] = {}
    for topic in DECLINE_RESPONSES:
        by_language = links.get(topic)
        if not isinstance(by_language, dict):
            raise ConfigurationError(f"shop links: no link for `{topic}` in {path}; {hint}")
        for language in LANGUAGES:
            url = by_language.get(language)
            if not isinstance(url, str) or not url.startswith(("https://", "http://", "/")):
                raise ConfigurationError(
                    f"shop links: `{topic}.{language}` must be an http(s) URL or a path on the "
                    f"shop's site, got {url!r}; {hint}"
                )
        result[topic] = {language: by_language[language] for language in LANGUAGES}
    unknown = sorted(set(links) - set(DECLINE_RESPONSES))
    if unknown:
        raise ConfigurationError(
            f"shop links: unknown topics {unknown} in {path} (known: "
            f"{', '.join(DECLINE_RESPONSES)}); {hint}"
        )
    return result


def declined_topic(parse_data: dict[str, Any] | None) -> str | None:
    """The topic picked for a ``decline`` message (its ``response_selector``), if Kefu knows it."""
    response = selected_response((parse_data or {}).get("response_selector"), DECLINE_INTENT)
    if response is None:
        return None
    topic = response["intent_response_key"].split("/", 1)[1]
    return topic if topic in DECLINE_RESPONSES else None


class ActionDecline(Action):
    """Says what Kefu cannot do here, where the customer can, and what Kefu can do instead."""

    def name(self) -> str:
        return "action_decline"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        topic = declined_topic(tracker.latest_message)
        if topic is None:
            dispatcher.utter_message(response=UNKNOWN_TOPIC_RESPONSE)
            return []
        link = load_shop_links(links_path())[topic][lang(tracker)]
        dispatcher.utter_message(response=DECLINE_RESPONSES[topic], link=link)
        return []


class ActionPaymentProblem(Action):
    """A failed or double payment: only a person can see the payment records; offer one."""

    def name(self) -> str:
        return "action_payment_problem"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        dispatcher.utter_message(response="utter_payment_problem")
        return [SlotSet(key, value) for key, value in offer_human(dispatcher).items()]


# A broken links file stops the action server at start, not a customer's conversation later.
load_shop_links(links_path())
