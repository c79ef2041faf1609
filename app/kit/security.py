"""Passwords (argon2id), random tokens and their keyed digests."""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

_hasher = PasswordHash((Argon2Hasher(),))  # argon2id with pwdlib's (OWASP) defaults


@functools.cache
def dummy_hash() -> str:
    """Verified against when a username does not exist, so timing does not tell which usernames exist. Made on
    first use (a tenth of a second: every command and export process would pay it at import); a server makes it
    while warming up, so its first failed login takes no longer than the others."""
    return _hasher.hash(secrets.token_urlsafe(16))


MIN_PASSWORD_LENGTH = 8


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, password_hash: str | None) -> bool:
    if password_hash is None:
        _hasher.verify(password, dummy_hash())
        return False
    try:
        return _hasher.verify(password, password_hash)
    except Exception:  # malformed hash: treat as a mismatch
        return False


def new_token(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


def token_digest(token: str, secret: str) -> str:
    """Keyed SHA-256 of a token: what the database stores instead of the token."""
    return hmac.new(secret.encode(), token.encode(), hashlib.sha256).hexdigest()


def equals(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
