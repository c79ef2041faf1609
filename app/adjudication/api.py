"""JSON: the adjudication queue and decisions."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Query

from app.adjudication import service, stream
from app.adjudication.schemas import DecidedOut, DecidedPageOut, DecisionIn, DecisionOut, QueueEntryOut
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


@router.get("/projects/{project}/adjudication/decided", response_model=DecidedPageOut)
def adjudication_decided(
    project: AdminProjectDep,
    session: SessionDep,
    before: int | None = Query(default=None, ge=1, description="the ``next_before`` of the previous page"),
    limit: int = Query(default=stream.DECIDED_PAGE, ge=1, le=500),
) -> DecidedPageOut:
    """Decided items (each with its current decision: who, when, reason, verdicts), newest first, keyset paginated."""
    entries, next_before = stream.decided(session, project=project, before=before, limit=limit)
    return DecidedPageOut(entries=[DecidedOut(**asdict(e)) for e in entries], next_before=next_before)


@router.post("/projects/{project}/items/{item_id}/adjudication", response_model=DecisionOut, status_code=201)
def decide(
    item_id: RowId, body: DecisionIn, project: AdminProjectDep, session: SessionDep, admin: AdminUser
) -> DecisionOut:
    """Decide an item (all dimensions, canonical candidate ids, with the reason); supersedes the votes."""
    decision = service.decide(
        session, project=project, item_id=item_id, verdicts=body.verdicts, reason=body.reason, admin=admin
    )
    return DecisionOut.model_validate(decision)
