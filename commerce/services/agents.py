"""Agent accounts of the human-agent console, their tokens, and the audit log of what they did.

Each agent has an own bearer token (32 random bytes, URL-safe text) made by
``python -m commerce agent add NAME``; only its SHA-256 hash is stored, so the database never
holds a usable token. An agent's name comes from the account the token belongs to, never from
anything the client sends, so the audit log and the assignee of a handoff cannot be forged.

Failed logins are recorded (action ``login_failed``, with the keyed hash of the client address)
and a client with more than :data:`MAX_LOGIN_FAILURES` failures within
:data:`LOGIN_FAILURE_WINDOW` is refused before its token is even looked at.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from datetime import timedelta

from sqlalchemy import func, select

from commerce.db import begin_write
from commerce.dto import AgentAccount, AgentAuditView
from commerce.errors import InvalidInput, NotAuthorized, TooManyAttempts
from commerce.models import Agent, AgentAuditEntry
from commerce.services._common import check_text, lock_key, utcnow

logger = logging.getLogger(__name__)

#: Failed logins one client may make within the window before it is refused outright.
MAX_LOGIN_FAILURES = 10
LOGIN_FAILURE_WINDOW = timedelta(minutes=15)
TOKEN_BYTES = 32
#: Longer bearer values are refused without a lookup (a token is 43 characters).
MAX_TOKEN_CHARS = 200

ACTION_LOGIN_FAILED = "login_failed"
ACTION_CLAIM = "claim"
ACTION_REPLY = "reply"
ACTION_HANDBACK = "handback"
ACTION_DENIED = "denied"  # an agent tried to act on a handoff that is not theirs
ACTION_CREATED = "created"
ACTION_TOKEN_ROTATED = "token_rotated"
ACTION_DISABLED = "disabled"
AUDIT_ACTIONS = (
    ACTION_LOGIN_FAILED,
    ACTION_CLAIM,
    ACTION_REPLY,
    ACTION_HANDBACK,
    ACTION_DENIED,
    ACTION_CREATED,
    ACTION_TOKEN_ROTATED,
    ACTION_DISABLED,
)

#: Letters (any script), digits, spaces and . ' - ; shown to customers ("Anna is with you").
AGENT_NAME = re.compile(r"^[\w .'\-]{1,40}$")


def hash_token(token: str) -> str:
    """The stored form of an agent token (SHA-256, hex); a 256-bit random token needs no salt."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_agent_name(name: object) -> str:
    """Validate an agent's display name: 1-40 letters, digits, spaces, ``.``, ``'`` or ``-``.

    Raises:
        InvalidInput: anything else (names reach customers' screens and the audit log).
    """
    name = check_text(name, "name", max_len=40)
    if not AGENT_NAME.match(name):
        raise InvalidInput("name", "1-40 letters, digits, spaces, dots, apostrophes or hyphens")
    return name


def _account(agent: Agent) -> AgentAccount:
    return AgentAccount(
        agent_id=agent.id,
        name=agent.name,
        created_at=agent.created_at,
        disabled_at=agent.disabled_at,
    )


def _audit(
    session, agent_name, action, *, handoff_id=None, conversation_id=None, key=None, detail=None
):
    session.add(
        AgentAuditEntry(
            agent_name=agent_name,
            action=action,
            handoff_id=handoff_id,
            conversation_id=conversation_id,
            client_key=key,
            detail=detail[:200] if detail else None,
            at=utcnow(),
        )
    )


def _client_key(client: str | None) -> str | None:
    from commerce.services.identity import client_key

    return client_key(client) if client else None


def _load(session, name: str) -> Agent:
    agent = session.execute(select(Agent).where(Agent.name == name)).scalar_one_or_none()
    if agent is None:
        raise InvalidInput("name", f"no agent named {name!r}")
    return agent


def create_agent(session_factory, name: str) -> tuple[AgentAccount, str]:
    """Create an agent account and its token.

    Returns:
        The account and the token in clear: show it to the agent once; it cannot be recovered.

    Raises:
        InvalidInput: a malformed name, or an agent of that name exists already.
    """
    name = check_agent_name(name)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    with session_factory.begin() as session:
        begin_write(session)
        lock_key(session, f"agent:{name}")
        exists = session.execute(select(Agent.id).where(Agent.name == name)).first()
        if exists is not None:
            raise InvalidInput("name", f"an agent named {name!r} exists already")
        agent = Agent(name=name, token_hash=hash_token(token), created_at=utcnow())
        session.add(agent)
        _audit(session, name, ACTION_CREATED)
        session.flush()
        return _account(agent), token


def get_agent(session_factory, name: str) -> AgentAccount | None:
    """The account of that name, or None."""
    name = check_agent_name(name)
    with session_factory() as session:
        agent = session.execute(select(Agent).where(Agent.name == name)).scalar_one_or_none()
        return _account(agent) if agent is not None else None


def rotate_token(session_factory, name: str) -> str:
    """Give an agent a new token; the old one stops working at once. A disabled agent stays
    disabled.

    Raises:
        InvalidInput: malformed name, or no such agent.
    """
    name = check_agent_name(name)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    with session_factory.begin() as session:
        begin_write(session)
        agent = _load(session, name)
        agent.token_hash = hash_token(token)
        _audit(session, name, ACTION_TOKEN_ROTATED)
    return token


