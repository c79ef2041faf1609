"""The annotation page's forms read into judgments: letters in the annotator's display order become candidate ids."""

from __future__ import annotations

from typing import Any

import pytest

from app.annotation.schemas import EditForm, JudgmentForm, SkipForm, SubmitForm, VerdictIn, letters_from_verdicts
from app.kit.errors import Invalid
from app.models import Project

PAIR = [11, 22]  # display order: A = 11, B = 22
FOUR = [40, 10, 30, 20]  # A = 40, B = 10, C = 30, D = 20
SAME = "the best and the worst answer must be different"


def _project(*dimensions: str) -> Project:
    return Project(dimensions=[{"key": key, "label": key} for key in dimensions])


def _verdicts(fields: dict[str, str], order: list[int], *dimensions: str) -> dict[str, VerdictIn]:
    return JudgmentForm.model_validate(fields).verdicts(project=_project(*dimensions), display_order=order)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"overall": "A"}, {"kind": "preference", "chosen": 11, "rejected": 22}),
        ({"overall": "B"}, {"kind": "preference", "chosen": 22, "rejected": 11}),
        ({"overall": " B "}, {"kind": "preference", "chosen": 22, "rejected": 11}),
        ({"overall": "tie"}, {"kind": "tie", "chosen": None, "rejected": None}),
        ({"overall": "na"}, {"kind": "na", "chosen": None, "rejected": None}),
    ],
)
def test_two_candidates_are_one_letter_or_tie_or_na(fields: dict[str, str], expected: dict[str, Any]) -> None:
    assert _verdicts(fields, PAIR)["overall"].model_dump(include={"kind", "chosen", "rejected"}) == expected


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"overall": "", "overall__best": "A", "overall__worst": "D"}, (40, 20)),
        ({"overall": "rank", "overall__best": "C", "overall__worst": "B"}, (30, 10)),
        ({"overall__best": "B", "overall__worst": "A"}, (10, 40)),  # no field at all reads as empty
    ],
)
def test_more_candidates_are_the_best_and_the_worst(fields: dict[str, str], expected: tuple[int, int]) -> None:
    verdict = _verdicts(fields, FOUR)["overall"]
    assert (verdict.kind, verdict.chosen, verdict.rejected) == ("preference", *expected)


@pytest.mark.parametrize(
    ("fields", "order", "message"),
    [
        ({}, PAIR, "overall: no answer given"),
        ({"overall": "C"}, PAIR, "overall: no answer given"),  # no third candidate shown
        ({"overall": "rank"}, PAIR, "overall: no answer given"),
        ({"overall": "A"}, FOUR, "overall: no answer given"),  # one letter is not enough for four
        ({}, FOUR, "overall: no answer given"),
        ({"overall__best": "A"}, FOUR, "overall: pick both the best and the worst answer"),
        ({"overall__worst": "E"}, FOUR, "overall: pick both the best and the worst answer"),
        ({"overall__best": "B", "overall__worst": "B"}, FOUR, f"overall: {SAME}"),
    ],
)
def test_an_unanswered_dimension_is_named(fields: dict[str, str], order: list[int], message: str) -> None:
    with pytest.raises(Invalid) as raised:
        _verdicts(fields, order)
    assert raised.value.detail == message


def test_every_dimension_is_read_overall_first() -> None:
    verdicts = _verdicts({"overall": "A", "style": "tie", "safety": "B"}, PAIR, "style", "safety")
    assert list(verdicts) == ["overall", "style", "safety"]
    with pytest.raises(Invalid, match="safety: no answer given"):
        _verdicts({"overall": "A", "style": "tie"}, PAIR, "style", "safety")


@pytest.mark.parametrize(
    ("posted", "seconds"),
    [
        ({}, None),
        ({"seconds": ""}, None),
        ({"seconds": "soon"}, None),
        ({"seconds": "12.5"}, 12.5),
        ({"seconds": "-3"}, 0.0),
        ({"seconds": "1e9"}, 86_400.0),
        ({"seconds": "nan"}, 0.0),
    ],
)
def test_seconds_on_task_are_clamped_to_a_day_and_unreadable_ones_left_out(
    posted: dict[str, str], seconds: float | None
) -> None:
    assert JudgmentForm.model_validate(posted).seconds == seconds


