"""JSON: the adjudication queue and decisions."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Query

from app.adjudication import service
from app.adjudication.schemas import DecisionIn, DecisionOut, QueueEntryOut
from app.auth.deps import AdminUser
from app.kit.schemas import RowId
from app.projects.deps import AdminProjectDep
from app.web.deps import SessionDep

router = APIRouter(tags=["adjudication"])


@router.get("/projects/{project}/adjudication", response_model=list[QueueEntryOut])
def adjudication_queue(
    project: AdminProjectDep, session: SessionDep, threshold: float = Query(default=service.DEFAULT_MARGIN, ge=0, le=1)
) -> list[QueueEntryOut]:
    """Items needing a decision: split overall votes (margin below ``threshold``), flags, or a choice that the
    majority finds worse on harmlessness — closest votes first."""
    return [QueueEntryOut(**asdict(e)) for e in service.queue(session, project=project, threshold=threshold)]


@router.post("/projects/{project}/items/{item_id}/adjudication", response_model=DecisionOut, status_code=201)
def decide(
    item_id: RowId, body: DecisionIn, project: AdminProjectDep, session: SessionDep, admin: AdminUser
) -> DecisionOut:
    """Decide an item (all dimensions, canonical candidate ids, with the reason); supersedes the votes."""
    decision = service.decide(
        session, project=project, item_id=item_id, verdicts=body.verdicts, reason=body.reason, admin=admin
    )
    return DecisionOut.model_validate(decision)
