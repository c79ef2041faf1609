"""Judge-labelled pairs in the export (``source=judge|both``): the primary judge's consistent suggestions, kept
where the judge may be trusted.

A suggestion counts when it is the primary judge's (``app.judge.repository.primary_suggestions``) on the item's
current candidate round and the filter's dimension, is not "unsure", reaches ``min_judge_confidence`` (a
suggestion without a confidence — no logprobs came back — passes only a threshold of 0) and the judge's Cohen's κ
against the human majority on the dimension reaches ``min_judge_kappa`` (an undefined κ keeps nothing). Its
labelled pairs follow the human pair rules (``app.export.pairs.pairs_of``): a preference implies best ≻ each
other and each other ≻ worst, a ranking every pair, a tie a tie on every pair (tied pairs go only to the ties
file, as people's do).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.export.pairs import Pair, pairs_of, ranked_of
from app.export.schemas import ExportFilter
from app.models import Item, Project


@dataclass(frozen=True, slots=True)
class JudgeLabel:
    """One item's suggestion that counts, as the export needs it (candidate ids canonical)."""

    judge: str
    prompt_version: str
    kind: str
    chosen: int | None
    rejected: int | None
    ranking: Any
    confidence: float | None
    rationale: str
    dropped: str | None = None  # why the thresholds leave it out: _judge_unsure, _judge_kappa, _judge_confidence

    def labels(self, ids_to_pos: dict[int, int], k: int, mode: str) -> dict[Pair, int]:
        """The labelled pairs (canonical positions) the suggestion implies; none when it names a candidate the
        item does not have now."""
        try:
            if self.kind == "preference":
                if self.chosen is None or self.rejected is None:
                    return {}
                return pairs_of(self.kind, ids_to_pos[self.chosen], ids_to_pos[self.rejected], None, k, mode)
            if self.kind == "ranking":
                ranked = ranked_of(self.ranking, ids_to_pos)
                return pairs_of(self.kind, None, None, ranked, k, mode)
            return pairs_of("tie", None, None, None, k, mode)
        except (KeyError, ValueError):
            return {}


def dimension_kappa(session: Session, *, project: Project, dimension: str) -> float | None:
    """The primary judge's κ against the human majority on ``dimension`` (None: undefined)."""
    # Local: the agreement figures bring numpy, which exports without judge labels never need.
    from app.agreement.judge import judge_kappa

    figure = judge_kappa(session, project=project, resamples=0).get(dimension)
    return None if figure is None else figure.value


def judge_labels(
    session: Session, *, project: Project, filters: ExportFilter, kappa: float | None
) -> dict[int, JudgeLabel]:
    """item id → the judge's label on the filter's dimension, with ``dropped`` set where the thresholds leave
    it out (counted per item as the export visits it)."""
    from app.judge.repository import primary_suggestions

    ids = session.scalars(select(Item.id).where(Item.project_id == project.id)).all()
    found = primary_suggestions(session, project=project, item_ids=ids)
    out: dict[int, JudgeLabel] = {}
    trusted = kappa is not None and kappa >= filters.min_judge_kappa
    for (item_id, dim), s in found.items():
        if dim != filters.dimension:
            continue
        dropped = None
        if s.kind == "unsure":
            dropped = "_judge_unsure"
        elif not trusted:
            dropped = "_judge_kappa"
        elif not confident(s.confidence, filters.min_judge_confidence):
            dropped = "_judge_confidence"
        ranking = json.loads(s.ranking) if isinstance(s.ranking, str) else s.ranking
        out[item_id] = JudgeLabel(
            s.judge,
            s.prompt_version,
            s.kind,
            s.chosen_candidate_id,
            s.rejected_candidate_id,
            ranking,
            s.confidence,
            s.rationale or "",
            dropped,
        )
    return out


def confident(confidence: float | None, threshold: float) -> bool:
    """Whether a suggestion's confidence reaches the threshold (None, no logprobs: only a threshold of 0)."""
    return threshold <= 0 if confidence is None else confidence >= threshold


def judge_meta(label: JudgeLabel, kappa: float | None) -> dict[str, Any]:
    """What a judge-labelled row's meta says of its label."""
    return {
        "name": label.judge,
        "prompt_version": label.prompt_version,
        "confidence": None if label.confidence is None else round(label.confidence, 4),
        "kappa": None if kappa is None else round(kappa, 4),
    }
