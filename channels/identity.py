"""Who a message comes from, as Kefu's channels establish it before the assistant sees it.

The channels are the only place that sets the metadata keys the actions trust:

- ``kefu_identity``: a signed identity claim ``{"customer_id", "exp", "sid", "sig"}``
  (:func:`commerce.services.identity.sign_identity_claim`) made after the channel checked a
  customer JWT (REST ``metadata.customer_token``, web chat ``customData.customer_token`` at
  ``session_request``). The claim expires with the token and names the conversation it was made
  for; the JWT itself never enters message metadata, trackers or the event broker;
- ``kefu_client``: the client's address: the peer of the connection, or, when the peer is a
  proxy listed in ``KEFU_TRUSTED_PROXIES``, the address that proxy put in
  ``X-Forwarded-For``.

Any of these keys a client sends (and a client-sent ``customer_token``) are dropped first
(:func:`strip_reserved`), so a client cannot claim an identity or an address.

``KEFU_TRUSTED_PROXIES``: comma-separated addresses or networks of the reverse proxies in front
of Kefu, e.g. ``127.0.0.1,10.0.0.0/8``. Unset: ``X-Forwarded-For`` is ignored (anyone can send
it). Behind a proxy that is not listed, every customer has the proxy's address and shares its
rate limits.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from contract import CLAIM_METADATA_KEY as IDENTITY_KEY
from contract import CLIENT_METADATA_KEY as CLIENT_KEY

logger = logging.getLogger(__name__)

TOKEN_KEY = "customer_token"
#: Metadata keys only Kefu's channels set; dropped from anything a client sends.
RESERVED_KEYS = frozenset({IDENTITY_KEY, CLIENT_KEY, TOKEN_KEY})
TRUSTED_PROXIES_ENV = "KEFU_TRUSTED_PROXIES"
MAX_TOKEN_CHARS = 4096

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class CustomerIdentity:
    """The outcome of checking a customer token.

    ``reason`` is ``"verified"`` for a valid token, else why there is no identity:
    ``no_token``, ``invalid`` (forged, malformed, unknown customer), ``expired``,
    ``not_configured`` (no ``KEFU_CUSTOMER_TOKEN_SECRET``) or ``unavailable`` (database down).
    """

    reason: str
    customer_id: int | None = None
    name: str = ""
    exp: int | None = None

    @property
    def verified(self) -> bool:
        return self.reason == "verified"

    def current(self, now: float | None = None) -> CustomerIdentity:
        """This identity, or an expired one once the token's ``exp`` has passed."""
        now = time.time() if now is None else now
        if self.verified and (self.exp is None or self.exp <= now):
            return CustomerIdentity("expired")
        return self

    def claim(self, sender_id: str, now: float | None = None) -> dict[str, Any] | None:
        """The signed ``kefu_identity`` claim for ``sender_id``; None when not (or no longer)
        verified."""
        from commerce.services import identity as identity_service

        if not self.current(now).verified:
            return None
        return identity_service.sign_identity_claim(sender_id, self.customer_id, self.exp)

    def as_event(self) -> dict[str, Any]:
        """What the chat page is told (never the customer id)."""
        if self.verified:
            return {"verified": True, "name": self.name}
        return {"verified": False, "reason": self.reason}


NO_TOKEN = CustomerIdentity("no_token")


