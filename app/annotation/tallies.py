"""Each annotator's running count of judgments in a project, and of them the gold ones.

Next-item reads a tally for the gold share and the progress bar instead of counting judgments; the counts are
kept exact in the transactions that change them (a submit, an item turning gold or back), and rebuilt whole
after a bulk load.
"""

from __future__ import annotations

from sqlalchemy import case, delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from app.db import is_postgres
from app.models import AnnotatorTally, Item, Judgment, Project, User


def _tally_key(project_id: int, annotator_id: int) -> tuple[str, int, int]:
    """Where ``tally`` keeps an annotator's counts in ``session.info``."""
    return ("tally", project_id, annotator_id)


def tally(session: Session, *, project: Project, annotator: User) -> tuple[int, int]:
    """(judged, of them gold) for the annotator in the project, from their tally row; read once per session
    (next-item needs it twice: for the gold share and the progress), again after a submit."""
    key = _tally_key(project.id, annotator.id)
    if key not in session.info:
        row = session.execute(
            select(AnnotatorTally.judged, AnnotatorTally.gold_judged).where(
                AnnotatorTally.project_id == project.id, AnnotatorTally.annotator_id == annotator.id
            )
        ).first()
        session.info[key] = (int(row[0]), int(row[1])) if row is not None else (0, 0)
    judged, gold = session.info[key]
    return judged, gold


def judged_count(session: Session, *, project: Project, annotator: User) -> int:
    """How many items the annotator has judged in the project (every candidate round)."""
    return tally(session, project=project, annotator=annotator)[0]


def count_judgment(session: Session, *, project_id: int, annotator_id: int, gold: bool) -> None:
    """Add a new judgment to its annotator's tally (in the transaction that stores it)."""
    # An update first (a statement SQLAlchemy caches: it compiles one with ON CONFLICT at every use); the upsert
    # only for an annotator's first judgment in the project.
    increments = {"judged": AnnotatorTally.judged + 1, "gold_judged": AnnotatorTally.gold_judged + int(gold)}
    added = session.execute(
        update(AnnotatorTally)
        .where(AnnotatorTally.project_id == project_id, AnnotatorTally.annotator_id == annotator_id)
        .values(increments)
        .execution_options(synchronize_session=False)
    )
    if added.rowcount == 0:  # type: ignore[attr-defined]
        upsert = pg_insert if is_postgres(session) else sqlite_insert
        session.execute(
            upsert(AnnotatorTally)
            .values(project_id=project_id, annotator_id=annotator_id, judged=1, gold_judged=int(gold))
            .on_conflict_do_update(
                index_elements=[AnnotatorTally.project_id, AnnotatorTally.annotator_id], set_=increments
            )
        )
    session.info.pop(_tally_key(project_id, annotator_id), None)


def shift_gold_tallies(session: Session, *, item: Item, gold: bool) -> None:
    """An item became gold (or stopped being gold): move its judgments into (out of) their annotators' gold
    counts. Call after the item's row was updated (and so locked): a submit of it waits for this transaction
    and then counts the item as it is now."""
    delta = 1 if gold else -1
    for annotator_id, judgments in session.execute(
        select(Judgment.annotator_id, func.count()).where(Judgment.item_id == item.id).group_by(Judgment.annotator_id)
    ):
        session.execute(
            update(AnnotatorTally)
            .where(AnnotatorTally.project_id == item.project_id, AnnotatorTally.annotator_id == annotator_id)
            .values(gold_judged=AnnotatorTally.gold_judged + delta * judgments)
        )
        session.info.pop(_tally_key(item.project_id, annotator_id), None)


def recount_tallies(session: Session, *, project_id: int) -> None:
    """Rebuild the project's tallies from its judgments (after judgments were written in bulk, not submitted)."""
    session.execute(delete(AnnotatorTally).where(AnnotatorTally.project_id == project_id))
    session.execute(
        insert(AnnotatorTally).from_select(
            ["project_id", "annotator_id", "judged", "gold_judged"],
            select(
                Judgment.project_id,
                Judgment.annotator_id,
                func.count(),
                func.coalesce(func.sum(case((Item.is_gold, 1), else_=0)), 0),
            )
            .join(Item, Item.id == Judgment.item_id)
            .where(Judgment.project_id == project_id)
            .group_by(Judgment.project_id, Judgment.annotator_id),
        )
    )
    for key in [k for k in session.info if isinstance(k, tuple) and k[:2] == ("tally", project_id)]:
        del session.info[key]
