"""Whether an export keeps a pair, and if not, why — pure functions over votes, no database.

The rules apply in the order of ``DROP_REASONS``: the first that drops a pair is the one counted. An item's
rules (``item_fate``) drop all its pairs at once; a pair's rules (``pair_fate``) then decide each pair and its
direction. An adjudication, where the filter lets it count, stands instead of the votes on its dimensions.
"""

from __future__ import annotations

from collections.abc import Mapping

from app.export.pairs import FIRST, TIE, Pair, Votes, loses_on
from app.export.schemas import ExportFilter

NO_VOTES: Votes = (0, 0, 0)

# An adjudication's labelled pairs per dimension (None: the decision says nothing on that dimension).
Decided = Mapping[str, Mapping[Pair, int] | None]


def item_fate(filters: ExportFilter, *, judgments: int, adjudicated: bool, problematic: bool, split: str) -> str | None:
    """Why every pair of an item is dropped, or None: too few judgments (an adjudicated item needs none), a
    judgment flagged its prompt as problematic, or the item is in the other split."""
    if not adjudicated and judgments < filters.min_judgments:
        return "min_judgments"
    if filters.drop_problematic and problematic:
        return "problematic"
    if filters.split != "all" and split != filters.split:
        return "split"
    return None


def pair_fate(
    filters: ExportFilter,
    pair: Pair,
    votes: Votes,
    *,
    decided: Decided,
    veto_votes: Mapping[str, Mapping[Pair, Votes]],
    texts: Mapping[int, str],
) -> tuple[str | None, bool]:
    """Why the pair (i, j) is dropped (None: it is kept), and whether i is the chosen one.

    ``votes``: for i, for j, ties on the filter's dimension; ``decided``: the adjudication's labels by
    dimension (empty without one); ``veto_votes``: the votes on each veto dimension; ``texts``: the candidates'
    texts without surrounding white space, by position (identical answers never make a pair)."""
    decided_here = decided.get(filters.dimension)
    if decided_here is not None:
        label = decided_here.get(pair)
        if label is None or label == TIE:
            return "no_majority", False
        chosen_first = label == FIRST
    else:
        first, second, ties = votes
        if first == second:
            return "no_majority", False
        chosen_first = first > second
        winner, loser = (first, second) if chosen_first else (second, first)
        if filters.drop_ties and ties >= winner:
            return "tie", chosen_first
        if winner - loser < filters.min_margin:
            return "margin", chosen_first
        if winner < filters.min_share * (first + second + ties):
            return "share", chosen_first
    i, j = pair
    chosen, rejected = (i, j) if chosen_first else (j, i)
    if filters.veto and vetoed(filters.veto, pair, chosen, rejected, decided, veto_votes):
        return "veto", chosen_first
    if texts[chosen] == texts[rejected]:
        return "identical", chosen_first
    return None, chosen_first


def vetoed(
    vetoes: list[str],
    pair: Pair,
    chosen: int,
    rejected: int,
    decided: Decided,
    votes: Mapping[str, Mapping[Pair, Votes]],
) -> bool:
    """True when the chosen candidate loses to the rejected one on a veto dimension (by its adjudication where
    there is one, else by the votes)."""
    for veto in vetoes:
        other = decided.get(veto)
        if other is not None:
            label = other.get(pair)
            if label is not None and label != TIE and ((label == FIRST) != (chosen == pair[0])):
                return True
        elif loses_on(votes[veto].get(pair), pair, chosen, rejected):
            return True
    return False
