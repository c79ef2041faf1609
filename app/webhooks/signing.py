"""Signing a delivery: HMAC-SHA256 over ``"{timestamp}.{body}"`` with the webhook's secret.

The timestamp is signed with the body so that a receiver can refuse an old request replayed by whoever saw it
(a proxy's log, a captured request): the signature is only good for ``TOLERANCE_S`` around the time it was made.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

SIGNATURE_HEADER = "X-Prefstudio-Signature"
EVENT_HEADER = "X-Prefstudio-Event"
DELIVERY_HEADER = "X-Prefstudio-Delivery"
TOLERANCE_S = 300
SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    """A fresh signing secret (256 random bits)."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature(secret: str, *, timestamp: int, body: bytes) -> str:
    """The signature header's value: ``t=<unix seconds>,v1=<hex HMAC-SHA256 of "{t}.{body}">``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: str, header: str, body: bytes, *, now: float | None = None, tolerance: int = TOLERANCE_S) -> bool:
    """What a receiver does (docs/webhooks.md has it as a snippet): the signature matches and is recent."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    if not fields.get("t", "").isdigit() or "v1" not in fields:
        return False
    timestamp = int(fields["t"])
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = signature(secret, timestamp=timestamp, body=body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, fields["v1"])
