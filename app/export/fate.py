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
# The consensus model's (P(i ≻ j), P(j ≻ i), P(tie)) of a pair (i, j).
Posterior = tuple[float, float, float]


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
    posterior: Posterior | None = None,
    strength: float | None = None,
) -> tuple[str | None, bool]:
    """Why the pair (i, j) is dropped (None: it is kept), and whether i is the chosen one.

    ``votes``: for i, for j, ties on the filter's dimension; ``decided``: the adjudication's labels by
    dimension (empty without one); ``veto_votes``: the votes on each veto dimension; ``texts``: the candidates'
    texts without surrounding white space, by position (identical answers never make a pair); ``posterior``:
    the consensus model's (P(i ≻ j), P(j ≻ i), P(tie)), None without a fit or without one for this pair;
    ``strength``: the mean signed strength of the votes that carry one, positive for i ≻ j (None: none do)."""
    decided_here = decided.get(filters.dimension)
    if decided_here is not None:
        label = decided_here.get(pair)
        if label is None or label == TIE:
            return "no_majority", False
        chosen_first = label == FIRST
    else:
        if sum(votes) < filters.min_votes:
            return "min_votes", votes[0] > votes[1]
        by_votes = _by_model if filters.label == "model" else _by_votes
        reason, chosen_first = by_votes(filters, votes, posterior)
        if reason is not None:
            return reason, chosen_first
        if filters.min_confidence is not None and _confidence(posterior, chosen_first) < filters.min_confidence:
            return "min_confidence", chosen_first
        signed = None if strength is None else strength if chosen_first else -strength
        if filters.min_strength is not None and (signed is None or signed < filters.min_strength):
            return "min_strength", chosen_first
    i, j = pair
    chosen, rejected = (i, j) if chosen_first else (j, i)
    if filters.veto and vetoed(filters.veto, pair, chosen, rejected, decided, veto_votes):
        return "veto", chosen_first
    if texts[chosen] == texts[rejected]:
        return "identical", chosen_first
    return None, chosen_first


def _by_votes(filters: ExportFilter, votes: Votes, _posterior: Posterior | None) -> tuple[str | None, bool]:
    """The majority's direction, and why the votes drop it (None: they keep it)."""
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
    return None, chosen_first


def _by_model(filters: ExportFilter, _votes: Votes, posterior: Posterior | None) -> tuple[str | None, bool]:
    """The model's more probable direction, and why it is dropped: no fit for the pair or two equally likely
    directions ("no_majority"), or a tie more likely than the winner (when ties are dropped). The votes' margin
    and share rules do not apply: the model may rightly go against a bare majority."""
    if posterior is None or posterior[0] == posterior[1]:
        return "no_majority", False
    chosen_first = posterior[0] > posterior[1]
    if filters.drop_ties and posterior[2] >= max(posterior[0], posterior[1]):
        return "tie", chosen_first
    return None, chosen_first


def _confidence(posterior: Posterior | None, chosen_first: bool) -> float:
    """The posterior of the direction exported (0 without one)."""
    if posterior is None:
        return 0.0
    return posterior[0] if chosen_first else posterior[1]


def is_tie(filters: ExportFilter, votes: Votes, *, decided: Decided, pair: Pair, posterior: Posterior | None) -> bool:
    """Whether the pair's consensus is a tie (for the ties file): the decision says so; or, without one, the
    model finds a tie the most probable (label=model), or as many or more votes say tie as either direction."""
    decided_here = decided.get(filters.dimension)
    if decided_here is not None:
        return decided_here.get(pair) == TIE
    if sum(votes) < filters.min_votes:
        return False
    if filters.label == "model":
        return posterior is not None and posterior[2] >= max(posterior[0], posterior[1])
    first, second, ties = votes
    return ties > 0 and ties >= max(first, second)


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
