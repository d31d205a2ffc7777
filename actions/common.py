"""What every action module shares: the session factory, the language, service calls that fail
politely, and log masking (:mod:`commerce.privacy`).

Actions stay thin: they read slots, call one ``commerce.services`` function through
:func:`call_service` and utter a domain response. Everything the customer reads comes from the
domain's responses (``en`` and ``zh`` variations on the ``language`` slot); actions only pass
parameters such as ``{order_number}``.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.exc import SQLAlchemyError

from commerce.db import CommitDeadline, reset_shared_session_factory, shared_session_factory
from commerce.errors import (
    AddressChangeNotAllowed,
    CommerceError,
    NotEligibleForReturn,
    OrderNotCancellable,
    TooManyAttempts,
)
from commerce.privacy import install_pii_masking, mask_pii  # noqa: F401 - mask_pii re-exported
from contract import LANGUAGE_SLOT, LANGUAGE_ZH, language_or_default

logger = logging.getLogger(__name__)

#: Seconds a service call may take before the customer is told to try again later.
SERVICE_TIMEOUT_ENV = "KEFU_SERVICE_TIMEOUT_S"
DEFAULT_SERVICE_TIMEOUT_S = 10.0
#: Seconds an overrun call that is already committing may take to report its outcome.
COMMIT_GRACE_S = 5.0
TRY_AGAIN_LATER = "utter_try_again_later"


class ServiceUnavailable(Exception):
    """The database or a service is down or too slow; the customer should try again later."""


#: The action server's sessionmaker (see :func:`commerce.db.shared_session_factory`).
session_factory = shared_session_factory
reset_session_factory = reset_shared_session_factory


def service_timeout() -> float:
    """Seconds a commerce call may take (``KEFU_SERVICE_TIMEOUT_S``, 10 by default)."""
    try:
        return float(os.environ.get(SERVICE_TIMEOUT_ENV, DEFAULT_SERVICE_TIMEOUT_S))
    except ValueError:
        return DEFAULT_SERVICE_TIMEOUT_S


async def call_service(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run ``fn(session_factory, *args, **kwargs)`` in a worker thread under a commit deadline.

    Services are synchronous; a thread keeps the action server's event loop serving other
    conversations while one waits on the database. The call gets :func:`service_timeout`
    seconds, well inside Rasa's action timeout (``KEFU_ACTION_TIMEOUT_S``, channels/faults.py),
    so the customer hears from this action before Rasa gives up on it. A call that overruns is
    abandoned (:class:`commerce.db.CommitDeadline`): its transaction can no longer commit, and
    the customer's "try again later" stays true. When the overrun call is already committing,
    the action waits up to :data:`COMMIT_GRACE_S` for the outcome and answers with it.

    Raises:
        CommerceError: the service's own typed errors, unchanged.
        ServiceUnavailable: database errors, a timeout, or a database that cannot be opened.
    """
    deadline = CommitDeadline(service_timeout())

    def invoke():
        with deadline:
            return fn(session_factory(), *args, **kwargs)

    work = asyncio.ensure_future(asyncio.to_thread(invoke))
    # An abandoned call ends later with DeadlinePassed; nobody awaits it any more.
    work.add_done_callback(lambda done: done.cancelled() or done.exception())
    try:
        try:
            return await asyncio.wait_for(asyncio.shield(work), timeout=deadline.remaining())
        except asyncio.TimeoutError:
            if deadline.abandon():
                raise
            # The service is inside COMMIT: its outcome is what the customer must hear.
            logger.warning("%s overran its deadline while committing; waiting", fn.__name__)
            return await asyncio.wait_for(asyncio.shield(work), timeout=COMMIT_GRACE_S)
    except CommerceError:
        raise
    except (SQLAlchemyError, asyncio.TimeoutError, TimeoutError, OSError) as e:
        logger.warning("%s unavailable: %s: %s", fn.__name__, type(e).__name__, e)
        raise ServiceUnavailable(fn.__name__) from e


