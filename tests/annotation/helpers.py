"""Small helpers shared by the annotation tests."""

from __future__ import annotations

from app.annotation.schemas import JudgmentIn, VerdictIn
from app.annotation.service import Task, dimension_keys
from app.models import Project


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
