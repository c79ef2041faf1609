"""Personal data in text: e-mail addresses, phone numbers, payment card numbers, IBANs, API keys, IP addresses.

Each kind is found in two steps: a regular expression finds what looks like one (cheap, run on every text), then a
validator keeps only what really is one — libphonenumber for phones, the Luhn check and a card-network prefix for
card numbers, the ISO 13616 checksum for IBANs (python-stdnum), ``ipaddress`` for IP addresses. Matches of kinds
tried earlier win where two overlap (an API key is not also read as a phone number).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

KINDS = ("api_key", "email", "iban", "credit_card", "ip", "phone")  # in the order they are tried
PLACEHOLDERS = {
    "api_key": "[API_KEY]",
    "email": "[EMAIL]",
    "iban": "[IBAN]",
    "credit_card": "[CREDIT_CARD]",
    "ip": "[IP_ADDRESS]",
    "phone": "[PHONE]",
}
# National phone formats are read as numbers of this region; numbers written with "+" are read as they say.
PHONE_REGION = "US"


@dataclass(frozen=True, slots=True)
class Hit:
    """One match of personal data: its kind and where it is in the text."""

    kind: str
    start: int
    end: int
    text: str

    @property
    def masked(self) -> str:
        """The match as a report may show it: its first and last two characters, the rest starred."""
        text = self.text
        if len(text) <= 6:
            return text[:1] + "*" * (len(text) - 1)
        return text[:2] + "*" * (len(text) - 4) + text[-2:]


# --- what each kind looks like ----------------------------------------------------------------------------------

_API_KEYS = [
    re.compile(r"(?<![\w-])sk-(?:proj-|ant-(?:api\d\d-)?|live_|test_)?[A-Za-z0-9_-]{20,}"),
    re.compile(r"(?<![\w-])(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})"),
    re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA)[0-9A-Z]{16}(?![A-Za-z0-9])"),
    re.compile(r"(?<![\w-])xox[bpaors]-[A-Za-z0-9-]{10,}"),
]
# A long hex or base64 value after key=, token=, secret= (and api_key:, access_token = "…").
_ASSIGNED_SECRET = re.compile(
    r"(?i)(?<![a-z0-9])(?:api[_-]?key|access[_-]?key|secret(?:[_-]?key)?|(?:access|auth|api|bearer)?[_-]?token|key)"
    r"[\"']?\s*[:=]\s*[\"']?(?P<secret>[A-Za-z0-9+/_-]{24,}={0,2})(?![A-Za-z0-9+/_=-])"
)
_EMAIL = re.compile(
    r"(?<![\w.+%-])[A-Za-z0-9](?:[A-Za-z0-9._%+-]{0,63})@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
    r"[A-Za-z]{2,24}(?![\w-])"
)
# The patterns below start with what they look for, not with a look-behind, so that the regular expression
# engine skips ahead to candidates (several times faster); where a match begins and ends is checked after.
_IBAN = re.compile(r"[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?")
# Card numbers as they are written: one run of digits, groups of four, or Amex's 4-6-5 (one kind of separator).
_CARD = re.compile(r"\d{4}(?:\d{9,15}|([ -])\d{4}\1\d{4}(?:\1\d{1,4})?(?:\1\d{1,3})?|([ -])\d{6}\2\d{4,5})")
_IPV4_HINT = re.compile(r"\.\d{1,3}\.\d{1,3}\.")
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)")
_VERSION_BEFORE = re.compile(r"(?i)(?:version|release|ver\.?|v)\s*$")
_IPV6 = re.compile(r"(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])")
# Digits with the separators people write phone numbers with; what libphonenumber then judges.
# International numbers ("+" and the country code) in any grouping; national ones grouped as in the region
# (3-3-4), since a bare run of digits or a date followed by a number is far more often something else.
_PHONE_INTERNATIONAL = re.compile(r"\+\d[\d ().-]{6,20}\d")
_PHONE_NATIONAL = re.compile(r"\d{3}\)?[ .-]?\d{3}[ .-]\d{4}")  # "(" of an area code: checked after
# What every text is searched for first: six digits with separators (phone, card, IBAN) or a dotted quad.
_DIGITS_TRIGGER = re.compile(r"\d\d[ ().+/-]{0,2}\d\d[ ().+/-]{0,2}\d\d|\d\.\d{1,3}\.\d{1,3}\.\d")
_KEY_WORDS = ("key", "token", "secret")
_KEY_PREFIXES = ("sk-", "gh", "AKIA", "ASIA", "xox")
_DIGIT = re.compile(r"\d")


def _api_keys(text: str) -> Iterator[tuple[int, int]]:
    if any(prefix in text for prefix in _KEY_PREFIXES):
        for pattern in _API_KEYS:
            for m in pattern.finditer(text):
                yield m.start(), m.end()
    lowered = text.lower()
    if ("=" in text or ":" in text) and any(word in lowered for word in _KEY_WORDS):
        for m in _ASSIGNED_SECRET.finditer(text):
            secret = m.group("secret")
            hexlike = re.fullmatch(r"[0-9a-fA-F]{24,}", secret) is not None
            mixed = any(c.isdigit() for c in secret) and any(c.isupper() for c in secret)
            if hexlike or (mixed and any(c.islower() for c in secret)):
                yield m.start("secret"), m.end("secret")


def _emails(text: str) -> Iterator[tuple[int, int]]:
    if "@" in text:
        for m in _EMAIL.finditer(text):
            yield m.start(), m.end()


def _stands_alone(text: str, start: int, end: int, *, words: bool, before: str = "", after: str = "") -> bool:
    """Whether ``text[start:end]`` is not part of a longer number (or word, with ``words``): no digit (letter)
    or character of ``before`` just before it, none of ``after`` just after it, and no digit after a '.' or ','
    that follows it."""

    def joins(c: str, extra: str) -> bool:
        return c.isdigit() or (words and (c.isalnum() or c == "_")) or c in extra

    if start > 0 and joins(text[start - 1], before):
        return False
    if end < len(text):
        if joins(text[end], after):
            return False
        if text[end] in ".," and end + 1 < len(text) and text[end + 1].isdigit():
            return False
    return True


def _ibans(text: str) -> Iterator[tuple[int, int]]:
    from stdnum import iban

    for m in _IBAN.finditer(text):
        if m.start() > 0 and text[m.start() - 1].isalnum():
            continue
        # The pattern may have taken a following word of capitals and digits: drop trailing groups until valid.
        words = m.group().split(" ")
        while words:
            candidate = " ".join(words)
            end = m.start() + len(candidate)
            if len(candidate) >= 15 and _stands_alone(text, m.start(), end, words=True) and iban.is_valid(candidate):
                yield m.start(), end
                break
            words.pop()


def _cards(text: str) -> Iterator[tuple[int, int]]:
    from stdnum import luhn

    for m in _CARD.finditer(text):
        digits = m.group().replace(" ", "").replace("-", "")
        alone = _stands_alone(text, m.start(), m.end(), words=False, before=".,-", after="-")
        if alone and _card_length_fits(digits) and luhn.is_valid(digits):
            yield m.start(), m.end()


def _card_length_fits(digits: str) -> bool:
    """Whether a number has a card network's prefix and one of that network's lengths."""
    n, two, three, four = len(digits), int(digits[:2]), int(digits[:3]), int(digits[:4])
    if digits[0] == "4":  # Visa
        return n in (13, 16, 19)
    if two in (34, 37):  # American Express
        return n == 15
    if 51 <= two <= 55 or 2221 <= four <= 2720:  # Mastercard
        return n == 16
    if four == 6011 or two in (62, 65) or 644 <= three <= 649 or 3528 <= four <= 3589:  # Discover, UnionPay, JCB
        return 16 <= n <= 19
    if two in (36, 38, 39) or 300 <= three <= 305:  # Diners Club
        return 14 <= n <= 19
    return False


def _ips(text: str) -> Iterator[tuple[int, int]]:
    if _IPV4_HINT.search(text):
        for m in _IPV4.finditer(text):
            if _VERSION_BEFORE.search(text, max(0, m.start() - 10), m.start()):
                continue  # "version 1.2.3.4", "v1.2.0.4"
            if _is_reported_ip(m.group()):
                yield m.start(), m.end()
    if "::" in text or text.count(":") >= 7:
        for m in _IPV6.finditer(text):
            found = m.group()
            groups = [g for g in found.split(":") if g]
            if len(groups) >= 3 and _DIGIT.search(found) and _is_reported_ip(found):
                yield m.start(), m.end()


def _is_reported_ip(text: str) -> bool:
    """A valid address that can point at someone's machine (not loopback, unspecified, multicast or link-local)."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    return not (address.is_loopback or address.is_unspecified or address.is_multicast or address.is_link_local)


