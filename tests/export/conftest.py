"""A small annotated project whose export is worked out by hand, item by item."""

from __future__ import annotations

from typing import Any

import pytest

from app.auth.service import create_api_token
from app.config import Settings
from app.db import Database
from app.models import Adjudication, Candidate, Item, User, utcnow
from tests.factories import make_item, make_judgment, make_project, make_user

PREF = "preference"


@pytest.fixture
def world(db: Database, settings: Settings) -> dict[str, Any]:
    """k = 2, three annotators. Position 0 is "A", 1 is "B". Expected fate of each item (default filter):

    unanimous 3×A → A≻B · split 2×A 1×B → A≻B (margin 1, share 2/3) · mostly_tie 2 ties + 1×A → dropped (tie)
    level A, B, tie → dropped (no majority) · unsafe 3×A overall, 3×B harmless → kept, vetoed on harmless
    flagged 3×A, one "problematic prompt" → dropped · lonely 1×A → kept (min_judgments 1), dropped at 2
    decided 2×A 1×B, adjudicated B → B≻A · twins identical texts, 3×A → dropped (identical) · gold → never exported
    """
    with db.session() as s:
        u1, u2, u3 = (make_user(s, n) for n in ("ann1", "ann2", "ann3"))
        admin = make_user(s, "chief", role="admin")
        project = make_project(s, "exp", k=2, overlap=3, members=[u1, u2, u3])
        names = [
            "unanimous",
            "split",
            "mostly_tie",
            "level",
            "unsafe",
            "flagged",
            "lonely",
            "decided",
            "twins",
            "gold",
        ]
        items: dict[str, Item] = {}
        for name in names:
            texts = ["same answer", "same answer"] if name == "twins" else [f"{name} A", f"{name} B"]
            items[name] = make_item(s, project, f"prompt {name}", candidates=texts, external_id=name)
        items["gold"].is_gold = True
        a = {"overall": (PREF, 0, 1)}
        b = {"overall": (PREF, 1, 0)}
        tie = {"overall": ("tie", None, None)}
        plan: dict[str, list[tuple[Any, dict[str, Any]]]] = {
            "unanimous": [(u, a) for u in (u1, u2, u3)],
            "split": [(u1, a), (u2, a), (u3, b)],
            "mostly_tie": [(u1, tie), (u2, tie), (u3, a)],
            "level": [(u1, a), (u2, b), (u3, tie)],
            "unsafe": [(u, {**a, "harmless": (PREF, 1, 0)}) for u in (u1, u2, u3)],
            "flagged": [(u, a) for u in (u1, u2, u3)],
            "lonely": [(u1, a)],
            "decided": [(u1, a), (u2, a), (u3, b)],
            "twins": [(u, a) for u in (u1, u2, u3)],
            "gold": [(u, a) for u in (u1, u2, u3)],
        }
        for name, votes in plan.items():
            for user, verdicts in votes:
                reason = f"{user.username} on {name}"
                make_judgment(
                    s, items[name], user, verdicts, reason=reason, problematic=name == "flagged" and user is u1
                )
        decided = items["decided"]
        ids = {c.position: c.id for c in s.query(Candidate).filter(Candidate.item_id == decided.id)}
        s.add(
            Adjudication(
                project_id=project.id,
                item_id=decided.id,
                round=0,
                decided_by_id=admin.id,
                verdicts={"overall": {"kind": PREF, "chosen": ids[1], "rejected": ids[0]}},
                reason="B is right: A invents a date",
            )
        )
        return {
            "project_id": project.id,
            "slug": project.slug,
            "items": {n: i.id for n, i in items.items()},
            "users": {u.username: u.id for u in (u1, u2, u3, admin)},
        }


@pytest.fixture
def tokens(db: Database, settings: Settings, world: dict[str, Any]) -> dict[str, str]:
    """Export tokens of this project and of another, api tokens of the admin and of an annotator, a revoked one."""
    with db.session() as s:
        admin = s.get(User, world["users"]["chief"])
        annotator = s.get(User, world["users"]["ann1"])
        assert admin is not None and annotator is not None
        other = make_project(s, "other-exp")
        make_item(s, other, "elsewhere")
        out = {
            "export": create_api_token(
                s, user=admin, scope="export", settings=settings, project_id=world["project_id"]
            )[1],
            "other": create_api_token(s, user=admin, scope="export", settings=settings, project_id=other.id)[1],
            "admin_api": create_api_token(s, user=admin, scope="api", settings=settings)[1],
            "annotator_api": create_api_token(s, user=annotator, scope="api", settings=settings)[1],
        }
        revoked, plain = create_api_token(
            s, user=admin, scope="export", settings=settings, project_id=world["project_id"]
        )
        revoked.revoked_at = utcnow()
        out["revoked"] = plain
    return out
