"""The majority's verdict per dimension, which a case opens with, and the letters the decision form speaks.

Per dimension the verdict most judgments gave wins: first the best candidate (or "tie" / "n.a."), then, for a
preference, the worst candidate among the votes that named one; a ranking votes with its best and worst. Equal
counts at the top (1-1 with two annotators, 1-1-1 with three) are no majority: that dimension opens blank and the
page says so.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from app.annotation.dimensions import LETTERS
from app.annotation.ranking import top_and_bottom
from app.annotation.schemas import VerdictIn
from app.i18n import gettext
from app.kit.errors import Invalid

MAJORITY_ACCEPTED = "Majority accepted"  # the reason kept when a decision repeats the majority unchanged


def _unique_top(counts: Counter[Any]) -> Any | None:
    ranked = counts.most_common(2)
    if not ranked or (len(ranked) > 1 and ranked[0][1] == ranked[1][1]):
        return None
    return ranked[0][0]


def _best(verdict: VerdictIn) -> int | str | None:
    if verdict.kind == "ranking":
        if len(verdict.ranking or []) == 1:
            return "tie"  # every candidate in one tier
        return top_and_bottom(verdict.ranking)[0]  # None: several share the top, no vote for a best
    return verdict.chosen if verdict.kind == "preference" else verdict.kind


def _worst(verdict: VerdictIn) -> int | None:
    if verdict.kind == "ranking":
        return top_and_bottom(verdict.ranking)[1]
    return verdict.rejected if verdict.kind == "preference" else None


def majority_verdict(votes: Iterable[VerdictIn]) -> VerdictIn | None:
    """The majority of one dimension's verdicts, or None when the votes tie at the top (or there are none). A
    ranking votes with its best and worst candidate (a tier of several names none); a strength is not kept."""
    votes = list(votes)
    best = _unique_top(Counter(b for b in map(_best, votes) if b is not None))
    if best is None:
        return None
    if isinstance(best, str):
        return VerdictIn.model_validate({"kind": best})
    worst = _unique_top(Counter(w for w in map(_worst, votes) if w is not None and w != best))
    if worst is None:
        return None
    return VerdictIn(kind="preference", chosen=best, rejected=worst)


def majority(judgments: Iterable[Mapping[str, VerdictIn]], dimensions: list[str]) -> dict[str, VerdictIn | None]:
    """Per dimension (in the given order, "overall" first) the majority verdict, None where there is none."""
    judgments = list(judgments)
    return {d: majority_verdict(j[d] for j in judgments if d in j) for d in dimensions}


def form_value(verdict: VerdictIn | Mapping[str, Any] | None, letters: Mapping[int, str]) -> str:
    """A verdict as the decision form posts it: "tie", "na", "A>B" (best > worst) or "" (none)."""
    if verdict is None:
        return ""
    v = verdict if isinstance(verdict, VerdictIn) else VerdictIn.model_validate(dict(verdict))
    if v.kind != "preference":
        return v.kind
    if v.chosen not in letters or v.rejected not in letters:
        return ""  # a stored decision on candidates of another round
    return f"{letters[v.chosen]}>{letters[v.rejected]}"  # type: ignore[index]


def parse_form_value(dim: str, value: str, candidate_ids: list[int]) -> VerdictIn:
    """One posted dimension: "tie", "na", or "<best>><worst>" as letters (A>B) or 1-based numbers (1>2)."""
    value = value.strip()
    if value in ("tie", "na"):
        return VerdictIn.model_validate({"kind": value})
    by_name = {LETTERS[i]: cid for i, cid in enumerate(candidate_ids)}
    by_name.update({str(i + 1): cid for i, cid in enumerate(candidate_ids)})
    best, _, worst = value.upper().partition(">")
    if best not in by_name or worst not in by_name or by_name[best] == by_name[worst]:
        raise Invalid(gettext("{dim}: choose tie, n.a., or a best and a different worst candidate").format(dim=dim))
    return VerdictIn(kind="preference", chosen=by_name[best], rejected=by_name[worst])


def changed_from_majority(verdicts: Mapping[str, VerdictIn], prefill: Mapping[str, VerdictIn | None]) -> list[str]:
    """The dimensions where a decision is not the majority's verdict: a different one, one where there was no
    majority, or none (an optional dimension left out) where there was one."""
    keys = [*prefill, *(d for d in verdicts if d not in prefill)]
    return [d for d in keys if (d in verdicts or prefill.get(d) is not None) and verdicts.get(d) != prefill.get(d)]


def reason_for(verdicts: Mapping[str, VerdictIn], prefill: Mapping[str, VerdictIn | None], reason: str) -> str:
    """The reason to keep: the one given, or ``MAJORITY_ACCEPTED`` when the decision repeats the majority on
    every dimension. A decision that departs from the majority anywhere needs a reason."""
    if reason.strip():
        return reason.strip()
    changed = changed_from_majority(verdicts, prefill)
    if changed:
        raise Invalid(
            gettext("Say why: the decision differs from the majority on {dims}").format(dims=", ".join(changed))
        )
    return MAJORITY_ACCEPTED
