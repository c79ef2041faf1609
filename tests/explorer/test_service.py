"""The explorer's query on both backends: text search (words and substrings, prompts and answers), every filter,
sorts with keyset pages, bulk actions and an item's history."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db import Database
from app.explorer import bulk
from app.explorer.history import history
from app.explorer.query import explore
from app.explorer.schemas import Filters
from app.items import service as items
from app.kit.errors import Invalid
from app.models import Adjudication, Assignment, Candidate, Item, Project, User, utcnow
from tests.factories import make_item, make_judgment, make_project, make_user

PREF = "preference"


def _ids(session: Session, project: Project, **filters: Any) -> list[int]:
    return [r.id for r in explore(session, project=project, filters=Filters(**filters), limit=500).items]


@pytest.fixture
def world(db: Database) -> Any:
    with db.session() as s:
        admin = make_user(s, "boss", role="admin")
        ann = [make_user(s, f"ann{i}") for i in range(3)]
        project = make_project(s, "explore", k=2, members=ann)
        other = make_project(s, "elsewhere", k=2)
        make_item(s, other, "The walrus in another project", candidates=["walrus", "walrus too"])
        walrus = make_item(s, project, "Tell me about the walrus", candidates=["Tusks.", "Whiskers."], external_id="w")
        penguin = make_item(s, project, "Penguins of Antarctica", candidates=["They waddle.", "Emperor penguins dive."])
        chat = make_item(
            s, project, [{"role": "user", "content": "写一首关于大海的诗"}], candidates=["大海啊大海", "浪花"]
        )
        pending = make_item(s, project, "No answers yet, about rivers", candidates=[])
        # walrus: split 1–1–(tie); penguin: unanimous 3–0, one flagged; chat: skipped once.
        make_judgment(s, walrus, ann[0], {"overall": (PREF, 0, 1)}, reason="tusks win")
        make_judgment(s, walrus, ann[1], {"overall": (PREF, 1, 0)}, problematic=True)
        for a in ann:
            make_judgment(s, penguin, a, {"overall": (PREF, 1, 0)}, all_bad=a is ann[2])
        s.add(
            Assignment(
                project_id=project.id,
                item_id=chat.id,
                annotator_id=ann[2].id,
                status="skipped",
                display_order=[],
                lease_expires_at=utcnow(),
                skip_reason="I cannot read Chinese",
            )
        )
        s.get(Candidate, s.scalar(select(Candidate.id).where(Candidate.item_id == penguin.id))).model = "other-model"
        s.commit()
        return {
            "project": project.id,
            "admin": admin.id,
            "walrus": walrus.id,
            "penguin": penguin.id,
            "chat": chat.id,
            "pending": pending.id,
        }


def _project(s: Session, world: dict[str, int]) -> Project:
    return s.get(Project, world["project"])  # type: ignore[return-value]


def test_text_search_finds_prompts_and_answers_in_words_and_substrings(db: Database, world: dict[str, int]) -> None:
    with db.session() as s:
        p = _project(s, world)
        assert _ids(s, p, q="walrus") == [world["walrus"]]  # the other project's walrus stays out
        assert _ids(s, p, q="whiskers") == [world["walrus"]]  # an answer's word, any case
        assert _ids(s, p, q="emperor div") == []  # words are whole words: "div" ≠ "dive"
        assert _ids(s, p, q="penguins div", match="substring") == [world["penguin"]]
        assert _ids(s, p, q="emperor tusks") == []  # every word in one text
        assert _ids(s, p, q="penguins dive.") == [world["penguin"]]  # every word, prompt or answer
        assert _ids(s, p, q="waddl", match="substring") == [world["penguin"]]
        assert _ids(s, p, q="大海", match="substring") == [world["chat"]]  # two characters: below a trigram
        assert _ids(s, p, q="关于大海", match="substring") == [world["chat"]]
        assert _ids(s, p, q='"quoted" OR walrus') == []  # FTS syntax is text, not operators
        assert _ids(s, p, q="100%", match="substring") == []


def test_every_filter_narrows(db: Database, world: dict[str, int]) -> None:
    with db.session() as s:
        p = _project(s, world)
        w, pg, c, pe = world["walrus"], world["penguin"], world["chat"], world["pending"]
        assert _ids(s, p) == [w, pg, c, pe]
        assert _ids(s, p, status="pending") == [pe]
        assert _ids(s, p, flag="any") == [w, pg]
        assert _ids(s, p, flag="all_bad") == [pg]
        assert _ids(s, p, flag="problematic") == [w]
        assert _ids(s, p, skipped=True) == [c]
        assert _ids(s, p, skipped=False) == [w, pg, pe]
        assert _ids(s, p, skip_reason="chinese") == [c] or _ids(s, p, skip_reason="Chinese") == [c]
        assert _ids(s, p, annotator="ann2") == [pg]
        assert _ids(s, p, annotator="nobody") == []
        assert _ids(s, p, model="other-model") == [pg]
        assert _ids(s, p, split=True) == [w]
        assert _ids(s, p, margin_max=0.5) == [w]
        assert _ids(s, p, round=0, status="ready") == [w, pg, c]
        assert _ids(s, p, round=1) == []
        items.set_gold(s, project=p, item_id=c, expected={"overall": {"kind": "tie"}})
        s.execute(Item.__table__.update().where(Item.id == pe).values(excluded_from_export=True))
        assert _ids(s, p, gold=True) == [c]
        assert _ids(s, p, excluded=True) == [pe]
        assert _ids(s, p, excluded=False, gold=False) == [w, pg]


@pytest.mark.parametrize("sort", ["id", "newest", "judgments", "margin"])
def test_keyset_pages_walk_every_match_once_in_order(db: Database, sort: str) -> None:
    with db.session() as s:
        anns = [make_user(s, f"k{i}") for i in range(3)]
        p = make_project(s, "keyset", k=2, members=anns)
        made = [make_item(s, p, f"keyset prompt {i}") for i in range(13)]
        for n, item in enumerate(made):  # judgment counts 0–3, margins 1, 1/3 and 0 — many ties in the sort keys
            for a in anns[: n % 4]:
                make_judgment(s, item, a, {"overall": (PREF, (n + a.id) % 2, 1 - (n + a.id) % 2)})
        s.commit()
        whole = [r.id for r in explore(s, project=p, filters=Filters(sort=sort), limit=100).items]
        assert sorted(whole) == sorted(i.id for i in made)
        walked: list[int] = []
        after = None
        for _ in range(20):
            page = explore(s, project=p, filters=Filters(sort=sort, after=after), limit=3)
            walked += [r.id for r in page.items]
            after = page.next
            if after is None:
                break
        assert walked == whole
        if sort == "judgments":
            counts = [s.get(Item, i).judgment_count for i in whole]  # type: ignore[union-attr]
            assert counts == sorted(counts, reverse=True)


def test_bulk_actions(db: Database, world: dict[str, int]) -> None:
    with db.session() as s:
        p = _project(s, world)
        admin = s.get(User, world["admin"])
        assert admin is not None
        w, pg, c = world["walrus"], world["penguin"], world["chat"]
        out = bulk.apply(s, project=p, action="exclude", item_ids=[w, pg], admin=admin)
        assert out.changed == 2
        assert _ids(s, p, excluded=True) == [w, pg]
        assert bulk.apply(s, project=p, action="include", item_ids=[w], admin=admin).changed == 1
        assert _ids(s, p, excluded=True) == [pg]
        # Gold from the majority: the penguin's unanimous answer; the split walrus and unjudged chat are skipped.
        out = bulk.apply(s, project=p, action="gold", item_ids=[w, pg, c], admin=admin)
        assert (out.changed, out.skipped) == (1, [w, c])
        penguin = s.get(Item, pg)
        assert penguin is not None and penguin.is_gold
        assert penguin.gold is not None and penguin.gold["overall"] == {"kind": PREF, "chosen": 1, "rejected": 0}
        assert penguin.gold["helpful"] == {"kind": "either"}  # no votes on it: any answer passes
        assert bulk.apply(s, project=p, action="adjudicate", item_ids=[w], admin=admin).changed == 1
        assert _ids(s, p, review=True) == [w]
        with pytest.raises(Invalid):  # another project's item
            bulk.apply(s, project=p, action="exclude", item_ids=[w, 1], admin=admin)
        with pytest.raises(Invalid):  # generation is not configured for this project
            bulk.apply(s, project=p, action="regenerate", item_ids=[w], admin=admin)


def test_the_history_shows_every_judgment_skip_and_decision(db: Database, world: dict[str, int]) -> None:
    with db.session() as s:
        p = _project(s, world)
        walrus, cands = items.get_item(s, project=p, item_id=world["walrus"])
        s.add(
            Adjudication(
                project_id=p.id,
                item_id=walrus.id,
                round=0,
                decided_by_id=world["admin"],
                reason="tusks matter",
                verdicts={"overall": {"kind": PREF, "chosen": cands[0].id, "rejected": cands[1].id}},
            )
        )
        s.flush()
        h = history(s, item=walrus, candidates=cands)
        assert [(j.annotator, j.votes["overall"], j.reason, j.problematic) for j in h.judgments] == [
            ("ann0", "1 ≻ 2", "tusks win", False),
            ("ann1", "2 ≻ 1", "", True),
        ]
        assert [(d.by, d.votes["overall"], d.reason) for d in h.decisions] == [("boss", "1 ≻ 2", "tusks matter")]
        chat, chat_cands = items.get_item(s, project=p, item_id=world["chat"])
        assert [(k.annotator, k.reason) for k in history(s, item=chat, candidates=chat_cands).skips] == [
            ("ann2", "I cannot read Chinese")
        ]


@pytest.mark.parametrize("sort", ["id", "newest"])
def test_a_text_search_in_id_order_reads_windows_of_ids(db: Database, sort: str, monkeypatch: Any) -> None:
    from app.explorer import query

    monkeypatch.setattr(query, "FIRST_WINDOW", 2)  # windows of 2, 16, 128 ids: pages cross them
    with db.session() as s:
        p = make_project(s, "windows", k=2)
        made = [make_item(s, p, f"window prompt {i}" + (" heron" if i % 3 else "")) for i in range(40)]
        s.commit()
        expected = [i.id for i in made if i.prompt.endswith("heron")]
        expected = expected if sort == "id" else expected[::-1]
        walked: list[int] = []
        after = None
        for _ in range(40):
            page = explore(s, project=p, filters=Filters(q="heron", sort=sort, after=after), limit=4)
            walked += [r.id for r in page.items]
            after = page.next
            if after is None:
                break
        assert walked == expected
