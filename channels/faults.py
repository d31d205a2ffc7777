"""What the customer hears when a part behind Rasa fails, and what the operator reads.

Two faults end a turn before any action can answer:

- **The action server is down, failing or too slow.** Rasa's ``RemoteAction.run`` raises, the
  processor logs the error and drops the action's events: the customer hears nothing. Rasa 3.6
  builds remote actions in exactly two places (``rasa.core.actions.action`` for predicted
  actions and custom slot mappings, ``rasa.core.actions.forms`` for form validation) and has
  no setting for the class, so :func:`install_fault_answers` puts :class:`KefuRemoteAction`
  there (:mod:`channels.fault_actions`). It is Rasa's own ``RemoteAction`` with a deadline (``KEFU_ACTION_TIMEOUT_S``, 30 s;
  Rasa waits 5 minutes) and, when the call fails, the turn ends with
  ``utter_service_trouble`` (domain/faults.yml) instead of silence. The user message is
  already in the tracker; the failed action's effects are not (its events never came back).
  A custom processor would do the same by copying Rasa's whole message loop.
- **Redis (the lock store) is unreachable.** With several replicas a conversation processed
  without its lock could be written by two replicas at once, so there is no fallback:
  :class:`RefusingRedisLockStore` refuses the turn with :class:`LockStoreUnavailable` and one
  clear operator log line per outage; the channels answer :func:`fault_reply`.

The action server's own commerce calls stop committing before this deadline
(``actions.common.call_service``, ``KEFU_SERVICE_TIMEOUT_S``, 10 s), so an action that Rasa
gives up on has not changed an order behind the customer's back.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from contextlib import asynccontextmanager
from typing import Any

import redis
from rasa.core.lock_store import LOCK_LIFETIME, LockError, RedisLockStore
from rasa.utils.endpoints import EndpointConfig

from contract import LANGUAGES

logger = logging.getLogger(__name__)

#: The domain response of a turn that a failure ended (domain/faults.yml).
FAULT_RESPONSE = "utter_service_trouble"
#: Seconds a channel asks a refused client to wait before sending again (Retry-After).
RETRY_AFTER_FAULT_S = 5
#: Its words, for the channels (no tracker at hand) and for a model trained before the
#: response existed. tests/channels/test_channel_faults.py keeps them equal to domain/faults.yml.
FAULT_TEXT = {
    "en": "Sorry, we're having trouble on our side. Please try again shortly.",
    "zh": "抱歉，系统暂时有点问题，请稍后再试。",
}
ACTION_TIMEOUT_ENV = "KEFU_ACTION_TIMEOUT_S"
#: Well above the commerce deadline (10 s) and its commit grace (5 s).
DEFAULT_ACTION_TIMEOUT_S = 30.0
#: Seconds between two operator log lines about the same lock store outage.
OUTAGE_LOG_INTERVAL_S = 60.0
#: Seconds between two looks at a busy conversation lock. Rasa waits a whole second, so a
#: message sent while the previous turn of the same conversation was still being saved (the
#: web chat shows the reply before that) waited about 1 s more: the p95 of back-to-back turns
#: in `make bench-load`'s closed loop. A look is one Redis GET.
LOCK_POLL_S = 0.05


def fault_reply(language: str | None = None) -> str:
    """The fault answer in ``language``; both languages when it is not known."""
    if language in LANGUAGES:
        return FAULT_TEXT[language]
    return f"{FAULT_TEXT['en']} {FAULT_TEXT['zh']}"


def action_timeout() -> float:
    """Seconds Rasa waits for the action server (``KEFU_ACTION_TIMEOUT_S``, 30 by default)."""
    try:
        value = float(os.environ.get(ACTION_TIMEOUT_ENV, DEFAULT_ACTION_TIMEOUT_S))
    except ValueError:
        return DEFAULT_ACTION_TIMEOUT_S
    return value if value > 0 else DEFAULT_ACTION_TIMEOUT_S


def install_fault_answers() -> None:
    """Make Rasa build :class:`KefuRemoteAction` wherever it builds a remote action.

    Idempotent; called by the Rasa server's Kefu plugins when they start
    (:class:`channels.tracker_store.MaskingSQLTrackerStore`). Imports Rasa's core (about 9 s
    of TensorFlow the first time), which a Rasa server has loaded anyway.
    """

    import rasa.core.actions.action as rasa_actions
    import rasa.core.actions.forms as rasa_forms

    from channels.fault_actions import KefuRemoteAction

    rasa_actions.RemoteAction = KefuRemoteAction
    rasa_forms.RemoteAction = KefuRemoteAction


# --- lock store --------------------------------------------------------------------------------


class LockStoreUnavailable(LockError):
    """The conversation lock store cannot be reached; the turn is refused, not processed."""


_REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


class RefusingRedisLockStore(RedisLockStore):
    """Rasa's ``RedisLockStore`` that refuses a turn clearly when Redis is unreachable.

    Use it in endpoints.yml as ``type: channels.faults.RefusingRedisLockStore`` with Rasa's
    ``redis`` settings (``url``, ``port``, ``db``, ``password``, ``key_prefix``,
    ``socket_timeout``). A turn whose lock cannot be taken raises
    :class:`LockStoreUnavailable` before anything is read or written; a lock that cannot be
    released when Redis goes away mid-turn expires after its lifetime (Rasa's
    ``TICKET_LOCK_LIFETIME``, 60 s) instead of failing a turn that is already done.
    """

    def __init__(self, endpoint_config: EndpointConfig | None = None, **kwargs: Any) -> None:
        if endpoint_config is not None:
            kwargs = {**endpoint_config.kwargs, **kwargs}
            kwargs.setdefault("host", endpoint_config.url or "localhost")
        kwargs.setdefault("socket_timeout", 2)
        super().__init__(**kwargs)
        self._outage_lock = threading.Lock()
        self._last_outage_log = 0.0

    def _where(self) -> str:
        kwargs = self.red.connection_pool.connection_kwargs
        return f"{kwargs.get('host')}:{kwargs.get('port')}"

    def _unavailable(self, conversation_id: str, error: Exception) -> LockStoreUnavailable:
        now = time.monotonic()
        with self._outage_lock:
            loud = now - self._last_outage_log >= OUTAGE_LOG_INTERVAL_S
            if loud:
                self._last_outage_log = now
        message = (
            f"Redis lock store at {self._where()} unreachable ({error}); refusing turns until "
            "it is back, since a conversation without its lock could be written by two "
            "replicas. Start or fix Redis."
        )
        if loud:
            logger.error(message)
        else:
            logger.debug("turn of %s refused: lock store unreachable", conversation_id)
        return LockStoreUnavailable(message)

    def issue_ticket(self, conversation_id: str, lock_lifetime: float = LOCK_LIFETIME) -> int:
        """Rasa's ticket, or :class:`LockStoreUnavailable` when Redis does not answer."""
        try:
            lock = self.get_or_create_lock(conversation_id)
            ticket = lock.issue_ticket(lock_lifetime)
            self.save_lock(lock)
            return ticket
        except _REDIS_DOWN as e:
            raise self._unavailable(conversation_id, e) from e

    @asynccontextmanager
    async def lock(
        self,
        conversation_id: str,
        lock_lifetime: float = LOCK_LIFETIME,
        wait_time_in_seconds: float = LOCK_POLL_S,
    ):
        """Rasa's lock, looked at every :data:`LOCK_POLL_S` while busy; Redis failing while
        waiting refuses the turn like failing at first."""
        ticket = self.issue_ticket(conversation_id, lock_lifetime)
        try:
            try:
                acquired = await self._acquire_lock(conversation_id, ticket, wait_time_in_seconds)
            except _REDIS_DOWN as e:
                raise self._unavailable(conversation_id, e) from e
            yield acquired
        finally:
            try:
                self.cleanup(conversation_id, ticket)
            except _REDIS_DOWN as e:
                logger.warning(
                    "lock of %s not released (%s); it expires in %s s",
                    conversation_id,
                    e,
                    lock_lifetime,
                )
