"""Preference pairs and their consensus — pure functions, no database.

A judgment's verdict on one dimension implies labelled pairs of canonical positions (i < j): FIRST (i ≻ j),
SECOND (j ≻ i) or TIE. "implied" pairs: best ≻ each other and each other ≻ worst (k = 2: one pair);
"best_worst": only best ≻ worst. A ranking (all k candidates in tiers) implies every pair: the better tier wins,
the same tier is a tie ("best_worst": only the top tier against the bottom one). A tie verdict says every pair is
a tie; "n.a." says nothing.

A verdict here is ``(kind, chosen, rejected, ranked)`` in canonical positions; ``ranked`` is None except for a
ranking: ``(tiers, much)`` — the tier of each position (0 best; ``tiers[p]`` for position p) and the gaps marked
"much better" (gap g lies between tier g and tier g + 1).
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from itertools import combinations
from typing import Any

FIRST, SECOND, TIE = 0, 1, 2

Pair = tuple[int, int]
Ranked = tuple[tuple[int, ...], tuple[int, ...]]  # tier of each canonical position, "much better" gaps

__all__ = [
    "FIRST",
    "SECOND",
    "TIE",
    "Pair",
    "Ranked",
    "Verdict",
    "Votes",
    "count",
    "implied_pairs",
    "loses_on",
    "pairs_of",
    "ranked_of",
    "strengths_of",
    "split_of",
    "winner",
]


@lru_cache(maxsize=4096)
def implied_pairs(
    kind: str, chosen: int | None, rejected: int | None, k: int, ranked: Ranked | None = None
) -> dict[Pair, int]:
    """The labelled pairs (canonical positions i < j) that one verdict implies.

    A preference of best ≻ worst implies best ≻ every other and every other ≻ worst (k = 2: one pair);
    a ranking implies every pair (same tier: a tie); a tie implies a tie on every pair; "n.a." implies nothing.
    Cached: callers must not change the result.
    """
    if kind == "na":
        return {}
    if kind == "tie":
        return dict.fromkeys(combinations(range(k), 2), TIE)
    if kind == "ranking":
        tiers = _tiers(ranked, k)
        return {(i, j): _label(tiers[i], tiers[j]) for i, j in combinations(range(k), 2)}
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


def _tiers(ranked: Ranked | None, k: int) -> tuple[int, ...]:
    if ranked is None or len(ranked[0]) != k:
        raise ValueError("a ranking needs the tier of every candidate")
    return ranked[0]


def _label(tier_i: int, tier_j: int) -> int:
    return TIE if tier_i == tier_j else FIRST if tier_i < tier_j else SECOND


@lru_cache(maxsize=4096)
def pairs_of(
    kind: str, chosen: int | None, rejected: int | None, ranked: Ranked | None, k: int, mode: str
) -> dict[Pair, int]:
    """The labelled pairs one verdict implies, in ``mode`` "implied" or "best_worst" (cached; do not change)."""
    if mode == "best_worst" and kind == "preference":
        if chosen is None or rejected is None or chosen == rejected:
            raise ValueError("a preference needs two different candidates")
        i, j = min(chosen, rejected), max(chosen, rejected)
        return {(i, j): FIRST if chosen == i else SECOND}
    if mode == "best_worst" and kind == "ranking":
        tiers = _tiers(ranked, k)
        top, bottom = min(tiers), max(tiers)
        if top == bottom:  # every candidate in one tier: a tie on every pair, as a tie verdict
            return implied_pairs("tie", None, None, k)
        return {
            (i, j): _label(tiers[i], tiers[j])
            for i, j in combinations(range(k), 2)
            if {tiers[i], tiers[j]} == {top, bottom}
        }
    return implied_pairs(kind, chosen, rejected, k, ranked)


@lru_cache(maxsize=4096)
def strengths_of(
    kind: str, chosen: int | None, rejected: int | None, ranked: Ranked | None, k: int, strength: int | None
) -> dict[Pair, int]:
    """How much better the preferred candidate of each implied pair is, where the verdict says: 1 slightly,
    2 better, 3 much better; 0 on a tied pair. A k = 2 preference gives its ``strength`` (when asked); a ranking
    gives 3 to the pairs across a "much better" gap and 0 to the pairs it ties, and says nothing of the others;
    a tie verdict gives 0 to every pair. Unsigned: the direction is the pair's label. Cached; do not change."""
    if kind == "tie":
        return dict.fromkeys(combinations(range(k), 2), 0)
    if kind == "preference":
        if strength is None:
            return {}
        return dict.fromkeys(implied_pairs(kind, chosen, rejected, k), strength)
    if kind == "ranking":
        tiers = _tiers(ranked, k)
        much = ranked[1] if ranked is not None else ()
        out: dict[Pair, int] = {}
        for i, j in combinations(range(k), 2):
            low, high = sorted((tiers[i], tiers[j]))
            if low == high:
                out[(i, j)] = 0
            elif any(low <= gap < high for gap in much):
                out[(i, j)] = 3
        return out
    return {}


def ranked_of(ranking: dict[str, Any] | str | None, ids_to_pos: dict[int, int]) -> Ranked | None:
    """A stored ranking (``{"tiers": [[candidate id, …], …], "much": [gap, …]}``) in canonical positions; None
    without one."""
    if not ranking:
        return None
    # SQLite's driver gives the JSON text (PostgreSQL's decodes jsonb).
    stored: dict[str, Any] = json.loads(ranking) if isinstance(ranking, str) else ranking
    tier_of = {ids_to_pos[cid]: t for t, tier in enumerate(stored["tiers"]) for cid in tier}
    return tuple(tier_of[p] for p in range(len(tier_of))), tuple(sorted(stored.get("much") or ()))


Verdict = tuple[str, int | None, int | None, Ranked | None]  # kind, chosen and rejected position, ranking
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
