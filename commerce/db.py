"""Engines and session factories for SQLite (embedded default) and PostgreSQL, and the commit
deadline of a service call (:class:`CommitDeadline`)."""

from __future__ import annotations

import contextvars
import threading
import time
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from commerce.config import database_url

#: Execution option a write transaction sets on its connection before it begins.
WRITE_OPTION = "kefu_write"
SQLITE_BUSY_TIMEOUT_MS = 15_000


def make_engine(url: str | None = None, **kwargs) -> Engine:
    """Create an engine with the pragmas / pool settings Kefu relies on.

    SQLite gets WAL, foreign keys and a busy timeout, and write transactions start with
    ``BEGIN IMMEDIATE`` so two writers queue up instead of failing on a lock upgrade.
    PostgreSQL gets ``pool_pre_ping`` so connections survive server restarts. Both hide query
    parameters in errors and logs (``hide_parameters=True``).

    Args:
        url: SQLAlchemy URL; defaults to :func:`commerce.config.database_url`.
        **kwargs: passed to :func:`sqlalchemy.create_engine`.

    Returns:
        A 2.0-style (``future=True``) engine.
    """
    url = url or database_url()
    # Query parameters (emails, phones, addresses) stay out of error messages and logs.
    kwargs.setdefault("hide_parameters", True)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        connect_args = kwargs.pop("connect_args", {})
        connect_args.setdefault("timeout", SQLITE_BUSY_TIMEOUT_MS / 1000)
        connect_args.setdefault("check_same_thread", False)
        engine = create_engine(url, future=True, connect_args=connect_args, **kwargs)
        _install_sqlite_hooks(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, future=True, **kwargs)


def _install_sqlite_hooks(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # pragma: no cover - trivial
        # Let SQLAlchemy emit BEGIN itself (pysqlite's implicit BEGIN is deferred and too late).
        dbapi_connection.isolation_level = None
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        # A deferred transaction that read first cannot wait for the write lock (SQLITE_BUSY
        # at once); IMMEDIATE takes it up front and the busy timeout queues writers.
        if conn.get_execution_options().get(WRITE_OPTION):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


def make_session_factory(url_or_engine: str | Engine | None = None) -> sessionmaker:
    """Create a 2.0-style sessionmaker for a URL or engine.

    Args:
        url_or_engine: an engine, a URL, or None for the configured database.

    Returns:
        ``sessionmaker`` with ``expire_on_commit=False`` (services return DTOs, but this keeps
        attribute access after commit cheap).
    """
    engine = url_or_engine if isinstance(url_or_engine, Engine) else make_engine(url_or_engine)
    factory = sessionmaker(bind=engine, future=True, expire_on_commit=False)
    # Every commit of every service passes the deadline check (a no-op without a deadline).
    event.listen(factory, "before_commit", _claim_commit)
    event.listen(factory, "after_transaction_end", _release_commit)
    return factory


_shared_lock = threading.Lock()
_shared_factory: sessionmaker | None = None
_shared_url: str | None = None


def shared_session_factory() -> sessionmaker:
    """The process-wide sessionmaker for the configured database, built on first use.

    Rebuilt when ``KEFU_DATABASE_URL`` changes (tests point it at a fresh database), never at
    import time, so a process that holds it (the action server, the Rasa server's channels)
    starts even when the database is down.
    """
    global _shared_factory, _shared_url
    url = database_url()
    with _shared_lock:
        if _shared_factory is None or url != _shared_url:
            _shared_factory = make_session_factory(url)
            _shared_url = url
        return _shared_factory


def reset_shared_session_factory() -> None:
    """Forget (and dispose) the process-wide sessionmaker."""
    global _shared_factory, _shared_url
    with _shared_lock:
        if _shared_factory is not None:
            _shared_factory.kw["bind"].dispose()
        _shared_factory = None
        _shared_url = None


def begin_write(session: Session) -> None:
    """Mark the session's transaction as a write; call first inside ``sf.begin()``.

    On SQLite this makes the transaction ``BEGIN IMMEDIATE``; on PostgreSQL it is a no-op
    (row locks come from ``with_for_update()``).
    """
    session.connection(execution_options={WRITE_OPTION: True})


def is_postgres(session: Session) -> bool:
    """True when the session is bound to PostgreSQL."""
    return session.get_bind().dialect.name == "postgresql"


# --- commit deadline ---------------------------------------------------------------------------


class DeadlinePassed(TimeoutError):
    """A commit came after its caller stopped waiting; the transaction was rolled back."""


_current_deadline: contextvars.ContextVar[CommitDeadline | None] = contextvars.ContextVar(
    "kefu_commit_deadline", default=None
)
_CLAIM_KEY = "kefu_commit_deadline"


class CommitDeadline:
    """The moment a caller stops waiting for a service call; later commits are refused.

    A caller that told the customer "that failed" must not let the work commit afterwards.
    The service runs with the deadline applied (``with deadline:`` in its thread); each commit
    of a session from :func:`make_session_factory` first *claims* it, and is refused with
    :class:`DeadlinePassed` (the transaction rolls back) once the deadline has passed or the
    caller has :meth:`abandon`-ed the call. Claim and abandon exclude each other, so the
    caller always knows the truth: either no commit can happen any more, or one is under way
    and its outcome is worth waiting for.

    Args:
        seconds: how long from now commits are allowed.
    """

    def __init__(self, seconds: float) -> None:
        self.expires_at = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._committing = 0
        self._abandoned = False
        self._tokens: list[contextvars.Token] = []

    def remaining(self) -> float:
        """Seconds left before the deadline (0 when passed)."""
        return max(0.0, self.expires_at - time.monotonic())

    def abandon(self) -> bool:
        """Stop waiting: refuse every later commit.

        Returns:
            True when no commit can happen any more; False when a commit is under way (the
            caller should wait for its outcome and answer with it).
        """
        with self._lock:
            if self._committing:
                return False
            self._abandoned = True
            return True

    def claim(self) -> None:
        """Called before a commit: allow it, or raise :class:`DeadlinePassed`."""
        with self._lock:
            if self._abandoned:
                raise DeadlinePassed("the caller stopped waiting; rolled back")
            if time.monotonic() >= self.expires_at:
                self._abandoned = True
                raise DeadlinePassed("the commit deadline passed; rolled back")
            self._committing += 1

    def release(self) -> None:
        """Called when a claimed commit has finished (committed or rolled back)."""
        with self._lock:
            self._committing -= 1

    def __enter__(self) -> CommitDeadline:
        self._tokens.append(_current_deadline.set(self))
        return self

    def __exit__(self, *exc_info) -> None:
        _current_deadline.reset(self._tokens.pop())


def _claim_commit(session: Session) -> None:
    deadline = _current_deadline.get()
    # A savepoint's release commits nothing yet: only the root commit is checked.
    if deadline is None or session.in_nested_transaction():
        return
    if _CLAIM_KEY not in session.info:
        deadline.claim()
        session.info[_CLAIM_KEY] = deadline


def _release_commit(session: Session, transaction) -> None:
    # The root transaction's end comes after COMMIT (or the ROLLBACK of a failed one).
    if transaction.parent is None:
        deadline = session.info.pop(_CLAIM_KEY, None)
        if deadline is not None:
            deadline.release()
