"""Preference pairs and their consensus — pure functions, no database.

A judgment's verdict on one dimension implies labelled pairs of canonical positions (i < j): FIRST (i ≻ j),
SECOND (j ≻ i) or TIE. "implied" pairs: best ≻ each other and each other ≻ worst (k = 2: one pair);
"best_worst": only best ≻ worst. A tie verdict says every pair is a tie; "n.a." says nothing.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from itertools import combinations

FIRST, SECOND, TIE = 0, 1, 2

Pair = tuple[int, int]

__all__ = [
    "FIRST",
    "SECOND",
    "TIE",
    "Pair",
    "Verdict",
    "Votes",
    "count",
    "implied_pairs",
    "loses_on",
    "pairs_of",
    "split_of",
    "winner",
]


@lru_cache(maxsize=4096)
def implied_pairs(kind: str, chosen: int | None, rejected: int | None, k: int) -> dict[Pair, int]:
    """The labelled pairs (canonical positions i < j) that one verdict implies.

    A preference of best ≻ worst implies best ≻ every other and every other ≻ worst (k = 2: one pair);
    a tie implies a tie on every pair; "n.a." implies nothing. Cached: callers must not change the result.
    """
    if kind == "na":
        return {}
    if kind == "tie":
        return dict.fromkeys(combinations(range(k), 2), TIE)
    if chosen is None or rejected is None or chosen == rejected:
        raise ValueError("a preference needs two different candidates")
    pairs: dict[Pair, int] = {}

    def prefer(winner: int, loser: int) -> None:
        i, j = min(winner, loser), max(winner, loser)
        pairs[(i, j)] = FIRST if winner == i else SECOND

    for other in range(k):
        if other != chosen:
            prefer(chosen, other)
        if other not in (chosen, rejected):
            prefer(other, rejected)
    return pairs


@lru_cache(maxsize=4096)
def pairs_of(kind: str, chosen: int | None, rejected: int | None, k: int, mode: str) -> dict[Pair, int]:
    """The labelled pairs one verdict implies, in ``mode`` "implied" or "best_worst" (cached; do not change)."""
    if mode == "best_worst" and kind == "preference":
        if chosen is None or rejected is None or chosen == rejected:
            raise ValueError("a preference needs two different candidates")
        i, j = min(chosen, rejected), max(chosen, rejected)
        return {(i, j): FIRST if chosen == i else SECOND}
    return implied_pairs(kind, chosen, rejected, k)


Verdict = tuple[str, int | None, int | None]  # kind, chosen position, rejected position
Votes = tuple[int, int, int]  # for i ≻ j, for j ≻ i, ties — on a pair (i, j), i < j


@lru_cache(maxsize=1 << 16)
def count(verdicts: tuple[Verdict, ...], k: int, mode: str) -> dict[Pair, Votes]:
    """The votes on each pair from the verdicts of several annotators on one item and dimension.

    Cached (the same few verdict combinations recur across items): callers must not change the result."""
    acc: dict[Pair, list[int]] = {}
    for verdict in verdicts:
        for pair, label in pairs_of(*verdict, k, mode).items():
            votes = acc.get(pair)
            if votes is None:
                votes = acc[pair] = [0, 0, 0]
            votes[label] += 1
    return {pair: (v[0], v[1], v[2]) for pair, v in acc.items()}


def winner(votes: Votes) -> int | None:
    """FIRST or SECOND when one direction has more votes than the other; None when they are level."""
    first, second, _ = votes
    if first == second:
        return None
    return FIRST if first > second else SECOND


def loses_on(votes: Votes | None, pair: Pair, chosen: int, rejected: int) -> bool:
    """True when, on another dimension, the votes on ``pair`` prefer ``rejected`` over ``chosen``."""
    if votes is None:
        return False
    won = winner(votes)
    if won is None:
        return False
    i, j = pair
    return (j, i) == (chosen, rejected) if won == FIRST else (i, j) == (chosen, rejected)


def split_of(project_slug: str, item_id: int, test_share: float) -> str:
    """ "train" or "test", fixed per item by a hash of its id (stable across exports and machines)."""
    digest = hashlib.sha256(f"{project_slug}:{item_id}".encode()).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2**64
    return "test" if fraction < test_share else "train"