def disable_agent(session_factory, name: str) -> AgentAccount:
    """Refuse the agent's token from now on (idempotent); the audit log keeps the name.

    Raises:
        InvalidInput: malformed name, or no such agent.
    """
    name = check_agent_name(name)
    with session_factory.begin() as session:
        begin_write(session)
        agent = _load(session, name)
        if agent.disabled_at is None:
            agent.disabled_at = utcnow()
            _audit(session, name, ACTION_DISABLED)
        session.flush()
        return _account(agent)


def list_agents(session_factory) -> tuple[AgentAccount, ...]:
    """Every account, disabled ones included, by name."""
    with session_factory() as session:
        rows = session.execute(select(Agent).order_by(Agent.name)).scalars()
        return tuple(_account(a) for a in rows)


def authenticate(session_factory, token: object, *, client: str | None = None) -> AgentAccount:
    """The account a bearer token belongs to.

    The token is found by its hash (an index lookup; no comparison of secrets that could leak
    timing). Each failure is recorded as ``login_failed`` with the client's keyed hash; a client
    past :data:`MAX_LOGIN_FAILURES` in :data:`LOGIN_FAILURE_WINDOW` is refused before its token
    is looked at, so a throttled client learns nothing, not even about a right token. The count
    and the insert are serialised per client (an advisory lock on PostgreSQL, the single writer
    on SQLite), so parallel guesses cannot pass the cap.

    Args:
        token: the bearer value the client sent.
        client: the client's address (hashed with :func:`commerce.services.identity.client_key`
            before it is stored); failures without one share one bucket.

    Raises:
        TooManyAttempts: the client is throttled (``retry_after_s``).
        NotAuthorized: unknown, malformed or disabled agent's token.
    """
    key = _client_key(client)
    since = utcnow() - LOGIN_FAILURE_WINDOW
    valid = isinstance(token, str) and 0 < len(token) <= MAX_TOKEN_CHARS
    with session_factory.begin() as session:
        begin_write(session)
        lock_key(session, f"agent-login:{key}")
        client_match = (
            AgentAuditEntry.client_key == key if key else AgentAuditEntry.client_key.is_(None)
        )
        failures, oldest = session.execute(
            select(func.count(AgentAuditEntry.id), func.min(AgentAuditEntry.at)).where(
                AgentAuditEntry.action == ACTION_LOGIN_FAILED,
                AgentAuditEntry.at >= since,
                client_match,
            )
        ).one()
        if failures >= MAX_LOGIN_FAILURES:
            retry = int((oldest + LOGIN_FAILURE_WINDOW - utcnow()).total_seconds()) + 1
            logger.warning(
                "agent console: client %s throttled after %d failed logins", key, failures
            )
            raise TooManyAttempts("too many failed agent logins", max(retry, 1))
        agent = None
        if valid:
            agent = session.execute(
                select(Agent).where(Agent.token_hash == hash_token(token))
            ).scalar_one_or_none()
        if agent is not None and agent.disabled_at is None:
            return _account(agent)
        detail = "disabled agent" if agent is not None else "unknown token"
        _audit(
            session,
            agent.name if agent is not None else None,
            ACTION_LOGIN_FAILED,
            key=key,
            detail=detail,
        )
    raise NotAuthorized(f"agent login refused: {detail}")


def record_audit(
    session_factory,
    agent_name: str | None,
    action: str,
    *,
    handoff_id: int | None = None,
    conversation_id: str | None = None,
    client: str | None = None,
    detail: str | None = None,
) -> None:
    """Append one line to the audit log (``client`` is an address; only its keyed hash is kept).

    Raises:
        InvalidInput: an action outside :data:`AUDIT_ACTIONS`.
    """
    if action not in AUDIT_ACTIONS:
        raise InvalidInput("action", f"expected one of {', '.join(AUDIT_ACTIONS)}, got {action!r}")
    with session_factory.begin() as session:
        begin_write(session)
        _audit(
            session,
            agent_name,
            action,
            handoff_id=handoff_id,
            conversation_id=conversation_id,
            key=_client_key(client),
            detail=detail,
        )


def list_audit(
    session_factory,
    *,
    agent_name: str | None = None,
    action: str | None = None,
    handoff_id: int | None = None,
    limit: int = 100,
) -> tuple[AgentAuditView, ...]:
    """Audit lines, newest first, optionally for one agent, action or handoff."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
        raise InvalidInput("limit", "must be an integer between 1 and 1000")
    stmt = select(AgentAuditEntry)
    if agent_name is not None:
        stmt = stmt.where(AgentAuditEntry.agent_name == agent_name)
    if action is not None:
        stmt = stmt.where(AgentAuditEntry.action == action)
    if handoff_id is not None:
        stmt = stmt.where(AgentAuditEntry.handoff_id == handoff_id)
    stmt = stmt.order_by(AgentAuditEntry.at.desc(), AgentAuditEntry.id.desc()).limit(limit)
    with session_factory() as session:
        return tuple(
            AgentAuditView(
                audit_id=e.id,
                agent_name=e.agent_name,
                action=e.action,
                handoff_id=e.handoff_id,
                conversation_id=e.conversation_id,
                client_key=e.client_key,
                detail=e.detail,
                at=e.at,
            )
            for e in session.execute(stmt).scalars()
        )
