"""The scanner on fixtures: every seeded match found (and nothing else), look-alikes left alone, masking."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.pii.scanner import PLACEHOLDERS, Hit, mask, scan
from app.pii.service import masked, texts_of

FIXTURES = Path(__file__).parent / "fixtures"
SEEDED = [json.loads(line) for line in (FIXTURES / "seeded.jsonl").read_text(encoding="utf-8").splitlines()]
LOOKALIKES = [line for line in (FIXTURES / "lookalikes.txt").read_text(encoding="utf-8").splitlines() if line]


def test_the_seeded_fixture_covers_every_kind() -> None:
    kinds = {kind for case in SEEDED for kind, _ in case["hits"]}
    assert kinds == set(PLACEHOLDERS)
    assert sum(len(case["hits"]) for case in SEEDED) >= 40


def test_every_seeded_match_is_found_and_nothing_else() -> None:
    expected = [(i, kind, match) for i, case in enumerate(SEEDED) for kind, match in case["hits"]]
    found = [(i, hit.kind, hit.text) for i, case in enumerate(SEEDED) for hit in scan(case["text"])]
    missed = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    assert missed == [], f"recall below 100 %: {missed}"
    assert extra == [], f"reported beyond the seeded matches: {extra}"


@pytest.mark.parametrize("text", LOOKALIKES)
def test_look_alikes_are_not_reported(text: str) -> None:
    assert scan(text) == []


def test_hits_point_at_their_text() -> None:
    text = "mail jane.doe@example.com now"
    (hit,) = scan(text)
    assert hit == Hit("email", 5, 25, "jane.doe@example.com")
    assert text[hit.start : hit.end] == hit.text
    assert hit.masked == "ja****************om"


@pytest.mark.parametrize("case", SEEDED, ids=lambda case: case["hits"][0][0])
def test_masking_leaves_no_seeded_match(case: dict[str, object]) -> None:
    text = str(case["text"])
    out = mask(text)
    for kind, match in case["hits"]:  # type: ignore[attr-defined]
        assert match not in out
        assert PLACEHOLDERS[kind] in out
    assert scan(out) == []


def test_masking_keeps_the_rest_of_the_text() -> None:
    text = "Write to jane.doe@example.com or call +44 20 7946 0958, token=9f86d081884c7d659a2feaa0c55ad015a3bf4f1b."
    assert mask(text) == "Write to [EMAIL] or call [PHONE], token=[API_KEY]."
    assert mask("nothing personal here, version 1.2.3.4") == "nothing personal here, version 1.2.3.4"


def test_chat_messages_are_scanned_and_masked_message_by_message() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "My card is 4111 1111 1111 1111"},
    ]
    assert texts_of(messages) == ["Be brief.", "My card is 4111 1111 1111 1111"]
    assert masked(messages) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "My card is [CREDIT_CARD]"},
    ]
    assert masked([{"role": "assistant", "content": "ip 203.0.113.9"}]) == [
        {"role": "assistant", "content": "ip [IP_ADDRESS]"}
    ]
