"""The export's rules for one item and one pair (``app.export.fate``), a row per rule: each drop reason, in the
order the rules apply, and the keep cases."""

from __future__ import annotations

from typing import Any

import pytest

from app.export.fate import is_tie, item_fate, pair_fate, vetoed
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
    ({}, (0, 0, 0), {}, {}, TEXTS, ("min_votes", False)),  # no vote on the pair at all
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


# The pair's own votes, the consensus model's posterior (P(0 ≻ 1), P(1 ≻ 0), P(tie)) and the mean signed strength
# (positive: 0 ≻ 1) decide.
MODEL_CASES: list[tuple[Any, ...]] = [
    ({"min_votes": 2}, (1, 0, 0), None, None, ("min_votes", True)),
    ({"min_votes": 2, "drop_ties": False}, (1, 0, 1), None, None, (None, True)),  # a tie vote is a vote
    ({"min_votes": 3, "min_margin": 5}, (2, 0, 0), None, None, ("min_votes", True)),  # before the margin
    # label=model: the posterior's direction, even against the bare majority; margin and share do not apply.
    ({"label": "model"}, (2, 1, 0), (0.2, 0.7, 0.1), None, (None, False)),
    ({"label": "model", "min_margin": 3}, (1, 0, 0), (0.9, 0.05, 0.05), None, (None, True)),
    ({"label": "model"}, (2, 1, 0), None, None, ("no_majority", False)),  # no posterior for the pair
    ({"label": "model"}, (2, 1, 0), (0.3, 0.3, 0.4), None, ("no_majority", False)),
    ({"label": "model"}, (2, 1, 0), (0.4, 0.1, 0.5), None, ("tie", True)),
    ({"label": "model", "drop_ties": False}, (2, 1, 0), (0.4, 0.1, 0.5), None, (None, True)),
    ({"label": "model", "min_confidence": 0.8}, (2, 1, 0), (0.7, 0.2, 0.1), None, ("min_confidence", True)),
    ({"label": "model", "min_confidence": 0.8}, (0, 1, 0), (0.1, 0.85, 0.05), None, (None, False)),
    ({"min_confidence": 0.8}, (2, 1, 0), (0.2, 0.7, 0.1), None, ("min_confidence", True)),  # majority's side
    ({"min_confidence": 0.5}, (2, 1, 0), None, None, ("min_confidence", True)),  # no posterior: 0
    # min_strength: the mean signed strength toward the exported direction.
    ({"min_strength": 2}, (2, 0, 0), None, 2.5, (None, True)),
    ({"min_strength": 2}, (2, 0, 0), None, 1.5, ("min_strength", True)),
    ({"min_strength": 2}, (0, 2, 0), None, -2.5, (None, False)),  # 1 ≻ 0 strongly: +2.5 toward the chosen
    ({"min_strength": 0}, (0, 2, 0), None, 1.0, ("min_strength", False)),  # strength says the other way
    ({"min_strength": 1}, (2, 0, 0), None, None, ("min_strength", True)),  # no vote carries a strength
    ({"min_strength": 3, "min_confidence": 0.9}, (2, 0, 0), (0.5, 0.4, 0.1), 3.0, ("min_confidence", True)),
    # An adjudication stands over the model and the new thresholds.
    ({"label": "model", "min_votes": 5, "min_confidence": 0.9}, (0, 1, 0), (0.1, 0.8, 0.1), None, (None, True)),
]


@pytest.mark.parametrize(("filters", "votes", "posterior", "strength", "expected"), MODEL_CASES)
def test_pair_fate_by_votes_model_and_strength(
    filters: dict[str, Any],
    votes: Votes,
    posterior: tuple[float, float, float] | None,
    strength: float | None,
    expected: tuple[str | None, bool],
) -> None:
    decided = {"overall": {PAIR: FIRST}} if filters.get("min_votes") == 5 else {}
    got = pair_fate(
        ExportFilter(**filters),
        PAIR,
        votes,
        decided=decided,
        veto_votes={},
        texts=TEXTS,
        posterior=posterior,
        strength=strength,
    )
    assert got == expected


TIE_CASES: list[tuple[Any, ...]] = [
    ({}, (1, 0, 2), None, {}, True),
    ({}, (2, 2, 2), None, {}, True),
    ({}, (2, 0, 1), None, {}, False),
    ({}, (0, 0, 0), None, {}, False),
    ({"min_votes": 3}, (0, 0, 2), None, {}, False),
    ({"label": "model"}, (3, 0, 0), (0.3, 0.2, 0.5), {}, True),
    ({"label": "model"}, (0, 0, 3), (0.6, 0.1, 0.3), {}, False),
    ({}, (3, 0, 0), None, {"overall": {PAIR: TIE}}, True),
    ({}, (0, 0, 3), None, {"overall": {PAIR: FIRST}}, False),
]


@pytest.mark.parametrize(("filters", "votes", "posterior", "decided", "expected"), TIE_CASES)
def test_is_tie(
    filters: dict[str, Any],
    votes: Votes,
    posterior: tuple[float, float, float] | None,
    decided: dict[str, dict[Pair, int]],
    expected: bool,
) -> None:
    assert is_tie(ExportFilter(**filters), votes, decided=decided, pair=PAIR, posterior=posterior) is expected


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
    """The tables above cover every reason an export counts, and keeping."""
    reasons = {expected for _, _, expected in ITEM_CASES} | {case[-1][0] for case in PAIR_CASES + MODEL_CASES}
    assert reasons == {*DROP_REASONS, None}


def test_vetoed_on_a_pair_the_chosen_one_is_second_of() -> None:
    """Pair (0, 1) exported as 1 ≻ 0: a veto dimension whose votes prefer 0 stops it; one that prefers 1 does
    not."""
    assert vetoed(["harmless"], PAIR, 1, 0, {}, {"harmless": {PAIR: (2, 0, 0)}})
    assert not vetoed(["harmless"], PAIR, 1, 0, {}, {"harmless": {PAIR: (0, 2, 0)}})
