"""Importing a fixture in a format, and reading back what it stored: items with their candidates, and judgments with
their verdicts in canonical positions and their annotators."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from app.db import Database
from app.items.formats.service import FormatImportResult, import_in_format
from app.models import Candidate, Item, Judgment, Project, User, Verdict
from tests.factories import make_project

FIXTURES = Path(__file__).parent / "fixtures"
DIMENSIONS = [
    {"key": "helpful", "label": "Helpful"},
    {"key": "honest", "label": "Honest"},
    {"key": "polite", "label": "Polite", "required": False},
]


def project(db: Database, slug: str = "fmt", *, k: int = 2, **fields: Any) -> int:
    with db.session() as s:
        return make_project(s, slug, k=k, dimensions=fields.pop("dimensions", DIMENSIONS), **fields).id


def run(db: Database, project_id: int, body: bytes, fmt: str, **options: Any) -> FormatImportResult:
    with db.session() as s:
        target = s.get(Project, project_id)
        assert target is not None
        return import_in_format(s, project=target, stream=io.BytesIO(body), fmt=fmt, filename="f.jsonl", **options)


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def items(db: Database, project_id: int) -> dict[str, dict[str, Any]]:
    """external id → {"prompt", "texts" (by position), "models", "meta"}."""
    out: dict[str, dict[str, Any]] = {}
    with db.session(write=False) as s:
        for item in s.scalars(select(Item).where(Item.project_id == project_id).order_by(Item.id)):
            cands = s.scalars(select(Candidate).where(Candidate.item_id == item.id).order_by(Candidate.position))
            rows = list(cands)
            out[str(item.external_id)] = {
                "prompt": item.prompt,
                "texts": [c.text for c in rows],
                "models": [c.model for c in rows],
                "meta": item.meta,
                "judgment_count": item.judgment_count,
            }
    return out


def judgments(db: Database, project_id: int) -> dict[tuple[str, str], dict[str, Any]]:
    """(item external id, annotator) → {dimension: "tie" | "na" | (chosen, rejected) | tiers}, with "_reason" and
    "_external" (the annotator is an external user) and "_imported"."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    with db.session(write=False) as s:
        rows = s.execute(
            select(Judgment, Item.external_id, User.username, User.external)
            .join(Item, Item.id == Judgment.item_id)
            .join(User, User.id == Judgment.annotator_id)
            .where(Judgment.project_id == project_id)
        ).all()
        for judgment, external_id, username, external in rows:
            position = {
                c.id: c.position for c in s.scalars(select(Candidate).where(Candidate.item_id == judgment.item_id))
            }
            verdicts: dict[str, Any] = {
                "_reason": judgment.reason,
                "_external": external,
                "_imported": judgment.imported,
            }
            for v in s.scalars(select(Verdict).where(Verdict.judgment_id == judgment.id)):
                if v.kind == "preference":
                    verdicts[v.dimension] = (position[v.chosen_candidate_id], position[v.rejected_candidate_id])
                elif v.kind == "ranking":
                    verdicts[v.dimension] = [[position[c] for c in tier] for tier in (v.ranking or {})["tiers"]]
                else:
                    verdicts[v.dimension] = v.kind
            out[(str(external_id), username)] = verdicts
    return out


def count(db: Database, model: Any) -> int:
    with db.session(write=False) as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)
