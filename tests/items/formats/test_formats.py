"""Each foreign format on its fixture: the items and candidates it makes, the judgments of its external annotators
(with the right direction, "na" where the source does not judge), and a malformed record refused by its line with
nothing stored. Every test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import json

import pytest

from app.db import Database
from app.items.formats.detect import detect_format
from app.items.formats.service import FormatImportResult, import_file_as
from app.items.importer import ImportFailed
from app.kit.errors import Invalid
from app.models import Item, Judgment, Project, User
from tests.factories import make_user
from tests.items.formats.helpers import count, fixture, items, judgments, project, run


def _jsonl(*records: object) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


def test_hh_rlhf_prompt_from_the_shared_turns_chosen_first_and_chosen_preferred(db: Database) -> None:
    pid = project(db)
    result = run(db, pid, fixture("hh-rlhf.jsonl"), "hh-rlhf")
    assert (result.records, result.created, result.judgments) == (3, 2, 2)
    assert result.skipped_count == 1 and result.skipped[0]["line"] == 3  # "Hi!" twice: no preference
    assert result.annotators_created == ["hh-rlhf"]
    stored = list(items(db, pid).values())
    assert stored[0]["prompt"] == "What is a good name for a goldfish?"
    assert stored[0]["texts"] == [
        "How about Bubbles? It is short, friendly and easy to call.",
        "Fish do not need names.",
    ]
    assert stored[1]["prompt"] == [
        {"role": "user", "content": "How do I boil an egg?"},
        {"role": "assistant", "content": "Put it in boiling water for about nine minutes."},
        {"role": "user", "content": "And a soft one?"},
    ]
    assert stored[1]["texts"][1] == "Just take it out earlier."
    votes = judgments(db, pid)
    assert len(votes) == 2
    for verdicts in votes.values():
        # chosen ≻ rejected on overall; the record says nothing of the required dimensions; optional ones left out
        assert verdicts["overall"] == (0, 1) and verdicts["helpful"] == "na" and verdicts["honest"] == "na"
        assert "polite" not in verdicts and verdicts["_external"] and verdicts["_imported"]
    assert {annotator for _, annotator in votes} == {"hh-rlhf"}
    assert all(i["judgment_count"] == 1 for i in stored)


def test_hh_rlhf_a_malformed_record_is_refused_by_its_line_and_nothing_is_stored(db: Database) -> None:
    pid = project(db)
    good = json.loads(fixture("hh-rlhf.jsonl").splitlines()[0])
    body = _jsonl(good, {"chosen": "\n\nHuman: a\n\nAssistant: b", "rejected": "\n\nHuman: other\n\nAssistant: c"})
    empty = {"chosen": "\n\nHuman: q\n\nAssistant: x", "rejected": "\n\nHuman: q\n\nAssistant:"}
    body += b"{not json\n" + _jsonl(empty)
    with pytest.raises(ImportFailed) as failed:
        run(db, pid, body, "hh-rlhf")
    errors = failed.value.errors
    assert [e["line"] for e in errors] == [2, 3, 4]
    assert "differ before their last assistant turn" in errors[0]["message"]
    assert "bad JSON" in errors[1]["message"] and "is empty" in errors[2]["message"]
    assert count(db, Item) == count(db, Judgment) == count(db, User) == 0


def test_a_pairs_format_refuses_a_project_of_another_k_or_one_that_asks_strength(db: Database) -> None:
    with pytest.raises(Invalid, match="k = 3"):
        run(db, project(db, "three", k=3), fixture("hh-rlhf.jsonl"), "hh-rlhf")
    with pytest.raises(Invalid, match="strength"):
        run(db, project(db, "strong", strength=True), fixture("trl-conversational.jsonl"), "trl")
    assert count(db, Item) == 0


def test_ultrafeedback_first_k_completions_with_their_models_and_ratings_per_dimension(db: Database) -> None:
    pid = project(db)
    result = run(db, pid, fixture("ultrafeedback.jsonl"), "ultrafeedback")
    assert (result.created, result.judgments) == (2, 2)
    stored = items(db, pid)
    first = next(v for v in stored.values() if v["prompt"] == "Name three primary colours.")
    assert first["texts"] == ["Red, yellow and blue.", "Green."] and first["models"] == ["m-a", "m-b"]
    assert first["meta"]["source"] == {"format": "ultrafeedback", "completions": 4, "dataset": "evol_instruct"}
    votes = {stored_id: v for (stored_id, _), v in judgments(db, pid).items()}
    colours = next(v for key, v in votes.items() if stored[key] is first)
    # overall_score 8 > 3; helpfulness 5 > 2 → helpful; honesty 5 > 4 → honest
    assert colours["overall"] == (0, 1) and colours["helpful"] == (0, 1) and colours["honest"] == (0, 1)
    cat = next(v for key, v in votes.items() if stored[key] is not first)
    # chat 9 vs chien 2; helpfulness 5 vs 1; honesty 5 = 5: a tie
    assert cat["overall"] == (0, 1) and cat["helpful"] == (0, 1) and cat["honest"] == "tie"


def test_ultrafeedback_on_k4_best_worst_and_an_unjudged_tie_at_the_top(db: Database) -> None:
    pid = project(db, k=4)
    result = run(db, pid, fixture("ultrafeedback.jsonl"), "ultrafeedback")
    assert result.created == 2 and result.judgments == 1
    assert result.unjudged_count == 1 and result.unjudged[0]["line"] == 2  # 9.0 twice: no single best
    (verdicts,) = judgments(db, pid).values()
    assert verdicts["overall"] == (0, 3)  # best 8.0 (m-a), worst 2.0 (m-d)
    assert verdicts["helpful"] == (0, 3) and verdicts["honest"] == "na"  # honesty 5, 4, 5, 3: two best


def test_ultrafeedback_on_a_rank_mode_project_keeps_the_ties_of_a_ranking(db: Database) -> None:
    pid = project(db, k=4, ranking_mode="rank")
    result = run(db, pid, fixture("ultrafeedback.jsonl"), "ultrafeedback", annotator="uf-gpt4")
    assert result.judgments == 2 and result.annotators_created == ["uf-gpt4"]
    by_item = {key[0]: v for key, v in judgments(db, pid).items()}
    stored = items(db, pid)
    cat = next(by_item[k] for k, v in stored.items() if v["prompt"].startswith("Translate"))
    assert cat["overall"] == [[0, 2], [1], [3]]  # 9, 2, 9, 1
    assert cat["honest"] == [[0, 1], [2], [3]]  # 5, 5, 4, 2


def test_ultrafeedback_too_few_completions_is_a_line_error(db: Database) -> None:
    pid = project(db, k=3)
    record = json.loads(fixture("ultrafeedback.jsonl").splitlines()[0])
    record["completions"] = record["completions"][:2]
    with pytest.raises(ImportFailed) as failed:
        run(db, pid, _jsonl(record), "ultrafeedback")
    message = "2 completions; this project has k = 3 (it needs at least 3)"
    assert failed.value.errors == [{"line": 1, "message": message}]
    assert count(db, Item) == 0


def test_ultrafeedback_binarized_scores_and_a_tie(db: Database) -> None:
    pid = project(db)
    result = run(db, pid, fixture("ultrafeedback-binarized.jsonl"), "ultrafeedback")
    assert result.created == 2 and result.judgments == 2
    stored = items(db, pid)
    assert set(stored) == {"ultrafeedback:a1b2c3", "ultrafeedback:d4e5f6"}
    assert stored["ultrafeedback:a1b2c3"]["prompt"] == "Write a haiku about rain."
    assert stored["ultrafeedback:a1b2c3"]["texts"][1] == "Rain is wet."
    votes = judgments(db, pid)
    assert votes[("ultrafeedback:a1b2c3", "ultrafeedback")]["overall"] == (0, 1)
    assert votes[("ultrafeedback:d4e5f6", "ultrafeedback")]["overall"] == "tie"  # 10 = 10


def test_argilla_each_submitted_user_is_an_external_annotator_with_their_ranking(db: Database) -> None:
    pid = project(db)
    result = run(db, pid, fixture("argilla.json"), "argilla")
    assert (result.records, result.created, result.judgments) == (3, 3, 3)
    assert result.unjudged_count == 1 and result.unjudged[0]["line"] == 86  # rec-3 starts on line 86: no responses
    stored = items(db, pid)
    assert stored["argilla:rec-1"]["texts"] == ["The Rolling Pin", "Bakery 1"]
    u1, u2 = "argilla:0f6a2b1e-7c9d-4e1f-8a3b-5d2c1e0f9a87", "argilla:9b3c7d2e-1a4f-4b6c-9d8e-2f1a0b3c4d5e"
    votes = judgments(db, pid)
    assert set(votes) == {("argilla:rec-1", u1), ("argilla:rec-1", u2), ("argilla:rec-2", u1)}  # a draft is no vote
    assert votes[("argilla:rec-1", u1)]["overall"] == (0, 1)
    assert votes[("argilla:rec-1", u1)]["_reason"] == "A name people remember."
    assert votes[("argilla:rec-1", u2)]["overall"] == (1, 0)
    assert all(v["_external"] for v in votes.values())


def test_argilla_a_ranking_naming_an_unknown_response_is_refused_with_its_record(db: Database) -> None:
    pid = project(db)
    records = json.loads(fixture("argilla.json"))
    records[1]["responses"]["ranking"][0]["value"] = ["response1", "response9"]
    with pytest.raises(ImportFailed) as failed:
        run(db, pid, json.dumps(records, indent=2).encode(), "argilla")
    (error,) = failed.value.errors
    assert error["line"] == 53 and error["message"].startswith("record 2: 'ranking' ranks a name")
    assert count(db, Item) == count(db, Judgment) == 0


def test_argilla_annotator_option_replaces_the_prefix(db: Database) -> None:
    pid = project(db)
    run(db, pid, fixture("argilla.json"), "argilla", annotator="team-a")
    assert {a for _, a in judgments(db, pid)} == {
        "team-a:0f6a2b1e-7c9d-4e1f-8a3b-5d2c1e0f9a87",
        "team-a:9b3c7d2e-1a4f-4b6c-9d8e-2f1a0b3c4d5e",
    }


def test_label_studio_pairwise_left_and_right_per_annotator_cancelled_left_out(db: Database) -> None:
    pid = project(db)
    result = run(db, pid, fixture("label-studio.json"), "label-studio")
    assert (result.created, result.judgments) == (2, 3)
    assert sorted(result.annotators_created) == ["label-studio:3", "label-studio:4"]
    stored = items(db, pid)
    assert stored["label-studio:101"]["texts"][1] == "Use coffee."
    votes = judgments(db, pid)
    assert votes[("label-studio:101", "label-studio:3")]["overall"] == (0, 1)  # left
    assert votes[("label-studio:101", "label-studio:3")]["_reason"] == "It answers the question."
    assert votes[("label-studio:101", "label-studio:4")]["overall"] == (1, 0)  # right
    assert votes[("label-studio:102", "label-studio:3")]["overall"] == (1, 0)
    assert ("label-studio:101", "label-studio:5") not in votes  # cancelled


def test_label_studio_ranker_on_k3(db: Database) -> None:
    pid = project(db, k=3)
    run(db, pid, fixture("label-studio-ranker.json"), "label-studio")
    stored = items(db, pid)
    assert stored["label-studio:201"]["texts"] == [
        "Statistical Rethinking by McElreath.",
        "Any book.",
        "The Art of Statistics by Spiegelhalter.",
    ]
    assert judgments(db, pid)[("label-studio:201", "label-studio:3")]["overall"] == (2, 1)  # best llm_3, worst llm_2


def test_label_studio_bad_selection_is_refused_and_nothing_stored(db: Database) -> None:
    pid = project(db)
    tasks = json.loads(fixture("label-studio.json"))
    tasks[1]["annotations"][0]["result"][0]["value"]["selected"] = "middle"
    with pytest.raises(ImportFailed) as failed:
        run(db, pid, json.dumps(tasks).encode(), "label-studio")
    (error,) = failed.value.errors
    assert error["line"] == 1 and error["message"].startswith("record 2: a pairwise result")
    assert count(db, Item) == count(db, Judgment) == count(db, User) == 0


def test_a_record_already_in_the_project_is_a_duplicate_and_its_judgments_stay_out(db: Database) -> None:
    pid = project(db)
    run(db, pid, fixture("label-studio.json"), "label-studio")
    again = run(db, pid, fixture("label-studio.json"), "label-studio")
    assert again.created == 0 and again.duplicate_count == 2 and again.judgments == 0
    assert [d["line"] for d in again.duplicates] == [2, 76]
    assert count(db, Judgment) == 3


def test_an_annotator_named_like_one_of_our_users_is_refused(db: Database) -> None:
    pid = project(db)
    with db.session() as s:
        make_user(s, "maria")
    with pytest.raises(Invalid, match="already a prefstudio user"):
        run(db, pid, fixture("hh-rlhf.jsonl"), "hh-rlhf", annotator="maria")
    assert count(db, Item) == count(db, Judgment) == 0


def test_argilla_flattened_records_read_like_nested_ones(db: Database) -> None:
    pid = project(db)
    result = run(db, pid, fixture("argilla-flat.jsonl"), "argilla")
    assert result.created == 1 and result.judgments == 1
    assert items(db, pid)["argilla:flat-1"]["texts"] == ["Miso", "Cat"]
    votes = judgments(db, pid)  # the second answer was discarded
    assert list(votes) == [("argilla:flat-1", "argilla:0f6a2b1e-7c9d-4e1f-8a3b-5d2c1e0f9a87")]
    assert next(iter(votes.values()))["overall"] == (0, 1)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("hh-rlhf.jsonl", "hh-rlhf"),
        ("ultrafeedback.jsonl", "ultrafeedback"),
        ("ultrafeedback-binarized.jsonl", "ultrafeedback"),
        ("trl-conversational.jsonl", "trl"),
        ("argilla.json", "argilla"),
        ("argilla-flat.jsonl", "argilla"),
        ("label-studio.json", "label-studio"),
        ("label-studio-ranker.json", "label-studio"),
    ],
)
def test_auto_tells_each_fixture_by_its_first_record(name: str, expected: str) -> None:
    stream = io.BytesIO(fixture(name))
    assert detect_format(stream, name) == expected and stream.tell() == 0


def test_auto_imports_native_and_foreign_files_and_refuses_what_it_cannot_tell(db: Database) -> None:
    pid = project(db)
    native = _jsonl({"id": "n1", "prompt": "a native prompt", "candidates": ["one", "two"]})
    with db.session() as s:
        target = s.get(Project, pid)
        assert target is not None
        first = import_file_as(s, project=target, stream=io.BytesIO(native), filename="n.jsonl", fmt="auto")
        second = import_file_as(s, project=target, stream=io.BytesIO(fixture("argilla.json")), filename="a", fmt="auto")
        with pytest.raises(Invalid, match="cannot be told"):
            import_file_as(s, project=target, stream=io.BytesIO(_jsonl({"text": "?"})), filename="x", fmt="auto")
    assert isinstance(second, FormatImportResult) and second.format == "argilla" and second.judgments == 3
    assert not isinstance(first, FormatImportResult) and first.created == 1
    assert count(db, Item) == 4


def test_one_user_annotating_a_task_twice_is_refused_with_its_line(db: Database) -> None:
    pid = project(db)
    tasks = json.loads(fixture("label-studio.json"))
    tasks[1]["annotations"].append(tasks[1]["annotations"][0] | {"id": 9})
    with pytest.raises(ImportFailed) as failed:
        run(db, pid, json.dumps(tasks, indent=2).encode(), "label-studio")
    (error,) = failed.value.errors
    assert error["line"] == 76 and "'label-studio:3' judges this record twice" in error["message"]
    assert count(db, Item) == 0