def test_the_judgment_carries_reason_and_flags_as_the_page_posts_them() -> None:
    form = SubmitForm.model_validate(
        {"overall": "B", "reason": " long enough ", "all_bad": "1", "problematic": "on", "submit_key": "k-1"}
    )
    judgment = form.judgment(project=_project(), display_order=PAIR)
    assert (judgment.reason, judgment.all_bad, judgment.problematic) == (" long enough ", True, False)
    assert judgment.verdicts["overall"].chosen == 22 and form.submit_key == "k-1"
    assert SubmitForm.model_validate({}).submit_key == ""  # the router makes one up
    unchecked = JudgmentForm.model_validate({"overall": "A"}).judgment(project=_project(), display_order=PAIR)
    assert (unchecked.reason, unchecked.all_bad, unchecked.problematic, unchecked.seconds) == ("", False, False, None)


def test_a_reason_past_ten_thousand_characters_is_refused() -> None:
    form = JudgmentForm.model_validate({"overall": "A", "reason": "x" * 10_001})
    with pytest.raises(Invalid, match="The reason is too long"):
        form.judgment(project=_project(), display_order=PAIR)
    assert JudgmentForm.model_validate({"overall": "A", "reason": "x" * 10_000}).judgment(
        project=_project(), display_order=PAIR
    )


@pytest.mark.parametrize(("posted", "version"), [({}, None), ({"version": "x"}, None), ({"version": " 3 "}, 3)])
def test_an_edit_reads_its_version_when_it_can(posted: dict[str, str], version: int | None) -> None:
    assert EditForm.model_validate(posted).version == version


def test_a_skip_reason_is_empty_when_not_posted() -> None:
    assert SkipForm.model_validate({}).skip_reason == ""
    assert SkipForm.model_validate({"skip_reason": "broken prompt"}).skip_reason == "broken prompt"


@pytest.mark.parametrize(
    ("fields", "order", "dimensions"),
    [
        ({"overall": "B", "style": "tie", "safety": "na"}, PAIR, ("style", "safety")),
        ({"overall": "rank", "overall__best": "C", "overall__worst": "A", "style": "tie"}, FOUR, ("style",)),
    ],
)
def test_reopening_a_judgment_fills_the_form_with_what_was_posted(
    fields: dict[str, str], order: list[int], dimensions: tuple[str, ...]
) -> None:
    verdicts = _verdicts(fields, order, *dimensions)
    assert letters_from_verdicts(verdicts, order) == fields


# --- rankings (k ≥ 3, ranking_mode "rank") and strength (k = 2) -------------------------------------------------


def _ranking_project(*dimensions: str) -> Project:
    project = _project(*dimensions)
    project.ranking_mode, project.strength = "rank", False
    return project


def _strength_project(*dimensions: str) -> Project:
    project = _project(*dimensions)
    project.ranking_mode, project.strength = "best_worst", True
    return project


def _read(project: Project, fields: dict[str, str], order: list[int]) -> dict[str, VerdictIn]:
    return JudgmentForm.model_validate(fields).verdicts(project=project, display_order=order)


