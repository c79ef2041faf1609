"""The judge's suggestions where people judge: what the page and the API show in each mode, mapped to each
annotator's display order; whether a judgment records a suggestion in view; the feedback after a submit."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.annotation import judgments, queue
from app.annotation.schemas import VerdictIn
from app.annotation.suggestions import Suggested, agrees, feedback_rows, page_suggestions, prefilled_values
from app.auth.service import create_api_token
from app.config import Settings
from app.db import Database
from app.models import Assignment, Candidate, Item, Judgment, Project, Suggestion, User
from tests.annotation.helpers import prefer_first, project_and_user
from tests.factories import make_item, make_project, make_user
from tests.support.inert import assert_inert

HX = {"HX-Request": "true"}
DIMS = ["overall", "helpful", "harmless", "honest", "polite", "refusal"]


def candidate_ids(s: Session, item_id: int) -> list[int]:
    """The item's candidates of its current round, in canonical order."""
    item = s.get(Item, item_id)
    assert item is not None
    rows = s.scalars(
        select(Candidate.id)
        .where(Candidate.item_id == item_id, Candidate.round == item.round)
        .order_by(Candidate.position)
    )
    return list(rows)


def suggest(s: Session, item: Item, dimension: str, kind: str, **fields: Any) -> Suggestion:
    """A judge's suggestion written directly (the judge job is tested elsewhere)."""
    row = Suggestion(
        project_id=item.project_id,
        item_id=item.id,
        round=fields.pop("round", item.round),
        dimension=dimension,
        judge=fields.pop("judge", "tiny@http://judge"),
        model="tiny",
        base_url="http://judge",
        prompt_version="v1",
        kind=kind,
        chosen_candidate_id=fields.pop("chosen", None),
        rejected_candidate_id=fields.pop("rejected", None),
        **fields,
    )
    s.add(row)
    s.flush()
    return row


def _setup(db: Database, mode: str, *, k: int = 2, **project_fields: Any) -> dict[str, int]:
    with db.session() as s:
        me = make_user(s, "ann")
        project = make_project(s, "p", k=k, overlap=1, members=[me], suggestions=mode, **project_fields)
        item = make_item(s, project)
        first, last = candidate_ids(s, item.id)[0], candidate_ids(s, item.id)[-1]
        suggest(s, item, "overall", "preference", chosen=last, rejected=first, confidence=0.82, rationale="B cites")
        suggest(s, item, "helpful", "tie", confidence=0.6)
        suggest(s, item, "honest", "unsure", orders=[{"shown": [first, last], "answer": "A"}])
        s.commit()
        return {"project": project.id, "me": me.id, "item": item.id, "first": first, "last": last}


def _submit(s: Session, ids: dict[str, int]) -> Judgment:
    project, me = project_and_user(s, ids)
    task = queue.assign_next_item(s, project=project, annotator=me)
    assert task is not None
    judgment, created = judgments.submit_judgment(
        s,
        project=project,
        annotator=me,
        assignment_id=task.assignment.id,
        submit_key="key-00001",
        data=prefer_first(task, project),
    )
    assert created
    return judgment


# --- whether a suggestion was in view: the server decides, from the mode at submit time ---------------------------


@pytest.mark.parametrize(("mode", "shown"), [("shown", True), ("hidden", False), ("after", False)])
def test_a_judgment_records_whether_a_suggestion_was_in_view(db: Database, mode: str, shown: bool) -> None:
    ids = _setup(db, mode)
    with db.session() as s:
        judgment = _submit(s, ids)
        s.commit()
    with db.session(write=False) as s:
        assert s.scalar(select(Judgment.suggestion_shown).where(Judgment.id == judgment.id)) is shown


def test_only_unsure_or_stale_suggestions_count_as_none_in_view(db: Database) -> None:
    """ "Unsure" suggests nothing, and a suggestion on an earlier candidate round is not the page's."""
    with db.session() as s:
        me = make_user(s, "ann")
        project = make_project(s, "p", k=2, overlap=1, members=[me], suggestions="shown")
        item = make_item(s, project)
        a, b = candidate_ids(s, item.id)
        suggest(s, item, "overall", "unsure")
        suggest(s, item, "helpful", "preference", chosen=a, rejected=b, round=item.round + 1)
        s.commit()
        ids = {"project": project.id, "me": me.id}
    with db.session() as s:
        judgment = _submit(s, ids)
        s.commit()
        assert judgment.suggestion_shown is False


