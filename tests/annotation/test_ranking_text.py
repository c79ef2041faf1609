"""How rankings and strengths are worded back: the typed form, the shown form, and the explorer's numbers."""

from __future__ import annotations

import pytest

from app.annotation.ranking import order_text, parse_order, shown_order, verdict_text
from app.explorer.history import vote_text

LETTER = {40: "A", 10: "B", 30: "C", 20: "D"}


@pytest.mark.parametrize(
    ("typed", "canonical", "shown"),
    [
        ("CA=BD", "C>A=B>D", "C > A = B > D"),
        ("c>>ab=d", "C>>A>B=D", "C ≫ A > B = D"),
        ("B = A", "A=B", "A = B"),
        ("D≫C≫B≫A", "D>>C>>B>>A", "D ≫ C ≫ B ≫ A"),
    ],
)
def test_a_typed_order_reads_back_in_one_canonical_text(typed: str, canonical: str, shown: str) -> None:
    letters = "ABCD" if len({c for c in typed.upper() if c.isalpha()}) == 4 else "AB"
    tiers, much = parse_order(typed, letters)
    assert (order_text(tiers, much), shown_order(tiers, much)) == (canonical, shown)
    assert parse_order(order_text(tiers, much), letters) == (tiers, much)


@pytest.mark.parametrize(
    ("verdict", "shown"),
    [
        ({"kind": "preference", "chosen": 30, "rejected": 10}, "C ≻ B"),
        ({"kind": "preference", "chosen": 10, "rejected": 40, "strength": 3}, "B ≫ A"),
        ({"kind": "preference", "chosen": 10, "rejected": 40, "strength": 2}, "B > A"),
        ({"kind": "preference", "chosen": 10, "rejected": 40, "strength": 1}, "B ≳ A"),
        ({"kind": "ranking", "ranking": [[30], [10, 40], [20]], "much": [0]}, "C ≫ A = B > D"),
        ({"kind": "tie"}, None),
        ({"kind": "na"}, None),
    ],
)
def test_verdicts_are_shown_in_the_page_s_letters(verdict: dict[str, object], shown: str | None) -> None:
    kind, chosen, rejected = verdict["kind"], verdict.get("chosen"), verdict.get("rejected")
    text = verdict_text(
        kind,  # type: ignore[arg-type]
        chosen,  # type: ignore[arg-type]
        rejected,  # type: ignore[arg-type]
        LETTER,
        strength=verdict.get("strength"),  # type: ignore[arg-type]
        ranking=verdict.get("ranking"),  # type: ignore[arg-type]
        much=verdict.get("much"),  # type: ignore[arg-type]
    )
    assert text == shown


def test_the_explorer_history_numbers_rankings_and_strengths() -> None:
    numbers = {40: 1, 10: 2, 30: 3, 20: 4}
    ranking = {"tiers": [[30], [10, 40], [20]], "much": [1]}
    assert vote_text("ranking", None, None, numbers, ranking=ranking) == "3 > 1 = 2 ≫ 4"
    assert vote_text("preference", 10, 40, numbers, strength=3) == "2 ≫ 1"
    assert vote_text("preference", 10, 40, numbers) == "2 ≻ 1"
    assert (vote_text("tie", None, None, numbers), vote_text("na", None, None, numbers)) == ("tie", "n/a")
