"""The one place that decides what personal data looks like once it leaves a conversation.

Everything Kefu writes down — log lines, tracker events, broker messages, ticket transcripts —
goes through :func:`mask_pii` / :func:`mask_value`: emails keep their first letter and domain
(``a***@example.com``), phone numbers their last four digits (``***0101``), address fields and
known values (a street address the customer typed) become ``***``. Order numbers, product names
and amounts stay readable because the conversation and the agents need them.

What the dialogue must carry in a slot across turns (the contact being verified, a new address,
a one-time code) is :func:`seal`-ed instead: encrypted with Fernet under ``KEFU_DATA_KEY`` (or a
key derived from ``KEFU_ACTION_TOKEN``, which the Rasa server and the action server share), so
stored events never hold it in clear; masking leaves sealed values alone.

Rasa-free: used by the actions, the channels, the tracker store and the commerce services.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

#: Slots whose values are personal data: stored sealed, masked entirely otherwise.
PII_SLOTS = ("verify_contact", "new_address", "verify_code", "restock_email")
#: Env var with the Fernet key(s) for sealed values (comma-separated: first encrypts, all
#: decrypt, for rotation); any other string is stretched into a key.
DATA_KEY_ENV = "KEFU_DATA_KEY"
#: Fallback secret the Rasa and action servers already share.
ACTION_TOKEN_ENV = "KEFU_ACTION_TOKEN"
SEALED_PREFIX = "sealed:v1:"
MASK = "***"
#: Known values shorter than this are not searched for in texts (they would mask common words).
MIN_KNOWN_LEN = 4

_EMAIL = re.compile(r"([A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]*@([A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+)")
# ASCII boundaries: in "电话13800138000" the Han characters are word characters too.
_PHONE = re.compile(r"(?<![A-Za-z0-9_-])(\+?\(?\d[\d\s\-().]{5,}\d)(?![A-Za-z0-9_-])")
# key: 'value' / key: "value" (the whole quoted value, commas included) / key=value (to a comma).
_ADDRESS_FIELD = re.compile(
    r"""(?P<key>['"]?(?:new_address|address|line1|line2|recipient)['"]?\s*[:=]\s*)"""
    r"""(?:(?P<q>")[^"\n]*"|(?P<sq>')[^'\n]*'|[^'",}\s][^'",}\n]*)"""
)
# A JSON Web Token (a customer token pasted or logged by mistake).
_JWT = re.compile(r"\beyJ[\w-]{5,}\.[\w-]{5,}\.[\w-]+")
# "12 Baker Street", "221B Main St.", "1600 Pennsylvania Ave NW": a house number, one to four
# capitalised words and a street type. Narrow on purpose: "2 Blue Shirts" must stay readable.
_STREET = re.compile(
    r"\b\d{1,5}[A-Za-z]?\s+(?:[A-Z][\w'.-]*\s+){1,4}"
    r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Way|Court|Ct|Place|Pl|"
    r"Terrace|Square|Sq|Highway|Hwy|Parkway|Pkwy)\b\.?"
)
# 朝阳区建国路88号 / 南京西路1266号5楼: a road name and a house number.
_STREET_ZH = re.compile(
    r"[\u4e00-\u9fff]{1,12}(?:路|街|道|巷|弄|胡同)\d{1,5}(?:号|號)(?:\d+[楼室])?"
)
# 2026-01-02 (and 2026-01-02 10:30) is a date, not a phone number.
_DATE = re.compile(r"\d{4}-\d{1,2}-\d{1,2}(?:[ T]\d{1,2})?$")
_HAN = re.compile(r"[\u3400-\u9fff]")
_SEALED = re.compile(re.escape(SEALED_PREFIX) + r"[A-Za-z0-9_\-=]+")


def _mask_field(m: re.Match) -> str:
    quote = m.group("q") or m.group("sq") or ""
    return f"{m.group('key')}{quote}{MASK}{quote}"


def _mask_plain(text: str, known: tuple[str, ...]) -> str:
    for value in known:
        text = re.sub(re.escape(value), _known_mask(value), text, flags=re.IGNORECASE)
    text = _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
    text = _JWT.sub(MASK, text)
    text = _ADDRESS_FIELD.sub(_mask_field, text)
    text = _STREET.sub(MASK, text)
    text = _STREET_ZH.sub(MASK, text)

    def phone(m: re.Match) -> str:
        if _DATE.match(m.group(1)):
            return m.group(0)
        digits = re.sub(r"\D", "", m.group(1))
        return f"***{digits[-4:]}" if len(digits) >= 7 else m.group(0)

    return _PHONE.sub(phone, text)


def _known_mask(value: str) -> str:
    # A known email or phone keeps the usual shape (a***@example.com, ***0101).
    if _EMAIL.fullmatch(value):
        return mask_email(value)
    if _PHONE.fullmatch(value) and len(re.sub(r"\D", "", value)) >= 7:
        return mask_phone(value)
    return MASK


def _long_enough(value: str) -> bool:
    # Two Han characters are a whole name (王芳); two Latin letters are not.
    return len(value) >= MIN_KNOWN_LEN or (len(value) >= 2 and bool(_HAN.search(value)))


def _known_tuple(known: Iterable[str]) -> tuple[str, ...]:
    values = {v.strip() for v in known if isinstance(v, str)}
    # Longest first, so "12 Baker Street, London" goes before "12 Baker Street".
    return tuple(
        sorted(
            (v for v in values if _long_enough(v) and not is_sealed(v)),
            key=len,
            reverse=True,
        )
    )


def mask_pii(text: str, known: Iterable[str] = ()) -> str:
    """Mask emails, phone numbers, street addresses and address fields in a text.

    ``anna@example.com`` → ``a***@example.com``; ``+86 138 0013 8000`` → ``***8000``;
    ``'new_address': '1 Main St'`` → ``'new_address': '***'``; ``12 Baker Street`` → ``***``.
    Order numbers (``KF-100023``) are not personal data and stay readable; sealed values
    (``sealed:v1:…``) are left as they are.

    Args:
        text: any text (a log line, a message, a transcript).
        known: personal values known to this conversation (e.g. the address the customer
            typed), masked wherever they appear, whatever their shape.
    """
    if not text:
        return text
    values = _known_tuple(known)
    parts, last = [], 0
    for m in _SEALED.finditer(text):
        parts.append(_mask_plain(text[last : m.start()], values))
        parts.append(m.group(0))
        last = m.end()
    parts.append(_mask_plain(text[last:], values))
    return "".join(parts)


def mask_value(value: Any, known: Iterable[str] = ()) -> Any:
    """:func:`mask_pii` applied to every string inside ``value`` (dicts, lists, tuples).

    Keys stay as they are; numbers, booleans and None are returned unchanged.
    """
    values = _known_tuple(known)
    return _mask_value(value, values)


def _mask_value(value: Any, known: tuple[str, ...]) -> Any:
    if isinstance(value, str):
        return mask_pii(value, known)
    if isinstance(value, dict):
        return {k: _mask_value(v, known) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_mask_value(v, known) for v in value)
    return value


def pii_values(
    events: Iterable[Mapping[str, Any]], slots: Mapping[str, Any] | None = None
) -> list[str]:
    """Clear-text values of the :data:`PII_SLOTS` in a conversation, for ``known=``.

    Args:
        events: serialised events (``{"event": "slot", "name": ..., "value": ...}``), as in a
            rasa_sdk tracker's ``events`` or ``event.as_dict()``; other events are skipped.
        slots: current slot values, when at hand.

    Sealed values are unsealed (those that cannot be read are left out).
    """
    raw: list[Any] = [
        e.get("value")
        for e in events
        if isinstance(e, Mapping) and e.get("event") == "slot" and e.get("name") in PII_SLOTS
    ]
    raw += [(slots or {}).get(name) for name in PII_SLOTS]
    values = []
    for value in raw:
        if isinstance(value, str) and value:
            clear = unseal(value) if is_sealed(value) else value
            if clear and clear != MASK:
                values.append(clear)
    return values


def mask_email(email: str | None) -> str:
    """``anna.lee@example.com`` → ``a***@example.com`` (``***`` when it is not an email)."""
    email = (email or "").strip()
    local, sep, domain = email.rpartition("@")
    if not sep or not local or not domain:
        return MASK
    return f"{local[0]}***@{domain}"


def mask_phone(phone: str | None) -> str:
    """``+1 415 555 0101`` → ``***0101`` (``***`` when it has fewer than 4 digits)."""
    digits = re.sub(r"\D", "", phone or "")
    return f"***{digits[-4:]}" if len(digits) >= 4 else MASK


# --- sealed values -----------------------------------------------------------------------------

_key_lock = threading.Lock()
_process_key: bytes | None = None
_cached: tuple[tuple[str, str], MultiFernet] | None = None


def _fernet_key(secret: str) -> bytes:
    """A Fernet key as given, or one stretched from any other secret string."""
    try:
        raw = base64.urlsafe_b64decode(secret.encode())
        if len(raw) == 32:
            return secret.encode()
    except (ValueError, TypeError):
        pass
    return base64.urlsafe_b64encode(hashlib.sha256(b"kefu-data-key:" + secret.encode()).digest())


def _derived_key(action_token: str) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"kefu sealed slots v1")
    return base64.urlsafe_b64encode(hkdf.derive(action_token.encode()))


