"""The conversation contract: names and numbers the channels, the NLU components, the dialogue
policy, the action server and the commerce backend must agree on.

Plain Python, importing nothing of Kefu, Rasa or SQLAlchemy, so that every part of the house
(``channels/``, ``custom_components/``, ``actions/``, ``commerce/``) can read it without pulling
in another part.

Languages
    :data:`LANGUAGES` are the codes the language detector sets, the ``language`` slot holds, the
    responses are written in and the commerce backend stores; :data:`DEFAULT_LANGUAGE` is used
    when none is known.

Frustration
    The ``SentimentAnalyzer`` puts ``{"label", "frustration"}`` under ``parse_data["sentiment"]``;
    :func:`frustration_of` reads the score (0-1) back. One set of cut-offs serves everyone who
    acts on it, so the customer, the agent and the ticket queue see the same mood:

    - :data:`STRONG_FRUSTRATION` (0.6): a message is strongly negative. ``FrustrationPolicy``
      counts such messages, a complaint apologises and is at least ``high`` severity, and the
      agent console labels the customer ``angry``. 0.6 is the level the policy was tuned on
      (below it mild irritation such as "still waiting..." would trigger offers of a person).
    - :data:`MILD_FRUSTRATION` (0.4): the console labels the customer ``frustrated`` and marks
      the message; nothing in the dialogue changes.
    - :data:`URGENT_FRUSTRATION` (0.8): a repeatedly frustrated customer whose latest message
      scores this high gets an ``urgent`` ticket.
    - :data:`REPEATED_FRUSTRATION` (2) strongly negative messages among the last
      :data:`FRUSTRATION_WINDOW` (4) customer messages make the policy apologise and offer a
      person; a complaint or handoff after that many in the session counts as repeated.

Message metadata and slots
    :data:`CLAIM_METADATA_KEY` and :data:`CLIENT_METADATA_KEY` are the message metadata keys only
    Kefu's channels set (they strip them from what a client sends): the signed identity claim
    and the client address. :data:`VERIFIED_CUSTOMER_SLOT` is the slot whose value says which
    verified customer a conversation acts for (the channels and the tracker store read it).

Satisfaction and complaint risk
    :data:`RATING_SLOT` holds the customer's 1-5 survey answer (the analytics consumer reads it
    from the slot event). :data:`COMPLAINT_RISK_SLOT` holds the latest 0-1 complaint-risk score
    the action server computed (``analytics.risk``); at :data:`HIGH_COMPLAINT_RISK` or above
    Kefu offers a person before the customer asks, and a handoff is flagged in the agent queue.
    :func:`rating_of` reads a rating from a slot value or a typed answer ("5", "five stars",
    "4/5", "五星", "打4分"), so the NLU, the action server and analytics agree on what one is.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

# ---- languages ------------------------------------------------------------------------------

LANGUAGE_EN = "en"
LANGUAGE_ZH = "zh"
#: Every language Kefu speaks.
LANGUAGES = (LANGUAGE_EN, LANGUAGE_ZH)
#: The language of a conversation nobody has told us about.
DEFAULT_LANGUAGE = LANGUAGE_EN
#: The slot holding the conversation's language.
LANGUAGE_SLOT = "language"


def language_or_default(value: object) -> str:
    """``value`` when it is one of :data:`LANGUAGES`, else :data:`DEFAULT_LANGUAGE`."""
    return value if value in LANGUAGES else DEFAULT_LANGUAGE  # type: ignore[return-value]


# ---- frustration ----------------------------------------------------------------------------

#: A message at or above this score is strongly negative ("angry").
STRONG_FRUSTRATION = 0.6
#: A message at or above this score is mildly negative ("frustrated").
MILD_FRUSTRATION = 0.4
#: With repeated frustration, a latest message at or above this makes a ticket urgent.
URGENT_FRUSTRATION = 0.8
#: Strongly negative messages that make frustration "repeated" (and a person offered).
REPEATED_FRUSTRATION = 2
#: How many recent customer messages the policy looks at.
FRUSTRATION_WINDOW = 4

MOOD_ANGRY = "angry"
MOOD_FRUSTRATED = "frustrated"
MOOD_CALM = "calm"


def frustration_of(parse_data: dict[str, Any] | None) -> float:
    """The SentimentAnalyzer's frustration score in a message's parse data (0 when absent).

    Args:
        parse_data: a message's parse data (``UserUttered.parse_data``, or an SDK tracker's
            ``latest_message`` / a ``user`` event's ``parse_data``).
    """
    sentiment = (parse_data or {}).get("sentiment") or {}
    try:
        return float(sentiment.get("frustration", 0.0))
    except (TypeError, ValueError, AttributeError):
        return 0.0


def selected_response(selectors: Any, intent: str) -> dict[str, Any] | None:
    """The answer the ResponseSelector picked for the retrieval intent ``intent``.

    Args:
        selectors: a message's ``parse_data["response_selector"]``. Kefu's one ResponseSelector
            reports every retrieval intent under the key ``default`` (Rasa does not name the
            intent there), so a pick counts only when its key is ``<intent>/…``.

    Returns:
        The pick's ``response`` dict (``intent_response_key``, ``confidence`` …), or None.
    """
    for selector in (selectors or {}).values() if isinstance(selectors, dict) else ():
        response = selector.get("response") if isinstance(selector, dict) else None
        key = (response or {}).get("intent_response_key")
        if isinstance(key, str) and key.startswith(f"{intent}/"):
            return response
    return None


def is_strongly_negative(score: float) -> bool:
    """Whether a frustration score counts as strongly negative (:data:`STRONG_FRUSTRATION`)."""
    return score >= STRONG_FRUSTRATION


def frustration_label(score: float) -> str:
    """``angry`` / ``frustrated`` / ``calm`` for a frustration score (what an agent reads)."""
    if score >= STRONG_FRUSTRATION:
        return MOOD_ANGRY
    if score >= MILD_FRUSTRATION:
        return MOOD_FRUSTRATED
    return MOOD_CALM


# ---- message metadata and slots ---------------------------------------------------------------

#: Message metadata key of the signed identity claim a channel attaches.
CLAIM_METADATA_KEY = "kefu_identity"
#: Message metadata key of the client address a channel attaches.
CLIENT_METADATA_KEY = "kefu_client"
#: The slot naming the verified customer a conversation acts for.
VERIFIED_CUSTOMER_SLOT = "verified_customer_id"


# ---- satisfaction and complaint risk --------------------------------------------------------

#: The slot holding the customer's 1-5 satisfaction rating.
RATING_SLOT = "rating"
#: The slot naming what an asked, unanswered survey is about (``track:KF-100004``,
#: ``agent:<handoff id>`` after an agent handed the conversation back).
SURVEY_PENDING_SLOT = "survey_pending"
#: The slot holding the conversation's latest complaint-risk score (0-1).
COMPLAINT_RISK_SLOT = "complaint_risk"
#: The score at which a conversation counts as high risk (offer of a person, flag in the queue).
HIGH_COMPLAINT_RISK = 0.5


def is_high_risk(score: float | None) -> bool:
    """Whether a complaint-risk score is :data:`HIGH_COMPLAINT_RISK` or above."""
    return score is not None and score >= HIGH_COMPLAINT_RISK


# Whole-message rating expressions (see rating_of). Text is NFKC-normalised first, so full-width
# "５", "／" and "！" arrive as "5", "/" and "!".
_RATING_WORDS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
}
_EN_RATING = re.compile(
    r"""
    (?:                                         # who gives it (optional)
        (?:i(?:['’]d|['’]ll|\s+would|\s+will)?\s+)?(?:give|rate)
        (?:\s+(?:you|u|you\s+guys|it|this|that|the\s+service))?(?:\s+an?)?\s+
      | (?:my\s+)?(?:rating|score)(?:\s+is\s+|\s*[:=]\s*|\s+)
    )?
    (?:                                         # the rating
        (?P<number>[1-5]|one|two|three|four|five)
        \s*(?:stars?|points?|pts|(?:/|out\s+of\s|of\s)\s*5(?:\s*stars?)?)?
      | (?P<stars>[⭐★]{1,5})☆*
    )
    (?:                                         # a short remark: "5 - great", "4 stars, thanks"
        \s*[-–—,:;.!]*\s*
        (?:great|good|very\s+good|nice|excellent|perfect|awesome|amazing|ok|okay|fine
          |thanks|thank\s+you|thx|bad|poor|terrible|awful|horrible)
    )*
    [\s.!~]*
    """,
    re.IGNORECASE | re.VERBOSE,
)
_ZH_RATING = re.compile(
    r"""
    (?:                                         # 给 / 打 / 评, "我给你们打", "给个" (optional)
        我?就?(?:给|打|评)(?:你们|你|您)?(?:打|评)?个?
      | 评分\s*:?\s*
    )?
    (?:                                         # the rating: 五, 五星, 5星, 五颗星, 4分, 满分
        (?P<number>[1-5一二两三四五])\s*(?:[颗个]?星级?|分)?
      | (?P<full>满分)
    )
    (?:                                         # 好评 / 差评, 谢谢 ...: "五星好评", "一星差评"
        \s*[,、.!~]*\s*
        (?:好评|中评|差评|谢谢|很好|不错|非常满意|很满意|满意|不满意|太差了|很差|吧|啊|哦|呀)
    )*
    [\s。.!~]*
    """,
    re.VERBOSE,
)


def rating_of(value: Any) -> int | None:
    """The 1-5 satisfaction rating a slot value or a whole message expresses, else None.

    A string counts only when the *whole* message is a rating, so numbers that are part of
    something else ("5 pairs", "order 5", "KF-100005", "3 days late") are not ratings; a short
    remark after the rating ("5 - great", "五星好评") is allowed. A list (a Rasa slot value can
    be one) is read by its first item.

    Examples::

        rating_of(5) == rating_of("5") == rating_of("５") == rating_of(["5"]) == 5
        rating_of("Five!") == rating_of("five stars") == rating_of("give it 5 stars") == 5
        rating_of("4/5") == rating_of("4 out of 5") == rating_of("I'd give you a 4") == 4
        rating_of("五星") == rating_of("五颗星") == rating_of("给五分") == rating_of("满分") == 5
        rating_of("打4分") == 4; rating_of("两星") == 2; rating_of("一星差评") == 1
        rating_of("6") is rating_of("0") is rating_of("5 pairs") is rating_of(True) is None

    Args:
        value: A slot value (int, str or list of them) or a message text.

    Returns:
        The rating, 1 to 5, or None when the value is not clearly a rating.
    """
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 1 <= value <= 5 else None
    if not isinstance(value, str):
        return None
    text = unicodedata.normalize("NFKC", value).strip()
    for grammar in (_EN_RATING, _ZH_RATING):
        match = grammar.fullmatch(text)
        if match is None:
            continue
        found = match.groupdict()
        if found.get("full"):
            return 5
        if found.get("stars"):
            return len(found["stars"])
        number = found["number"].lower()
        return int(number) if number.isdigit() else _RATING_WORDS[number]
    return None