@pytest.mark.parametrize(
    ("typed", "ranking", "much"),
    [  # FOUR: A = 40, B = 10, C = 30, D = 20
        ("CABD", [[30], [40], [10], [20]], []),
        ("CA=BD", [[30], [10, 40], [20]], []),
        ("C>>AB=D", [[30], [40], [10, 20]], [0]),
        ("c > a = b >> d", [[30], [10, 40], [20]], [1]),
        ("C≫A=B=D", [[30], [10, 20, 40]], [0]),
        ("A=B=C=D", [[10, 20, 30, 40]], []),
        ("D>>C>>B>>A", [[20], [30], [10], [40]], [0, 1, 2]),
    ],
)
def test_a_typed_order_is_a_canonical_ranking(typed: str, ranking: list[list[int]], much: list[int]) -> None:
    verdict = _read(_ranking_project(), {"overall__rank": typed}, FOUR)["overall"]
    assert (verdict.kind, verdict.ranking, verdict.much) == ("ranking", ranking, much)
    assert (verdict.chosen, verdict.rejected, verdict.strength) == (None, None, None)


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("", "overall: no answer given"),
        ("CAB", "overall: missing: D"),
        ("CABB", "overall: B is named twice"),
        ("CABE", "overall: “E” is not a candidate letter (use A, B, C, D)"),
        ("=CABD", "overall: “=” must stand between two letters"),
        ("CABD>>", "overall: “>>” must stand between two letters"),
        ("C=>ABD", "overall: “>” must stand between two letters"),
        ("C>>>ABD", "overall: “>” must stand between two letters"),
    ],
)
def test_a_typed_order_that_is_not_a_ranking_is_named(typed: str, message: str) -> None:
    with pytest.raises(Invalid) as raised:
        _read(_ranking_project(), {"overall__rank": typed}, FOUR)
    assert raised.value.detail == message


def test_a_ranking_row_may_still_be_tie_or_na_and_best_worst_projects_ignore_typed_orders() -> None:
    fields = {"overall": "tie", "overall__rank": "CABD", "style": "na", "safety__rank": "BADC"}
    verdicts = _read(_ranking_project("style", "safety"), fields, FOUR)
    assert [v.kind for v in verdicts.values()] == ["tie", "na", "ranking"]
    with pytest.raises(Invalid, match="overall: no answer given"):
        _read(_project(), {"overall__rank": "CABD"}, FOUR)  # best_worst: the best and worst fields count
    three = _read(_ranking_project(), {"overall__rank": "B=CA"}, [7, 8, 9])["overall"]
    assert (three.ranking, three.much) == ([[8, 9], [7]], [])


def test_an_optional_dimension_with_a_typed_order_is_answered() -> None:
    project = _ranking_project("style")
    project.dimensions = [{"key": "style", "label": "style", "required": False}]
    assert list(_read(project, {"overall__rank": "ABCD", "style__rank": ""}, FOUR)) == ["overall"]
    assert _read(project, {"overall__rank": "ABCD", "style__rank": "DCBA"}, FOUR)["style"].kind == "ranking"


@pytest.mark.parametrize(
    ("fields", "chosen", "strength"),
    [
        ({"overall": "A", "overall__strength": "3"}, 11, 3),
        ({"overall": "B", "overall__strength": "1"}, 22, 1),
        ({"overall": "A", "overall__strength": " 2 "}, 11, 2),
    ],
)
def test_a_strength_project_reads_how_much_better(fields: dict[str, str], chosen: int, strength: int) -> None:
    verdict = _read(_strength_project(), fields, PAIR)["overall"]
    assert (verdict.kind, verdict.chosen, verdict.strength) == ("preference", chosen, strength)


@pytest.mark.parametrize("strength", ["", "0", "4", "much"])
def test_a_strength_project_needs_one_of_three_strengths(strength: str) -> None:
    with pytest.raises(Invalid, match="overall: say how much better"):
        _read(_strength_project(), {"overall": "A", "overall__strength": strength}, PAIR)


def test_ties_need_no_strength_and_other_projects_ignore_it() -> None:
    assert _read(_strength_project(), {"overall": "tie"}, PAIR)["overall"].strength is None
    assert _read(_project(), {"overall": "A", "overall__strength": "3"}, PAIR)["overall"].strength is None


@pytest.mark.parametrize(
    ("project", "fields", "order"),
    [
        (_ranking_project("style"), {"overall": "rank", "overall__rank": "C>>A=B>D", "style": "tie"}, FOUR),
        (_ranking_project(), {"overall": "rank", "overall__rank": "A=B=C"}, [3, 1, 2]),
        (_strength_project("style"), {"overall": "B", "overall__strength": "3", "style": "na"}, PAIR),
        (_strength_project(), {"overall": "A", "overall__strength": "1"}, PAIR),
    ],
)
def test_reopening_a_ranking_or_strength_fills_the_form_with_what_was_posted(
    project: Project, fields: dict[str, str], order: list[int]
) -> None:
    assert letters_from_verdicts(_read(project, fields, order), order) == fields