def test_the_primary_judge_counts_where_two_judges_answered(db: Database) -> None:
    with db.session() as s:
        me = make_user(s, "ann")
        judges = {"judges": [{"model": "big", "base_url": "http://a"}, {"model": "tiny", "base_url": "http://judge"}]}
        project = make_project(s, "p", k=2, overlap=1, members=[me], suggestions="shown", judge=judges)
        item = make_item(s, project)
        a, b = candidate_ids(s, item.id)
        suggest(s, item, "overall", "preference", chosen=a, rejected=b)  # the second judge's, stored first
        suggest(s, item, "overall", "unsure", judge="big@http://a")
        s.commit()
        ids = {"project": project.id, "me": me.id}
    with db.session() as s:
        assert _submit(s, ids).suggestion_shown is False  # the primary judge was unsure: nothing was suggested


# --- mapping canonical suggestions to the annotator's letters ---------------------------------------------------


def _sug(verdict: VerdictIn, confidence: float | None = 0.9) -> Suggested:
    return Suggested(verdict, confidence, "")


def test_k2_suggestions_follow_the_display_order() -> None:
    found = {
        "overall": _sug(VerdictIn(kind="preference", chosen=11, rejected=10)),
        "helpful": _sug(VerdictIn(kind="tie"), None),
    }
    shown = page_suggestions(found, display_order=[11, 10], ranks=False)  # candidate 11 is shown as A
    assert shown["overall"]["text"] == "A" and shown["overall"]["confidence"] == 90
    assert prefilled_values(shown) == {"overall": "A", "helpful": "tie"}
    assert prefilled_values(page_suggestions(found, display_order=[10, 11], ranks=False))["overall"] == "B"


def test_k3_rankings_give_best_and_worst_or_the_typed_order() -> None:
    ranking = _sug(VerdictIn(kind="ranking", ranking=[[12], [10], [11]]))
    tied_top = _sug(VerdictIn(kind="ranking", ranking=[[10, 12], [11]]))
    preference = _sug(VerdictIn(kind="preference", chosen=10, rejected=11))
    order = [11, 12, 10]  # A = 11, B = 12, C = 10
    best_worst = page_suggestions(
        {"overall": ranking, "helpful": tied_top, "honest": preference}, display_order=order, ranks=False
    )
    assert prefilled_values(best_worst) == {
        "overall": "rank", "overall__best": "B", "overall__worst": "A",
        "honest": "rank", "honest__best": "C", "honest__worst": "A",
    }  # fmt: skip
    assert best_worst["helpful"]["fields"] == {} and best_worst["helpful"]["text"] == "B = C > A"
    ranked = page_suggestions({"overall": ranking, "honest": preference}, display_order=order, ranks=True)
    assert prefilled_values(ranked) == {"overall": "rank", "overall__rank": "B>C>A"}  # a best and worst is no order


@pytest.mark.parametrize(
    ("mine", "judge", "expected"),
    [
        (VerdictIn(kind="preference", chosen=1, rejected=2), VerdictIn(kind="preference", chosen=1, rejected=2), True),
        (VerdictIn(kind="preference", chosen=2, rejected=1), VerdictIn(kind="preference", chosen=1, rejected=2), False),
        (
            VerdictIn(kind="preference", chosen=1, rejected=2, strength=3),
            VerdictIn(kind="ranking", ranking=[[1], [2]]),
            True,
        ),
        (VerdictIn(kind="tie"), VerdictIn(kind="ranking", ranking=[[1, 2]]), True),
        (VerdictIn(kind="tie"), VerdictIn(kind="preference", chosen=1, rejected=2), False),
        (VerdictIn(kind="na"), VerdictIn(kind="tie"), None),
        (VerdictIn(kind="preference", chosen=3, rejected=2), VerdictIn(kind="ranking", ranking=[[3], [1], [2]]), True),
        (
            VerdictIn(kind="ranking", ranking=[[3], [1], [2]], much=[0]),
            VerdictIn(kind="ranking", ranking=[[3], [1], [2]]),
            True,
        ),
        (VerdictIn(kind="ranking", ranking=[[3], [2], [1]]), VerdictIn(kind="ranking", ranking=[[3], [1], [2]]), False),
    ],
)
def test_agreement_with_the_judge(mine: VerdictIn, judge: VerdictIn, expected: bool | None) -> None:
    assert agrees(mine, judge) is expected


