"""Small helpers shared by the annotation tests."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.annotation.dimensions import dimension_keys
from app.annotation.queue import Task
from app.annotation.schemas import JudgmentIn, VerdictIn
from app.generation.client import Sample
from app.models import Project, User


def prefer_first(task: Task, project: Project, *, reason: str = "") -> JudgmentIn:
    """A judgment that prefers the first candidate shown over the last on every dimension."""
    first, last = task.candidates[0].id, task.candidates[-1].id
    return JudgmentIn(
        verdicts={d: VerdictIn(kind="preference", chosen=first, rejected=last) for d in dimension_keys(project)},
        reason=reason,
    )


def verdicts_json(task_candidates: list[dict[str, object]], dims: list[str]) -> dict[str, dict[str, object]]:
    first, last = task_candidates[0]["id"], task_candidates[-1]["id"]
    return {d: {"kind": "preference", "chosen": first, "rejected": last} for d in dims}


def regenerated_samples(n: int) -> list[Sample]:
    """``n`` candidates as a model server's answer would give them, for ``store_candidates``."""
    return [
        Sample(
            text=f"regenerated {i}",
            model="m",
            base_url="u",
            params={},
            seed=i,
            finish_reason="stop",
            prompt_tokens=1,
            completion_tokens=1,
            latency_ms=1.0,
        )
        for i in range(n)
    ]


def project_and_user(s: Session, ids: dict[str, int]) -> tuple[Project, User]:
    """The project and the annotator of a fixture's ids (keys "project" and "me")."""
    project, me = s.get(Project, ids["project"]), s.get(User, ids["me"])
    assert project is not None and me is not None
    return project, me