@cache
def _phone_lib() -> Any:
    import phonenumbers

    return phonenumbers


def _phones(text: str) -> Iterator[tuple[int, int]]:
    found: list[tuple[int, int]] = []
    if "+" in text:
        for m in _PHONE_INTERNATIONAL.finditer(text):
            alone = _stands_alone(text, m.start(), m.end(), words=True, before="+.-", after="-")
            if alone and _is_phone(m.group()):
                found.append((m.start(), m.end()))
    for m in _PHONE_NATIONAL.finditer(text):
        start, end = m.start(), m.end()
        if (text[start - 1 : start] == "(") != (")" in m.group()):
            continue  # "(415) 555-2671" or "415-555-2671", not "415) 555-2671"
        start -= ")" in m.group()
        inside = any(s <= start < e for s, e in found)
        if not inside and _stands_alone(text, start, end, words=True, before="+.-", after="-") and _is_phone(m.group()):
            found.append((start, end))
    return iter(found)


@lru_cache(maxsize=1 << 16)
def _is_phone(found: str) -> bool:
    """A valid phone number (libphonenumber); remembered, since the same dates and numbers come back often."""
    if not 7 <= sum(c.isdigit() for c in found) <= 15:
        return False
    phonenumbers = _phone_lib()
    try:
        number = phonenumbers.parse(found, None if found.startswith("+") else PHONE_REGION)
    except phonenumbers.NumberParseException:
        return False
    return bool(phonenumbers.is_valid_number(number))