def check_token_sync(token: Any, session_factory=None) -> CustomerIdentity:
    """Check a customer JWT: signature, expiry, issuer, audience, and that the customer exists.

    Args:
        token: what the client sent (anything).
        session_factory: the commerce database; the process's shared one by default.
    """
    from commerce.db import shared_session_factory
    from commerce.errors import CommerceError, ConfigurationError, TokenExpired
    from commerce.services.identity import customer_from_token

    if token is None or token == "":
        return NO_TOKEN
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
        return CustomerIdentity("invalid")
    try:
        customer = customer_from_token(
            token, session_factory=session_factory or shared_session_factory()
        )
        # Verified above; read exp (an int epoch, "require"d) for the claim's expiry.
        exp = int(jwt.decode(token, options={"verify_signature": False})["exp"])
    except ConfigurationError:
        logger.warning("a customer token arrived but KEFU_CUSTOMER_TOKEN_SECRET is not set")
        return CustomerIdentity("not_configured")
    except CommerceError as e:  # forged, expired, unknown customer
        logger.info("customer token refused: %s", e.code)
        return CustomerIdentity("expired" if isinstance(e, TokenExpired) else "invalid")
    except Exception:  # database down: anonymous for now, the actions will ask
        logger.exception("customer token could not be checked")
        return CustomerIdentity("unavailable")
    return CustomerIdentity("verified", customer.customer_id, customer.name, exp)


async def check_customer_token(token: Any, session_factory=None) -> CustomerIdentity:
    """:func:`check_token_sync` off the event loop (it reads the database)."""
    if token is None or token == "":
        return NO_TOKEN
    return await asyncio.to_thread(check_token_sync, token, session_factory)


def strip_reserved(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """``metadata`` without the keys only Kefu's channels may set (:data:`RESERVED_KEYS`)."""
    return {k: v for k, v in (metadata or {}).items() if k not in RESERVED_KEYS}


def channel_metadata(
    client_metadata: Mapping[str, Any] | None,
    *,
    sender_id: str,
    identity: CustomerIdentity,
    client: str | None,
    now: float | None = None,
) -> dict[str, Any]:
    """A message's metadata: what the client sent, less reserved keys, plus the channel's own
    ``kefu_client`` and (for a verified, unexpired identity) ``kefu_identity``."""
    metadata = strip_reserved(client_metadata)
    if client:
        metadata[CLIENT_KEY] = client
    claim = identity.claim(sender_id, now)
    if claim is not None:
        metadata[IDENTITY_KEY] = claim
    return metadata


def parse_trusted_proxies(value: str | None) -> tuple[IpNetwork, ...]:
    """``"127.0.0.1, 10.0.0.0/8"`` → networks.

    Raises:
        ValueError: an entry that is not an address or network, naming the setting.
    """
    networks = []
    for entry in (value or "").split(","):
        entry = entry.strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError as e:
            raise ValueError(
                f"{TRUSTED_PROXIES_ENV}: {entry!r} is not an IP address or network "
                "(expected e.g. 127.0.0.1,10.0.0.0/8)"
            ) from e
    return tuple(networks)


def trusted_proxies(environ: Mapping[str, str] | None = None) -> tuple[IpNetwork, ...]:
    """The proxies of ``KEFU_TRUSTED_PROXIES``."""
    environ = os.environ if environ is None else environ
    return parse_trusted_proxies(environ.get(TRUSTED_PROXIES_ENV))


def _ip(value: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address((value or "").strip())
    except ValueError:
        return None


def _trusted(address, proxies: Iterable[IpNetwork]) -> bool:
    return any(address.version == net.version and address in net for net in proxies)


def client_address(
    peer: str | None, forwarded_for: str | None, proxies: Iterable[IpNetwork] = ()
) -> str | None:
    """The client's address.

    The peer, unless it is a trusted proxy: then the nearest ``X-Forwarded-For`` hop that is
    not itself a trusted proxy, read from the right (the entries left of it are whatever the
    client wrote and prove nothing). An unreadable hop stops the walk at the last trusted one.
    """
    proxies = tuple(proxies)
    address = _ip(peer)
    if address is None:
        return peer or None
    if not proxies or not _trusted(address, proxies) or not forwarded_for:
        return str(address)
    for hop in reversed(forwarded_for.split(",")):
        hop_address = _ip(hop)
        if hop_address is None:
            break
        address = hop_address
        if not _trusted(address, proxies):
            break
    return str(address)
