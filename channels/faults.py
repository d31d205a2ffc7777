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

A replica killed mid-turn leaves its conversation's lock behind. Rasa's ticket lives 60 s, so
the customer's message sent again to another replica waited up to a minute, longer than a
client waits (`make bench-load-faults` at 200 conversations: 6 conversations lost that way).
:class:`RefusingRedisLockStore` therefore holds a ticket as a lease: a short expiry
(:data:`LEASE_S`) that the replica renews while the turn runs, up to Rasa's lifetime. A live
replica keeps its conversation however slow the turn; a dead one frees it within the lease.

The action server's own commerce calls stop committing before this deadline
(``actions.common.call_service``, ``KEFU_SERVICE_TIMEOUT_S``, 10 s), so an action that Rasa
gives up on has not changed an order behind the customer's back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import redis
from rasa.core.lock import TicketLock
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
#: web chat showed replies before the save until :class:`channels.webchat.TurnOutput`) waited
#: about 1 s more: the p95 of back-to-back turns in `make bench-load`'s closed loop. A look is
#: one Redis GET.
LOCK_POLL_S = 0.05
#: Seconds a conversation's lock outlives a replica that stopped renewing it (killed, frozen).
#: Renewed every fifth of it; long enough that a busy event loop never misses a renewal.
LEASE_S = 10.0

_T = TypeVar("_T")


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
    ``socket_timeout``) and ``lease_s`` (:data:`LEASE_S`). A turn whose lock cannot be taken
    raises :class:`LockStoreUnavailable` before anything is read or written; a lock that cannot
    be released when Redis goes away mid-turn expires after its lease instead of failing a turn
    that is already done. Every change to a lock is atomic (:meth:`_change`).
    """

    def __init__(self, endpoint_config: EndpointConfig | None = None, **kwargs: Any) -> None:
        if endpoint_config is not None:
            kwargs = {**endpoint_config.kwargs, **kwargs}
            kwargs.setdefault("host", endpoint_config.url or "localhost")
        kwargs.setdefault("socket_timeout", 2)
        self.lease_s = float(kwargs.pop("lease_s", LEASE_S))
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

    def _change(
        self,
        conversation_id: str,
        change: Callable[[TicketLock | None], tuple[TicketLock | None, _T]],
    ) -> _T:
        """Applies ``change`` to the stored lock atomically and returns its result.

        Rasa reads a lock, changes it and writes it back as two commands, so two replicas
        issuing tickets for one conversation at once can overwrite each other's. Here the write
        happens only if nobody wrote the lock since it was read (Redis WATCH), else the change
        is made again on the newer lock. ``change`` returns the lock to write (None: nothing
        to write) and its result; a lock left without tickets is deleted.
        """
        key = self.key_prefix + conversation_id
        with self.red.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    stored = pipe.get(key)
                    lock = TicketLock.from_dict(json.loads(stored)) if stored else None
                    changed, result = change(lock)
                    if changed is None:
                        pipe.unwatch()
                        return result
                    pipe.multi()
                    if changed.tickets:
                        pipe.set(key, changed.dumps())
                    else:
                        pipe.delete(key)
                    pipe.execute()
                    return result
                except redis.WatchError:
                    continue

    def issue_ticket(self, conversation_id: str, lock_lifetime: float = LOCK_LIFETIME) -> int:
        """A ticket that expires after ``lock_lifetime`` unless renewed (see :meth:`lock`), or
        :class:`LockStoreUnavailable` when Redis does not answer."""

        def issue(lock: TicketLock | None) -> tuple[TicketLock, int]:
            lock = lock or self.create_lock(conversation_id)
            return lock, lock.issue_ticket(lock_lifetime)

        try:
            return self._change(conversation_id, issue)
        except _REDIS_DOWN as e:
            raise self._unavailable(conversation_id, e) from e

    def renew(self, conversation_id: str, ticket: int, lifetime: float) -> bool:
        """Moves ``ticket``'s expiry to ``lifetime`` seconds from now; False when the ticket is
        gone (it expired: another replica may have the conversation now)."""

        def extend(lock: TicketLock | None) -> tuple[TicketLock | None, bool]:
            held = next((t for t in lock.tickets if t.number == ticket), None) if lock else None
            if held is None:
                return None, False
            held.expires = max(held.expires, time.time() + lifetime)
            return lock, True

        return self._change(conversation_id, extend)

    def update_lock(self, conversation_id: str) -> None:
        """Drops expired tickets (those of replicas that stopped renewing), atomically."""

        def drop_expired(lock: TicketLock | None) -> tuple[TicketLock | None, None]:
            if lock is None or not any(t.has_expired() for t in lock.tickets):
                return None, None  # nothing to write: the holder's next change goes through
            lock.remove_expired_tickets()
            return lock, None

        self._change(conversation_id, drop_expired)

    def cleanup(self, conversation_id: str, ticket_number: int) -> None:
        """Gives the ticket back; the lock goes when nobody else holds or waits."""

        def give_back(lock: TicketLock | None) -> tuple[TicketLock | None, None]:
            if lock is None:
                return None, None
            lock.remove_ticket_for(ticket_number)
            return lock, None

        self._change(conversation_id, give_back)

    async def _keep(self, conversation_id: str, ticket: int, until: float) -> None:
        """Renews the ticket's lease until cancelled or until ``until`` (monotonic)."""
        while True:
            await asyncio.sleep(self.lease_s / 5)
            left = until - time.monotonic()
            if left <= 0:
                return  # a turn stuck this long loses its lock, as with Rasa's lifetime
            try:
                if not self.renew(conversation_id, ticket, min(self.lease_s, left)):
                    logger.warning("lock of %s expired while its turn ran", conversation_id)
                    return
            except _REDIS_DOWN as e:
                logger.warning("lock of %s not renewed (%s); retrying", conversation_id, e)

    @asynccontextmanager
    async def lock(
        self,
        conversation_id: str,
        lock_lifetime: float = LOCK_LIFETIME,
        wait_time_in_seconds: float = LOCK_POLL_S,
    ):
        """Rasa's lock, held as a lease: the ticket expires :attr:`lease_s` after the last
        renewal, and is renewed while this replica waits for it and runs the turn, for at
        most ``lock_lifetime`` in all. It is looked at every :data:`LOCK_POLL_S` while busy;
        Redis failing while waiting refuses the turn like failing at first."""
        lease = min(self.lease_s, lock_lifetime)
        ticket = self.issue_ticket(conversation_id, lease)
        keeper = asyncio.create_task(
            self._keep(conversation_id, ticket, time.monotonic() + lock_lifetime)
        )
        try:
            try:
                acquired = await self._acquire_lock(conversation_id, ticket, wait_time_in_seconds)
            except _REDIS_DOWN as e:
                raise self._unavailable(conversation_id, e) from e
            yield acquired
        finally:
            keeper.cancel()
            try:
                self.cleanup(conversation_id, ticket)
            except _REDIS_DOWN as e:
                logger.warning(
                    "lock of %s not released (%s); it expires in %s s",
                    conversation_id,
                    e,
                    lease,
                )
