"""The labels read from the database: pairs in canonical positions, and the orientation each was shown in."""

from __future__ import annotations

from sqlalchemy import select

from app.consensus.loading import load_labels, pair_index
from app.db import Database
from app.export.pairs import FIRST, SECOND, TIE
from app.models import Assignment, Candidate, Project
from tests.factories import make_item, make_judgment, make_project, make_user


def test_pairs_and_orientation_of_a_k3_judgment(db: Database) -> None:
    with db.session() as s:
        ann = make_user(s, "ann")
        project = make_project(s, "load", k=3, dimensions=[{"key": "helpful", "label": "Helpful"}], members=[ann])
        item = make_item(s, project, "a prompt")
        judgment = make_judgment(
            s, item, ann, {"overall": ("preference", 0, 2), "helpful": ("preference", 2, 1)}
        )  # fmt: skip
        ids = dict(
            s.execute(select(Candidate.position, Candidate.id).where(Candidate.item_id == item.id)).tuples().all()
        )
        assignment = s.get(Assignment, judgment.assignment_id)
        assert assignment is not None
        assignment.display_order = [ids[2], ids[0], ids[1]]  # shown: C, A, B
        project_id, item_id, ann_id = project.id, item.id, ann.id
    with db.session(write=False) as s:
        project = s.get(Project, project_id)
        assert project is not None
        labels = load_labels(s, project=project)
    got = {
        (int(d), pair_index(3)[int(p)]): (int(label), bool(first))
        for d, p, label, first in zip(labels.dimension, labels.pair, labels.label, labels.shown_first, strict=True)
    }
    # Shown order C, A, B: A before B, C before both.
    assert got == {
        (0, (0, 1)): (FIRST, True),  # overall: A best, C worst
        (0, (0, 2)): (FIRST, False),
        (0, (1, 2)): (FIRST, False),
        (1, (0, 2)): (SECOND, False),  # helpful: C best, B worst
        (1, (1, 2)): (SECOND, False),
        (1, (0, 1)): (FIRST, True),
    }
    assert set(labels.item.tolist()) == {item_id} and set(labels.annotator.tolist()) == {ann_id}
    assert TIE not in labels.label.tolist()
