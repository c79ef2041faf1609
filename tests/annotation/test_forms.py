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
