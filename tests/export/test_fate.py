"""The export's rules for one item and one pair (``app.export.fate``), a row per rule: each drop reason, in the
order the rules apply, and the keep cases."""

from __future__ import annotations

from typing import Any

import pytest

from app.export.fate import item_fate, pair_fate, vetoed
from app.export.pairs import FIRST, SECOND, TIE, Pair, Votes
from app.export.schemas import DROP_REASONS, ExportFilter

PAIR: Pair = (0, 1)
TEXTS = {0: "answer A", 1: "answer B", 2: "answer C"}


ITEM_CASES: list[tuple[dict[str, Any], dict[str, Any], str | None]] = [
    ({}, {}, None),
    ({"min_judgments": 2}, {"judgments": 1}, "min_judgments"),
    ({"min_judgments": 2}, {"judgments": 1, "adjudicated": True}, None),  # a decision needs no votes
    ({}, {"problematic": True}, "problematic"),
    ({"drop_problematic": False}, {"problematic": True}, None),
    ({"min_judgments": 2}, {"judgments": 1, "problematic": True}, "min_judgments"),  # the first rule counts
    ({"split": "test"}, {"split": "train"}, "split"),
    ({"split": "train"}, {"split": "train"}, None),
    ({"split": "all"}, {"split": "test"}, None),
    ({"split": "test"}, {"split": "train", "problematic": True}, "problematic"),
]


@pytest.mark.parametrize(("filters", "item", "expected"), ITEM_CASES)
def test_item_fate(filters: dict[str, Any], item: dict[str, Any], expected: str | None) -> None:
    facts = {"judgments": 3, "adjudicated": False, "problematic": False, "split": "train"} | item
    assert item_fate(ExportFilter(**filters), **facts) == expected


PAIR_CASES: list[tuple[Any, ...]] = [
    # The votes decide: the direction with more votes wins, if it wins clearly enough.
    ({}, (2, 1, 0), {}, {}, TEXTS, (None, True)),
    ({}, (0, 3, 0), {}, {}, TEXTS, (None, False)),
    ({}, (1, 1, 1), {}, {}, TEXTS, ("no_majority", False)),
    ({}, (0, 0, 0), {}, {}, TEXTS, ("no_majority", False)),
    ({}, (2, 0, 2), {}, {}, TEXTS, ("tie", True)),  # as many ties as votes for the winner
    ({"drop_ties": False}, (2, 0, 2), {}, {}, TEXTS, (None, True)),
    ({"min_margin": 2}, (2, 1, 0), {}, {}, TEXTS, ("margin", True)),
    ({"min_share": 0.75}, (2, 1, 0), {}, {}, TEXTS, ("share", True)),
    ({"min_share": 0.6}, (3, 1, 1), {}, {}, TEXTS, (None, True)),
    ({"min_margin": 2, "min_share": 0.9}, (2, 1, 0), {}, {}, TEXTS, ("margin", True)),  # the first rule
    # An adjudication on the dimension stands instead of the votes.
    ({}, (0, 3, 0), {"overall": {PAIR: FIRST}}, {}, TEXTS, (None, True)),
    ({"min_margin": 5}, (1, 0, 0), {"overall": {PAIR: SECOND}}, {}, TEXTS, (None, False)),
    ({}, (3, 0, 0), {"overall": {PAIR: TIE}}, {}, TEXTS, ("no_majority", False)),
    ({}, (3, 0, 0), {"overall": {(0, 2): FIRST}}, {}, TEXTS, ("no_majority", False)),  # silent on this pair
    ({}, (3, 0, 0), {"overall": None, "harmless": {PAIR: FIRST}}, {}, TEXTS, (None, True)),
    # Veto: the chosen one must not lose on another dimension, by its decision or its votes.
    ({"veto": ["harmless"]}, (3, 0, 0), {}, {"harmless": {PAIR: (0, 2, 0)}}, TEXTS, ("veto", True)),
    ({"veto": ["harmless"]}, (3, 0, 0), {}, {"harmless": {PAIR: (1, 1, 0)}}, TEXTS, (None, True)),
    ({"veto": ["harmless"]}, (3, 0, 0), {}, {"harmless": {}}, TEXTS, (None, True)),
    ({"veto": ["harmless"]}, (0, 3, 0), {}, {"harmless": {PAIR: (2, 0, 0)}}, TEXTS, ("veto", False)),
    (
        {"veto": ["harmless"]},
        (3, 0, 0),
        {"harmless": {PAIR: SECOND}},
        {"harmless": {PAIR: (3, 0, 0)}},
        TEXTS,
        ("veto", True),
    ),
    # Identical answers (but for surrounding white space) never make a pair.
    ({}, (3, 0, 0), {}, {}, {0: "same", 1: "same"}, ("identical", True)),
    ({"min_margin": 5}, (3, 0, 0), {}, {}, {0: "same", 1: "same"}, ("margin", True)),
]


@pytest.mark.parametrize(("filters", "votes", "decided", "veto_votes", "texts", "expected"), PAIR_CASES)
def test_pair_fate(
    filters: dict[str, Any],
    votes: Votes,
    decided: dict[str, dict[Pair, int] | None],
    veto_votes: dict[str, dict[Pair, Votes]],
    texts: dict[int, str],
    expected: tuple[str | None, bool],
) -> None:
    got = pair_fate(ExportFilter(**filters), PAIR, votes, decided=decided, veto_votes=veto_votes, texts=texts)
    assert got == expected


def test_every_drop_reason_and_keeping_have_rows() -> None:
    """The two tables above cover every reason an export counts, and keeping."""
    reasons = {expected for _, _, expected in ITEM_CASES} | {case[-1][0] for case in PAIR_CASES}
    assert reasons == {*DROP_REASONS, None}


def test_vetoed_on_a_pair_the_chosen_one_is_second_of() -> None:
    """Pair (0, 1) exported as 1 ≻ 0: a veto dimension whose votes prefer 0 stops it; one that prefers 1 does
    not."""
    assert vetoed(["harmless"], PAIR, 1, 0, {}, {"harmless": {PAIR: (2, 0, 0)}})
    assert not vetoed(["harmless"], PAIR, 1, 0, {}, {"harmless": {PAIR: (0, 2, 0)}})