_FINDERS: dict[str, Callable[[str], Iterator[tuple[int, int]]]] = {
    "api_key": _api_keys,
    "email": _emails,
    "iban": _ibans,
    "credit_card": _cards,
    "ip": _ips,
    "phone": _phones,
}
_NEEDS_DIGITS = frozenset({"iban", "credit_card", "ip", "phone"})


def scan(text: str) -> list[Hit]:
    """The personal data in ``text``, in the order it appears; overlapping matches of later kinds are left out."""
    if not text:
        return []
    has_digits = _DIGITS_TRIGGER.search(text) is not None
    hits: list[Hit] = []
    for kind in KINDS:
        if kind in _NEEDS_DIGITS and not has_digits and not (kind == "ip" and ":" in text):
            continue
        for start, end in _FINDERS[kind](text):
            if all(end <= h.start or start >= h.end for h in hits):
                hits.append(Hit(kind, start, end, text[start:end]))
    return sorted(hits, key=lambda h: h.start)


def mask(text: str, hits: list[Hit] | None = None) -> str:
    """``text`` with each match replaced by its kind's placeholder (``[EMAIL]``, ``[PHONE]``, …)."""
    found = scan(text) if hits is None else hits
    if not found:
        return text
    parts: list[str] = []
    at = 0
    for hit in sorted(found, key=lambda h: h.start):
        parts += [text[at : hit.start], PLACEHOLDERS[hit.kind]]
        at = hit.end
    parts.append(text[at:])
    return "".join(parts)
