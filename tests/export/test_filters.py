"""Filters against the hand-worked fixture project (tests/export/conftest.py)."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from app.config import Settings
from app.db import Database
from app.export import service
from app.export.filters import resolve
from app.export.pseudonyms import pseudonym_key
from app.export.rows import jsonl_lines
from app.export.schemas import ExportFilter
from app.kit.errors import Invalid
from app.models import Project


def run(
    db: Database, settings: Settings, world: dict[str, Any], **filters: Any
) -> tuple[list[dict[str, Any]], Counter[str]]:
    drops: Counter[str] = Counter()
    with db.session(write=False) as s:
        project = s.get(Project, world["project_id"])
        assert project is not None
        key = pseudonym_key(settings.data_dir)
        rules = resolve(s, project=project, filters=ExportFilter(**filters), key=key, by_admin=True)
        rows = [json.loads(line) for line in jsonl_lines(s, rules=rules, drops=drops)]
    return rows, drops


def kept(rows: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    return {r["meta"]["external_id"]: (r["chosen"], r["rejected"]) for r in rows}


def test_default_filter(db: Database, settings: Settings, world: dict[str, Any]) -> None:
    rows, drops = run(db, settings, world)
    assert kept(rows) == {
        "unanimous": ("unanimous A", "unanimous B"),
        "split": ("split A", "split B"),
        "unsafe": ("unsafe A", "unsafe B"),
        "lonely": ("lonely A", "lonely B"),
        "decided": ("decided B", "decided A"),  # the decision overrides the 2–1 vote for A
    }
    assert drops["tie"] == 1 and drops["no_majority"] == 1 and drops["problematic"] == 1 and drops["identical"] == 1
    assert drops["_items"] == 9  # the gold item is never looked at
    for row in rows:
        assert row["chosen"] != row["rejected"]


def test_votes_margin_reason_and_provenance(db: Database, settings: Settings, world: dict[str, Any]) -> None:
    rows, _ = run(db, settings, world)
    split = next(r for r in rows if r["meta"]["external_id"] == "split")
    meta = split["meta"]
    assert meta["votes"] == {"chosen": 2, "rejected": 1, "tie": 0}
    assert meta["margin"] == 1 and meta["agreement"] == pytest.approx(0.6667)
    assert split["reason"] == "ann1 on split\n\nann2 on split"  # the majority's reasons only
    assert meta["item_id"] == world["items"]["split"] and meta["adjudicated"] is False
    assert meta["chosen_position"] == 0 and meta["rejected_position"] == 1
    assert len(meta["annotators"]) == 3 and all(a.startswith("a_") for a in meta["annotators"])
    assert not any(name in str(meta) for name in ("ann1", "ann2", "ann3"))  # pseudonymous
    decided = next(r for r in rows if r["meta"]["external_id"] == "decided")
    assert decided["meta"]["adjudicated"] is True and decided["reason"] == "B is right: A invents a date"


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"min_judgments": 2}, {"unanimous", "split", "unsafe", "decided"}),
        ({"min_margin": 2}, {"unanimous", "unsafe", "decided"}),
        ({"min_share": 0.7}, {"unanimous", "unsafe", "lonely", "decided"}),
        ({"veto": ["harmless"]}, {"unanimous", "split", "lonely", "decided"}),
        ({"drop_ties": False}, {"unanimous", "split", "mostly_tie", "unsafe", "lonely", "decided"}),
        ({"drop_problematic": False}, {"unanimous", "split", "unsafe", "flagged", "lonely", "decided"}),
        ({"exclude_annotators": ["ann3"]}, {"unanimous", "split", "unsafe", "lonely", "decided"}),
        ({"exclude_annotators": ["ann3"], "min_judgments": 3}, {"decided"}),
        ({"exclude_annotators": ["ann2", "ann3"], "min_judgments": 2}, {"decided"}),
    ],
)
def test_each_rule(
    db: Database, settings: Settings, world: dict[str, Any], filters: dict[str, Any], expected: set[str]
) -> None:
    rows, _ = run(db, settings, world, **filters)
    assert set(kept(rows)) == expected


def test_annotators_by_id(db: Database, settings: Settings, world: dict[str, Any]) -> None:
    by_name, _ = run(db, settings, world, exclude_annotators=["ann3"])
    by_id, _ = run(db, settings, world, exclude_annotators=[str(world["users"]["ann3"])])
    assert by_name == by_id


def test_adjudication_can_be_ignored(db: Database, settings: Settings, world: dict[str, Any]) -> None:
    rows, _ = run(db, settings, world, adjudicated=False)
    assert kept(rows)["decided"] == ("decided A", "decided B")


def test_excluding_the_dissenter_makes_mostly_tie_a_tie_still(
    db: Database, settings: Settings, world: dict[str, Any]
) -> None:
    rows, drops = run(db, settings, world, exclude_annotators=["ann3"])
    split = next(r for r in rows if r["meta"]["external_id"] == "split")
    assert split["meta"]["votes"] == {"chosen": 2, "rejected": 0, "tie": 0}
    assert drops["tie"] == 0 and drops["no_majority"] == 2  # mostly_tie: only ties left; level: A vs B


def test_split_partitions_pairs(db: Database, settings: Settings, world: dict[str, Any]) -> None:
    everything = kept(run(db, settings, world, test_share=0.5)[0])
    train = kept(run(db, settings, world, split="train", test_share=0.5)[0])
    test = kept(run(db, settings, world, split="test", test_share=0.5)[0])
    assert set(train) | set(test) == set(everything) and not set(train) & set(test)
    assert train == kept(run(db, settings, world, split="train", test_share=0.5)[0])  # deterministic


def test_dimension_export_uses_that_dimensions_votes(db: Database, settings: Settings, world: dict[str, Any]) -> None:
    rows, _ = run(db, settings, world, dimension="harmless")
    assert kept(rows) == {"unsafe": ("unsafe B", "unsafe A")}


def test_conversational_format(db: Database, settings: Settings, world: dict[str, Any]) -> None:
    rows, _ = run(db, settings, world, format="conversational")
    row = rows[0]
    assert row["prompt"] == [{"role": "user", "content": "prompt unanimous"}]
    assert row["chosen"] == [{"role": "assistant", "content": "unanimous A"}]
    assert row["rejected"] == [{"role": "assistant", "content": "unanimous B"}]


def test_bad_filters_are_refused(db: Database, settings: Settings, world: dict[str, Any]) -> None:
    with pytest.raises(Invalid, match="Unknown dimension"):
        run(db, settings, world, dimension="funny")
    with pytest.raises(Invalid, match="Not an annotator of this project: nobody"):
        run(db, settings, world, exclude_annotators=["nobody"])


def test_preview_counts_match_the_export(db: Database, settings: Settings, world: dict[str, Any]) -> None:
    with db.session(write=False) as s:
        project = s.get(Project, world["project_id"])
        assert project is not None
        preview = service.preview(s, project=project, filters=ExportFilter(veto=["harmless"]), key=b"x")
    assert preview.kept == 4 and preview.dropped["veto"] == 1 and preview.items == 9
    assert preview.adjudicated == 1 and preview.by_split["train"] + preview.by_split["test"] == 4


def test_k3_implied_versus_best_worst(db: Database, settings: Settings) -> None:
    from tests.factories import make_item, make_judgment, make_project, make_user

    with db.session() as s:
        users = [make_user(s, f"k3u{i}") for i in range(3)]
        project = make_project(s, "k3", k=3, members=users)
        item = make_item(s, project, "three answers", candidates=["zero", "one", "two"])
        for user, best in zip(users, (0, 0, 1), strict=True):  # worst is 2 for all
            make_judgment(s, item, user, {"overall": ("preference", best, 2)})
        world = {"project_id": project.id}
    implied = {(r["chosen"], r["rejected"]) for r in run(db, settings, world)[0]}
    # (0,1): 0≻1 twice, 1≻0 once → 0≻1; (0,2) and (1,2): 3–0
    assert implied == {("zero", "one"), ("zero", "two"), ("one", "two")}
    best_worst = {(r["chosen"], r["rejected"]) for r in run(db, settings, world, pairs="best_worst")[0]}
    assert best_worst == {("zero", "two"), ("one", "two")}
    strict = {(r["chosen"], r["rejected"]) for r in run(db, settings, world, pairs="best_worst", min_margin=2)[0]}
    assert strict == {("zero", "two")}


def test_annotators_below_kappa_or_gold_accuracy_are_left_out(db: Database, settings: Settings) -> None:
    from tests.factories import make_item, make_judgment, make_project, make_user

    with db.session() as s:
        good1, good2, contrarian = (make_user(s, n) for n in ("good1", "good2", "contrarian"))
        project = make_project(s, "thresholds", k=2, members=[good1, good2, contrarian])
        for n in range(24):  # κ needs 20 shared items (project.cohen_min_items)
            item = make_item(s, project, f"q{n}")
            truth = n % 2
            for user in (good1, good2):
                make_judgment(s, item, user, {"overall": ("preference", truth, 1 - truth)})
            make_judgment(s, item, contrarian, {"overall": ("preference", 1 - truth, truth)})
        gold = make_item(s, project, "gold question")
        gold.is_gold = True
        gold.gold = {"overall": {"kind": "preference", "chosen": 0, "rejected": 1}}
        for user in (good1, good2):
            make_judgment(s, gold, user, {"overall": ("preference", 0, 1)})
        make_judgment(s, gold, contrarian, {"overall": ("preference", 1, 0)})
        world = {"project_id": project.id}
    everyone = run(db, settings, world)[0]
    assert all(r["meta"]["votes"] == {"chosen": 2, "rejected": 1, "tie": 0} for r in everyone)
    for filters in ({"min_annotator_kappa": 0.0}, {"min_gold_accuracy": 0.5}):
        rows, _ = run(db, settings, world, **filters)
        assert len(rows) == 24
        assert all(r["meta"]["votes"] == {"chosen": 2, "rejected": 0, "tie": 0} for r in rows), filters
        assert all(len(r["meta"]["annotators"]) == 2 for r in rows)