def lang(tracker: Tracker) -> str:
    """The customer's language, ``en`` or ``zh`` (``en`` when unknown)."""
    return language_or_default(tracker.get_slot(LANGUAGE_SLOT))


def pick(tracker: Tracker, en: str | None, zh: str | None) -> str:
    """Choose the ``*_en`` or ``*_zh`` field of a DTO for the customer's language."""
    if lang(tracker) == LANGUAGE_ZH:
        return zh or en or ""
    return en or zh or ""


_CURRENCY_SIGNS = {"USD": "$", "CNY": "¥", "EUR": "€", "GBP": "£"}


def money(cents: int, currency: str) -> str:
    """``1999, "USD"`` → ``$19.99``; unknown currencies keep their code."""
    sign = _CURRENCY_SIGNS.get(currency)
    amount = f"{cents / 100:,.2f}"
    return f"{sign}{amount}" if sign else f"{currency} {amount}"


def error_params(error: CommerceError) -> dict[str, Any]:
    """Parameters the ``utter_error_<code>`` responses may use."""
    params: dict[str, Any] = {}
    if isinstance(error, (OrderNotCancellable, AddressChangeNotAllowed)):
        params["order_number"] = error.order_number
    if isinstance(error, TooManyAttempts):
        params["minutes"] = max(1, (error.retry_after_s + 59) // 60)
    if isinstance(error, NotEligibleForReturn):
        params["reason"] = error.reason
    return params


def utter_for_exception(dispatcher: CollectingDispatcher, error: Exception) -> bool:
    """Utter the polite answer for a service failure; False when ``error`` is not one."""
    if isinstance(error, NotEligibleForReturn) and error.reason:
        dispatcher.utter_message(response=f"utter_return_not_eligible_{error.reason}")
        return True
    if isinstance(error, CommerceError):
        logger.info("commerce refused: %s (%s)", error.code, error.message)
        dispatcher.utter_message(response=f"utter_error_{error.code}", **error_params(error))
        return True
    if isinstance(error, ServiceUnavailable):
        dispatcher.utter_message(response=TRY_AGAIN_LATER)
        return True
    return False


def polite_failures(*reset_slots: str):
    """Decorator for ``Action.run``: turn commerce errors and outages into polite answers.

    A refused or failed call utters ``utter_error_<code>`` or ``utter_try_again_later`` and
    returns only ``SlotSet(slot, None)`` for ``reset_slots`` (the flow's used-up answers), so the
    server keeps serving and a later attempt starts clean.
    """

    def decorate(
        run: Callable[..., Awaitable[list[dict[str, Any]]]],
    ) -> Callable[..., Awaitable[list[dict[str, Any]]]]:
        @functools.wraps(run)
        async def wrapper(self, dispatcher, tracker, domain):
            try:
                return await run(self, dispatcher, tracker, domain)
            except (CommerceError, ServiceUnavailable) as e:
                utter_for_exception(dispatcher, e)
                return [SlotSet(slot, None) for slot in reset_slots]

        return wrapper

    return decorate


def idempotency_key(tracker: Tracker, purpose: str) -> str:
    """A key that is the same when Rasa retries this action for the same user message."""
    latest = tracker.latest_message or {}
    stamp = ""
    for event in reversed(tracker.events):
        if event.get("event") == "user":
            stamp = str(event.get("timestamp", ""))
            break
    raw = f"{tracker.sender_id}|{purpose}|{latest.get('message_id', '')}|{stamp}"
    return f"kefu:{purpose}:" + hashlib.sha256(raw.encode()).hexdigest()[:32]


# --- PII masking -------------------------------------------------------------------------------

# One masking function for logs, stored events and transcripts (commerce.privacy); installed for
# every log record of the action server. ``mask_pii`` stays importable from here.
install_pii_masking()
