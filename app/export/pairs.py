"""Preference pairs and their consensus — pure functions, no database.

A judgment's verdict on one dimension implies labelled pairs of canonical positions (i < j): FIRST (i ≻ j),
SECOND (j ≻ i) or TIE. "implied" pairs: best ≻ each other and each other ≻ worst (k = 2: one pair);
"best_worst": only best ≻ worst. A tie verdict says every pair is a tie; "n.a." says nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import combinations

FIRST, SECOND, TIE = 0, 1, 2

Pair = tuple[int, int]

__all__ = ["FIRST", "SECOND", "TIE", "Consensus", "Pair", "implied_pairs", "pairs_of", "split_of", "tally"]


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


@dataclass(slots=True)
class Consensus:
    """The votes on one pair (i < j): for i ≻ j, for j ≻ i, and ties — with who voted which way."""

    pair: Pair
    first: int = 0
    second: int = 0
    ties: int = 0
    voters: dict[int, list[int]] = field(default_factory=lambda: {FIRST: [], SECOND: [], TIE: []})

    def add(self, label: int, voter: int) -> None:
        if label == FIRST:
            self.first += 1
        elif label == SECOND:
            self.second += 1
        else:
            self.ties += 1
        self.voters[label].append(voter)

    @property
    def total(self) -> int:
        return self.first + self.second + self.ties

    @property
    def winner(self) -> int | None:
        """FIRST or SECOND when one direction has more votes than the other; None when they are level."""
        if self.first == self.second:
            return None
        return FIRST if self.first > self.second else SECOND

    @property
    def for_winner(self) -> int:
        return max(self.first, self.second)

    @property
    def against_winner(self) -> int:
        return min(self.first, self.second)

    @property
    def margin(self) -> int:
        """Votes for the winning direction minus votes for the other (ties count for neither)."""
        return self.for_winner - self.against_winner

    @property
    def share(self) -> float:
        """The winning direction's share of all votes on the pair, ties included."""
        return self.for_winner / self.total if self.total else 0.0

    def oriented(self) -> tuple[int, int]:
        """(chosen position, rejected position) of the winning direction."""
        i, j = self.pair
        return (i, j) if self.winner == FIRST else (j, i)


def tally(votes: Iterable[tuple[int, dict[Pair, int]]]) -> dict[Pair, Consensus]:
    """Consensus per pair from (voter, {pair: label}) entries."""
    out: dict[Pair, Consensus] = {}
    for voter, labelled in votes:
        for pair, label in labelled.items():
            entry = out.get(pair)
            if entry is None:
                entry = out[pair] = Consensus(pair)
            entry.add(label, voter)
    return out


def loses_on(consensus: Consensus | None, chosen: int, rejected: int) -> bool:
    """True when, on another dimension, the pair's consensus prefers ``rejected`` over ``chosen``."""
    if consensus is None or consensus.winner is None:
        return False
    return consensus.oriented() == (rejected, chosen)


def split_of(project_slug: str, item_id: int, test_share: float) -> str:
    """ "train" or "test", fixed per item by a hash of its id (stable across exports and machines)."""
    digest = hashlib.sha256(f"{project_slug}:{item_id}".encode()).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2**64
    return "test" if fraction < test_share else "train"
