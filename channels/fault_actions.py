"""The remote action of :func:`channels.faults.install_fault_answers`: Rasa's ``RemoteAction``
with a deadline and a fault answer instead of silence (see :mod:`channels.faults`), its
check of the action server's answer with the schema's validator built once, and its calls on
kept connections (:class:`KeptEndpoint`).

Its own module because Rasa's action classes import TensorFlow: only a Rasa server loads it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import weakref

import aiohttp
from jsonschema.exceptions import best_match
from jsonschema.validators import validator_for
from rasa.core.actions.action import ActionExecutionRejection, RemoteAction, create_bot_utterance
from rasa.shared.constants import DOCS_BASE_URL
from rasa.shared.core.constants import ACTION_LISTEN_NAME
from rasa.shared.core.events import BotUttered, FollowupAction, UserUttered
from rasa.utils.endpoints import DEFAULT_REQUEST_TIMEOUT, EndpointConfig

from channels.faults import FAULT_RESPONSE, action_timeout, fault_reply
from contract import LANGUAGE_SLOT

logger = logging.getLogger(__name__)


#: Seconds an idle kept connection to the action server's balancer stays open: below nginx's
#: own 75 s, so the client, not the server, closes it, and no call is written onto a
#: connection the server is closing.
KEEPALIVE_S = 15.0


class _Borrowed:
    """A shared session for ``async with``: Rasa's ``request`` closes the session it opens;
    leaving a borrowed one open is the point."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def __aenter__(self) -> aiohttp.ClientSession:
        return self.session

    async def __aexit__(self, *exc) -> None:
        return None


class KeptEndpoint(EndpointConfig):
    """Rasa's action endpoint, its calls on one HTTP session per event loop.

    Rasa opens a new ``aiohttp`` session, and so a new connection, for every action call: 6% of
    a loaded replica's main thread (py-spy, docs/BENCHMARKS.md). The session here keeps its
    connections for :data:`KEEPALIVE_S`. The session's settings are Rasa's (headers, basic
    auth, its request timeout).
    """

    _sessions: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    @classmethod
    def of(cls, endpoint: EndpointConfig | None) -> KeptEndpoint | None:
        """The same endpoint, kept (None stays None)."""
        if endpoint is None or isinstance(endpoint, KeptEndpoint):
            return endpoint
        return cls(
            url=endpoint.url,
            params=endpoint.params,
            headers=endpoint.headers,
            basic_auth=endpoint.basic_auth,
            token=endpoint.token,
            token_name=endpoint.token_name,
            cafile=endpoint.cafile,
            type=endpoint.type,
            **endpoint.kwargs,
        )

    def session(self) -> _Borrowed:  # type: ignore[override]
        # Rasa builds a new remote action, and so a new endpoint, for every action it runs:
        # the sessions live with the event loop, one per set of headers and credentials.
        sessions = self._sessions.setdefault(asyncio.get_running_loop(), {})
        key = repr((sorted(self.headers.items()), sorted(self.basic_auth.items())))
        session = sessions.get(key)
        if session is None or session.closed:
            auth = None
            if self.basic_auth:
                auth = aiohttp.BasicAuth(self.basic_auth["username"], self.basic_auth["password"])
            session = aiohttp.ClientSession(
                headers=self.headers,
                auth=auth,
                timeout=aiohttp.ClientTimeout(total=DEFAULT_REQUEST_TIMEOUT),
                connector=aiohttp.TCPConnector(keepalive_timeout=KEEPALIVE_S),
            )
            sessions[key] = session
        return _Borrowed(session)


class KefuRemoteAction(RemoteAction):
    """Rasa's ``RemoteAction`` that answers the customer when the action server fails."""

    def __init__(self, name: str, action_endpoint: EndpointConfig | None) -> None:
        super().__init__(name, KeptEndpoint.of(action_endpoint))

    async def run(self, output_channel, nlg, tracker, domain) -> list:
        """Run the action on the action server, or end the turn with the fault answer.

        A rejection (``ActionExecutionRejection``, the action server's own 400) is Rasa's
        normal way to let another policy act and passes unchanged.
        """
        try:
            return await asyncio.wait_for(
                super().run(output_channel, nlg, tracker, domain), timeout=action_timeout()
            )
        except ActionExecutionRejection:
            raise
        except Exception as e:  # noqa: BLE001 - any failure must still answer the customer
            reason = "timed out" if isinstance(e, asyncio.TimeoutError) else repr(e)
            logger.error(
                "action %s for conversation %s failed (%s); the customer is told to try again "
                "shortly. Check the action server at %s.",
                self.name(),
                tracker.sender_id,
                reason,
                self.action_endpoint.url if self.action_endpoint else None,
            )
            return [await self._fault_answer(output_channel, nlg, tracker), _end_turn()]

    def _validate_action_result(self, result: dict) -> bool:
        """Rasa's check of the action server's answer, against the same schema.

        Rasa calls ``jsonschema.validate``, which checks the large, constant events schema
        against its meta-schema and builds a new validator on every action call: under load
        that was 30% of a replica's busy CPU (py-spy, docs/BENCHMARKS.md). The validator is
        built once here; the answer is checked as before and fails with the same error.
        """
        error = best_match(_response_validator().iter_errors(result))
        if error is not None:
            error.message += (
                ". Failed to validate Action server response from API, make sure your "
                "response from the Action endpoint is valid. For more information about the "
                f"format visit {DOCS_BASE_URL}/custom-actions"
            )
            raise error
        return True

    @staticmethod
    async def _fault_answer(output_channel, nlg, tracker) -> BotUttered:
        if tracker.get_last_event_for(UserUttered) is None:
            # A new conversation's session start runs before its first message is read: the
            # customer's language is not known yet, so both are said.
            draft = {"text": fault_reply(None)}
        else:
            draft = await nlg.generate(FAULT_RESPONSE, tracker, output_channel.name())
        if not draft:
            # A model trained before domain/faults.yml existed has no such response.
            language = tracker.get_slot(LANGUAGE_SLOT) if LANGUAGE_SLOT in tracker.slots else None
            draft = {"text": fault_reply(language)}
        draft["utter_action"] = FAULT_RESPONSE
        return create_bot_utterance(draft)


def _end_turn() -> FollowupAction:
    # Listen next: the flow's later actions would only fail the same way.
    return FollowupAction(ACTION_LISTEN_NAME)


@functools.lru_cache(maxsize=1)
def _response_validator():
    """The validator of Rasa's action-server answer schema, its schema checked once."""
    schema = RemoteAction.action_response_format_spec()
    cls = validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)
