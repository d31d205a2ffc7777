"""Environment-based settings of the commerce backend."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
VAR_DIR = REPO_ROOT / "var"
DEFAULT_SQLITE_PATH = VAR_DIR / "kefu.db"

#: Env var that selects the database (a SQLAlchemy URL); SQLite file under var/ when unset.
DATABASE_URL_ENV = "KEFU_DATABASE_URL"
#: Env var holding the HS256 secret for signed customer tokens.
TOKEN_SECRET_ENV = "KEFU_CUSTOMER_TOKEN_SECRET"


def database_url() -> str:
    """Return the configured database URL, creating ``var/`` for the SQLite default.

    Returns:
        ``$KEFU_DATABASE_URL`` if set, else ``sqlite:///<repo>/var/kefu.db``.
    """
    url = os.environ.get(DATABASE_URL_ENV, "").strip()
    if url:
        return url
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{DEFAULT_SQLITE_PATH}"


def token_secret() -> str | None:
    """Return the customer-token secret, or None when not configured."""
    return os.environ.get(TOKEN_SECRET_ENV) or None


#: Env var holding the key of keyed hashes (client addresses, contacts, one-time codes).
HASH_SECRET_ENV = "KEFU_HASH_SECRET"
#: Env var naming the file a generated hash secret is kept in between runs.
HASH_SECRET_FILE_ENV = "KEFU_HASH_SECRET_FILE"
DEFAULT_HASH_SECRET_FILE = VAR_DIR / "hash-secret"
#: Used only when neither KEFU_HASH_SECRET, KEFU_CUSTOMER_TOKEN_SECRET nor a kept secret is
#: there: fine for tests, not for production (anyone who reads this file can recompute them).
DEV_HASH_SECRET = "kefu-dev-only-hash-secret-set-KEFU_HASH_SECRET-in-production"
#: File the LogSender appends outbox messages to (the README demo reads its code there).
OUTBOX_LOG_ENV = "KEFU_OUTBOX_LOG"
DEFAULT_OUTBOX_LOG = VAR_DIR / "log" / "outbox.log"
#: Dotted path (``package.module.Class`` or ``package.module:Class``) of the SMS sender.
SMS_SENDER_ENV = "KEFU_SMS_SENDER"
#: Handoffs one client address may open per hour.
HANDOFFS_PER_CLIENT_ENV = "KEFU_HANDOFFS_PER_CLIENT_PER_HOUR"
DEFAULT_HANDOFFS_PER_CLIENT_PER_HOUR = 3


def hash_secret_file(environ: Mapping[str, str] = os.environ) -> Path:
    """Where ``make run`` keeps the hash secret it generated: ``$KEFU_HASH_SECRET_FILE`` (a
    relative path is taken from the repository root), else ``var/hash-secret``
    (scripts/serve.py writes it when no hash or token secret is set)."""
    value = environ.get(HASH_SECRET_FILE_ENV, "").strip()
    return REPO_ROOT / value if value else DEFAULT_HASH_SECRET_FILE


def kept_hash_secret(environ: Mapping[str, str] = os.environ) -> str | None:
    """The hash secret ``make run`` generated and kept, if there is one."""
    try:
        return hash_secret_file(environ).read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def hash_secret() -> str:
    """Key of the keyed hashes: ``$KEFU_HASH_SECRET``, else the token secret, else the one
    ``make run`` keeps (so a tool run by hand, such as ``python -m analytics consume``, hashes
    order numbers as the running Kefu does), else a dev constant."""
    return (
        os.environ.get(HASH_SECRET_ENV)
        or os.environ.get(TOKEN_SECRET_ENV)
        or kept_hash_secret()
        or DEV_HASH_SECRET
    )


def outbox_log_path() -> Path:
    """Where the LogSender writes: ``$KEFU_OUTBOX_LOG``, else ``var/log/outbox.log``."""
    value = os.environ.get(OUTBOX_LOG_ENV, "").strip()
    return Path(value) if value else DEFAULT_OUTBOX_LOG


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def smtp_settings() -> dict | None:
    """SMTP settings from ``KEFU_SMTP_*``, or None when ``KEFU_SMTP_HOST`` is unset."""
    host = os.environ.get("KEFU_SMTP_HOST", "").strip()
    if not host:
        return None
    return {
        "host": host,
        "port": int(os.environ.get("KEFU_SMTP_PORT", "").strip() or 25),
        "user": os.environ.get("KEFU_SMTP_USER") or None,
        "password": os.environ.get("KEFU_SMTP_PASSWORD") or None,
        "sender": os.environ.get("KEFU_SMTP_FROM") or "Kefu <no-reply@kefu.invalid>",
        "starttls": _flag(os.environ.get("KEFU_SMTP_STARTTLS")),
    }


def sms_sender_path() -> str | None:
    """``$KEFU_SMS_SENDER`` (a dotted class path), or None for the LogSender."""
    return os.environ.get(SMS_SENDER_ENV, "").strip() or None


def handoffs_per_client_per_hour() -> int:
    """``$KEFU_HANDOFFS_PER_CLIENT_PER_HOUR`` (default 3)."""
    value = os.environ.get(HANDOFFS_PER_CLIENT_ENV, "").strip()
    return int(value) if value else DEFAULT_HANDOFFS_PER_CLIENT_PER_HOUR
