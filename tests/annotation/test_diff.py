"""Differences between nearly identical candidates: the diff itself and the annotation page showing it."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from app.annotation.diff import MAX_CHARS, near_duplicates, tokens
from app.db import Database
from app.models import User
from tests.factories import make_item, make_project, make_user

HX = {"HX-Request": "true"}


def _rebuild(segments: list, keep: str) -> str:  # type: ignore[type-arg]
    return "".join(s.text for s in segments if s.op in ("same", keep))


def test_a_one_word_change_is_found_and_both_texts_rebuild() -> None:
    a = "The capital of France is Paris, a city on the Seine with about two million people."
    b = "The capital of France is Paris, a city on the Loire with about two million people."
    (pair,) = near_duplicates([a, b])
    assert (pair.first, pair.second) == (0, 1)
    assert 0.75 <= pair.similarity < 1
    assert [s.text for s in pair.segments if s.op == "del"] == ["Seine"]
    assert [s.text for s in pair.segments if s.op == "ins"] == ["Loire"]
    assert _rebuild(pair.segments, "del") == a
    assert _rebuild(pair.segments, "ins") == b


def test_different_answers_get_no_diff_and_pairs_are_ordered_by_similarity() -> None:
    base = "one two three four five six seven eight nine ten"
    texts = [
        base,
        "Something else entirely, about cooking eggs.",
        base.replace("five", "5"),
        base.replace("five", "5").replace("nine", "9"),
    ]
    pairs = near_duplicates(texts)
    assert {(p.first, p.second) for p in pairs} == {(0, 2), (0, 3), (2, 3)}
    assert [p.similarity for p in pairs] == sorted((p.similarity for p in pairs), reverse=True)
    assert all(1 not in (p.first, p.second) for p in pairs)


def test_chinese_is_compared_character_by_character() -> None:
    assert tokens("机器学习 is fun") == ["机", "器", "学", "习", " ", "is", " ", "fun"]
    (pair,) = near_duplicates(["机器学习是人工智能的一个分支。", "机器学习是人工智能的一个领域。"])
    assert [s.text for s in pair.segments if s.op == "del"] == ["分支"]
    assert [s.text for s in pair.segments if s.op == "ins"] == ["领域"]


def test_identical_pairs_are_marked_and_overlong_texts_skipped() -> None:
    (pair,) = near_duplicates(["same words here", "same words here"])
    assert pair.identical and pair.similarity == 1
    long = "word " * (MAX_CHARS // 5 + 10)
    assert near_duplicates([long, long + "x"]) == []


def test_the_annotation_page_shows_the_differences_escaped(
    client: TestClient, db: Database, login_as: Callable[[User], str]
) -> None:
    with db.session() as s:
        user = make_user(s, "diana")
        project = make_project(s, "near", k=2, overlap=1, members=[user])
        text = "Boil the egg for <b>seven</b> minutes, then cool it in cold water and peel it under the tap."
        make_item(s, project, "How do I boil an egg?", candidates=[text, text.replace("seven", "<script>nine")])
    login_as(user)
    html = client.post("/projects/near/annotate/next", headers=HX).text
    assert 'id="diff"' in html and "Nearly the same answers" in html
    assert "<script>nine" not in html  # model output stays text inside the diff
    assert "&lt;script&gt;nine" in html
    assert "<del>" in html and "<ins>" in html


def test_no_diff_block_when_answers_differ(client: TestClient, db: Database, login_as: Callable[[User], str]) -> None:
    with db.session() as s:
        user = make_user(s, "dora")
        project = make_project(s, "far", k=2, overlap=1, members=[user])
        make_item(s, project, "Hello?", candidates=["Hi there, how can I help?", "Sorry, I cannot do that today."])
    login_as(user)
    html = client.post("/projects/far/annotate/next", headers=HX).text
    assert 'data-item="' in html
    assert 'id="diff"' not in html
