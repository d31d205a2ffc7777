"""Environment-based settings of the commerce backend."""

from __future__ import annotations

import os
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