def test_feedback_rows_name_both_answers_in_the_annotators_letters() -> None:
    found = {"overall": _sug(VerdictIn(kind="preference", chosen=10, rejected=11), 0.75)}
    mine = {"overall": VerdictIn(kind="preference", chosen=11, rejected=10), "helpful": VerdictIn(kind="tie")}
    dims = [{"key": "overall", "label": "Overall"}, {"key": "helpful", "label": "Helpful"}]
    rows = feedback_rows(found, mine, display_order=[11, 10], dimensions=dims)
    assert rows == [{"label": "Overall", "judge": "B", "confidence": 75, "rationale": "", "mine": "A", "agrees": False}]


# --- the JSON API ------------------------------------------------------------------------------------------------


def _token(db: Database, settings: Settings, ids: dict[str, int]) -> dict[str, str]:
    with db.session() as s:
        user = s.get(User, ids["me"])
        assert user is not None
        return {"Authorization": f"Bearer {create_api_token(s, user=user, scope='api', settings=settings)[1]}"}


def _api_round(client: TestClient, h: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    nxt = client.post("/api/v1/projects/p/next", headers=h)
    assert nxt.status_code == 200, nxt.text
    assignment = nxt.json()["assignment"]
    first, last = assignment["candidates"][0]["id"], assignment["candidates"][-1]["id"]
    body = {
        "assignment_id": assignment["assignment_id"],
        "submit_key": "api-key-0001",
        "verdicts": {d: {"kind": "preference", "chosen": first, "rejected": last} for d in DIMS},
    }
    sent = client.post("/api/v1/projects/p/judgments", json=body, headers=h)
    assert sent.status_code == 201, sent.text
    return assignment, sent.json()


def test_api_shows_suggestions_with_the_lease_in_mode_shown(
    client: TestClient, db: Database, settings: Settings
) -> None:
    ids = _setup(db, "shown")
    assignment, judgment = _api_round(client, _token(db, settings, ids))
    overall = {"kind": "preference", "chosen": ids["last"], "rejected": ids["first"], "ranking": None}
    assert assignment["suggestions"]["overall"] == {**overall, "confidence": 0.82, "rationale": "B cites"}
    assert sorted(assignment["suggestions"]) == ["helpful", "overall"]  # "unsure" suggests nothing
    assert judgment["suggestion_shown"] is True and judgment["suggestions"] is None


def test_api_gives_suggestions_with_the_submit_answer_in_mode_after(
    client: TestClient, db: Database, settings: Settings
) -> None:
    ids = _setup(db, "after")
    h = _token(db, settings, ids)
    assignment, judgment = _api_round(client, h)
    assert assignment["suggestions"] is None
    assert judgment["suggestion_shown"] is False
    assert judgment["suggestions"]["overall"]["chosen"] == ids["last"]
    assert judgment["suggestions"]["helpful"]["kind"] == "tie"
    again = client.get(f"/api/v1/projects/p/judgments/{judgment['id']}", headers=h).json()
    assert again["suggestions"] is None  # only the submit's answer carries them


def test_api_hides_suggestions_in_mode_hidden(client: TestClient, db: Database, settings: Settings) -> None:
    ids = _setup(db, "hidden")
    assignment, judgment = _api_round(client, _token(db, settings, ids))
    assert assignment["suggestions"] is None and judgment["suggestions"] is None
    assert judgment["suggestion_shown"] is False


# --- the page over HTTP ------------------------------------------------------------------------------------------


def _page(client: TestClient) -> str:
    r = client.post("/projects/p/annotate/next", headers=HX)
    assert r.status_code == 200, r.text
    return r.text


def _assignment_id(html: str) -> int:
    match = re.search(r'data-assignment="(\d+)"', html)
    assert match
    return int(match.group(1))


def _form(letter: str) -> dict[str, str]:
    return {**dict.fromkeys(DIMS, letter), "submit_key": "pagekey-0001"}


def _display(db: Database, assignment_id: int) -> list[int]:
    with db.session(write=False) as s:
        assignment = s.get(Assignment, assignment_id)
        assert assignment is not None
        return list(assignment.display_order)


def test_page_preselects_the_suggestion_in_the_annotators_letters(
    client: TestClient, login_as: Callable[[User], str], db: Database
) -> None:
    ids = _setup(db, "shown")
    with db.session() as s:
        item = s.get(Item, ids["item"])
        assert item is not None
        s.execute(
            update(Suggestion)
            .where(Suggestion.dimension == "overall")
            .values(rationale="<img src=x onerror=alert(1)> **B**")
        )
        s.commit()
    with db.session(write=False) as s:
        user = s.get(User, ids["me"])
    assert user is not None
    login_as(user)
    html = _page(client)
    letter = "AB"[_display(db, _assignment_id(html)).index(ids["last"])]
    assert re.search(rf'class="choice suggested"><input type="radio" name="overall" value="{letter}" checked', html)
    assert re.search(r'class="choice suggested"><input type="radio" name="helpful" value="tie" checked', html)
    assert f'data-suggestion="{letter}"' in html and "82% sure" in html
    assert 'name="honest" value="tie" checked' not in html  # unsure: nothing pre-selected
    assert "<strong>B</strong>" in html and "<img" not in html  # markdown, with the tag left as text
    assert_inert(html)


def test_page_in_mode_hidden_has_no_trace_of_suggestions(
    client: TestClient, login_as: Callable[[User], str], db: Database
) -> None:
    ids = _setup(db, "hidden")
    with db.session(write=False) as s:
        user = s.get(User, ids["me"])
    assert user is not None
    login_as(user)
    html = _page(client)
    assert "suggest" not in html and "checked" not in html
    sent = client.post(f"/projects/p/annotate/{_assignment_id(html)}", data=_form("A"), headers=HX)
    assert sent.status_code == 200 and "suggestion-feedback" not in sent.text


def test_page_in_mode_after_shows_feedback_once_submitted(
    client: TestClient, login_as: Callable[[User], str], db: Database
) -> None:
    ids = _setup(db, "after")
    with db.session() as s:
        make_item(s, s.get(Project, ids["project"]))  # type: ignore[arg-type]
        user = s.get(User, ids["me"])
        s.commit()
    assert user is not None
    login_as(user)
    html = _page(client)
    assert "suggest" not in html and "checked" not in html
    assignment_id = _assignment_id(html)
    order = _display(db, assignment_id)
    sent = client.post(f"/projects/p/annotate/{assignment_id}", data=_form("A"), headers=HX)
    assert sent.status_code == 200, sent.text
    feedback = sent.text.split('id="suggestion-feedback"', 1)[1].split("</section>", 1)[0]
    judge_letter = "AB"[order.index(ids["last"])]
    expected = "same" if judge_letter == "A" else "differs"
    overall = re.search(r'<th scope="row">Overall</th>\s*<td class="mine">(\w)</td>\s*<td class="judge">(\w)', feedback)
    assert overall and overall.groups() == ("A", judge_letter)
    assert expected in feedback and "Helpful" in feedback and "Honest" not in feedback
    assert _assignment_id(sent.text) != assignment_id  # the next item is below the feedback


def test_plain_submit_in_mode_after_lands_on_the_feedback(
    client: TestClient, login_as: Callable[[User], str], db: Database
) -> None:
    ids = _setup(db, "after")
    with db.session() as s:
        user, other = s.get(User, ids["me"]), make_user(s, "other")
        s.commit()
    assert user is not None
    login_as(user)
    html = _page(client)
    sent = client.post(f"/projects/p/annotate/{_assignment_id(html)}", data=_form("B"), follow_redirects=False)
    assert sent.status_code == 303
    with db.session(write=False) as s:
        judgment_id = s.scalar(select(Judgment.id))
    assert sent.headers["location"] == f"/projects/p/annotate?judged={judgment_id}"
    assert "suggestion-feedback" in client.get(sent.headers["location"]).text
    # Someone else's judgment gives no feedback, and a nonsense id is a 422, not a server error.
    client.cookies.clear()
    with db.session() as s:
        project = s.get(Project, ids["project"])
        assert project is not None and other is not None
        from app.models import ProjectMember

        s.add(ProjectMember(project_id=project.id, user_id=other.id))
        s.commit()
    login_as(other)
    assert "suggestion-feedback" not in client.get(f"/projects/p/annotate?judged={judgment_id}").text
    assert client.get("/projects/p/annotate?judged=99999999999").status_code == 422