def _cipher() -> MultiFernet:
    global _cached, _process_key
    env = (os.environ.get(DATA_KEY_ENV, "").strip(), os.environ.get(ACTION_TOKEN_ENV, "").strip())
    with _key_lock:
        if _cached is not None and _cached[0] == env:
            return _cached[1]
        data_key, action_token = env
        if data_key:
            keys = [_fernet_key(k.strip()) for k in data_key.split(",") if k.strip()]
        elif action_token:
            keys = [_derived_key(action_token)]
        else:
            # Dev only: sealed values do not survive a restart nor cross processes.
            if _process_key is None:
                _process_key = Fernet.generate_key()
            keys = [_process_key]
        cipher = MultiFernet([Fernet(k) for k in keys])
        _cached = (env, cipher)
        return cipher


def is_sealed(value: object) -> bool:
    """True for a string made by :func:`seal`."""
    return isinstance(value, str) and value.startswith(SEALED_PREFIX)


def seal(text: str) -> str:
    """Encrypt ``text`` for storage in a slot: ``"sealed:v1:<fernet token>"``.

    Sealing an already sealed value returns it unchanged.
    """
    if is_sealed(text):
        return text
    token = _cipher().encrypt(str(text).encode("utf-8"))
    return SEALED_PREFIX + token.decode("ascii")


def unseal(value: object) -> str | None:
    """The text inside a sealed value; None when ``value`` is not sealed or cannot be read
    (another key, tampered, truncated)."""
    if not is_sealed(value):
        return None
    try:
        return _cipher().decrypt(value[len(SEALED_PREFIX) :].encode("ascii")).decode("utf-8")
    except (InvalidToken, ValueError, UnicodeError):
        return None


# --- logs --------------------------------------------------------------------------------------

_masking_installed = False
_install_lock = threading.Lock()


def install_pii_masking() -> None:
    """Mask PII in every log record of this process (installed once, any handler)."""
    global _masking_installed
    with _install_lock:
        if _masking_installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args, **kwargs):
            record = previous(*args, **kwargs)
            try:
                message = record.getMessage()
            except Exception:  # noqa: BLE001 - a broken format string must not break logging
                return record
            masked = mask_pii(message)
            if masked != message:
                record.msg, record.args = masked, ()
            return record

        logging.setLogRecordFactory(factory)
        _masking_installed = True
