"""The export of a fixed project, byte for byte, through every public path: the API's streamed JSONL, the
command line's file and a snapshot file (with its data card), under many filters.

The golden files under ``tests/export/golden/`` were written by the export code as it stood before its
modules were split; any change in the bytes an export makes shows here. Everything that could vary is fixed:
row ids (so pseudonyms, splits and candidate ids are stable), the pseudonym key, timestamps that order rows.
The prompts and candidate parameters are ASCII with keys in the order PostgreSQL's JSONB keeps them (shorter
keys first): the export embeds stored JSON text as it is, and the two backends spell non-ASCII characters and
key order differently (SQLite keeps ``json.dumps``'s escapes and insertion order) — a real difference between
backends, but not one this test is about.

To write the golden files afresh (only when a change of the bytes is intended):
``PREFSTUDIO_REGENERATE_GOLDEN=1 .venv/bin/pytest tests/export/test_golden.py -k sqlite``.
"""

from __future__ import annotations

import json
import os
import random
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from app.auth.service import create_api_token
from app.cli import cli
from app.config import Settings, get_settings
from app.db import Database
from app.export.pseudonyms import KEY_FILE
from app.models import Adjudication, Candidate, Item, Project, ProjectMember, Snapshot, User
from tests.factories import make_judgment

GOLDEN = Path(__file__).parent / "golden"
REGENERATE = os.environ.get("PREFSTUDIO_REGENERATE_GOLDEN") == "1"
PSEUDONYM_KEY = "5e" * 32
PREF, TIE, NA = "preference", "tie", "na"
DIMENSIONS = [
    {"key": "helpful", "label": "Helpful", "description": "Useful."},
    {"key": "harmless", "label": "Harmless", "description": "Safe."},
]
ANNOTATORS = ["ann_a", "ann_b", "ann_c", "ann_d", "ann_e"]
STEADY = {"ann_a": 0.8, "ann_b": 0.7, "ann_c": 0.6, "ann_d": 0.2, "ann_e": 0.0}  # how often each picks the favourite
USER_IDS = {name: 701 + n for n, name in enumerate(ANNOTATORS)} | {"chief": 700}
PROJECTS = {"golden-two": (501, 2, 60), "golden-four": (502, 4, 40)}  # slug: id, k, items
runner = CliRunner()

# name: the filter as API query parameters (lists repeat); the command line gets the same as options.
CASES: dict[str, dict[str, Any]] = {
    "defaults": {},
    "strict": {"min_judgments": 3, "min_share": 0.6, "min_margin": 2},
    "share": {"min_share": 0.75},
    "helpful": {"dimension": "helpful"},
    "ties_problematic_kept": {"drop_ties": False, "drop_problematic": False},
    "veto_best_worst": {"veto": ["harmless", "helpful"], "pairs": "best_worst"},
    "conversational_no_adjudication": {"format": "conversational", "adjudicated": False},
    "train_split": {"split": "train", "test_share": 0.3},
    "test_split": {"split": "test", "test_share": 0.3},
    "excluded": {"exclude_annotators": ["ann_b", "705"]},
    "kappa": {"min_annotator_kappa": 0.2},
    "min_votes": {"min_votes": 2},
    "gold_accuracy": {"min_gold_accuracy": 0.6},
}
CLI_OPTIONS = {
    "format": "--format",
    "exclude_annotators": "--exclude",
    "min_annotator_kappa": "--min-kappa",
}
SNAPSHOT_CASES = ("defaults", "veto_best_worst")


def _verdict(rng: random.Random, k: int, steady: float) -> tuple[str, int | None, int | None]:
    """A random verdict; with a chance of ``steady``, one for the common favourite (position 0)."""
    if rng.random() < steady:
        return (PREF, 0, 1 if k == 2 or rng.random() < 0.5 else rng.choice(range(2, k)))
    roll = rng.random()
    if roll < 0.15:
        return (TIE, None, None)
    if roll < 0.22:
        return (NA, None, None)
    chosen, rejected = rng.sample(range(k), 2)
    return (PREF, chosen, rejected)


def _candidates(session: Session, item: Item, k: int, round_: int, next_id: Iterator[int], rng: random.Random) -> None:
    twins = rng.random() < 0.1
    for position in range(k):
        text = "the same answer" if twins and position < 2 else f"answer {position} to item {item.id} r{round_}"
        session.add(
            Candidate(
                id=next(next_id),
                item_id=item.id,
                round=round_,
                position=position,
                text=f"  {text}\n" if position == 1 and twins else text,
                model=f"model-{position % 2}",
                params={"seed": position, "top_p": 0.9, "temperature": 0.7},
                seed=1000 + position,
            )
        )
    session.flush()


def _item(session: Session, project: Project, number: int, *, item_id: int, gold: bool) -> Item:
    prompt: Any = f'Question {number}: say "hi"\nthen stop.'
    if number % 4 == 1:
        prompt = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": f"Question {number}?"}]
    item = Item(
        id=item_id,
        project_id=project.id,
        external_id=f"ext-{number}" if number % 3 else None,
        prompt=prompt,
        prompt_hash=f"{project.id}-{number}",
        status="ready",
        is_gold=gold,
        gold={"overall": {"kind": PREF, "chosen": 0, "rejected": 1}} if gold else None,
    )
    session.add(item)
    session.flush()
    return item


def _judge_all(session: Session, item: Item, k: int, users: dict[str, User], rng: random.Random, number: int) -> None:
    for name in rng.sample(ANNOTATORS, rng.randint(1, len(ANNOTATORS))):
        verdicts = {dimension: _verdict(rng, k, STEADY[name]) for dimension in ("overall", "helpful", "harmless")}
        if rng.random() < 0.2:
            del verdicts["harmless"]
        make_judgment(
            session,
            item,
            users[name],
            verdicts,
            reason=rng.choice(["", f"{name} thinks so", "  ", f"{name}: first is clearer"]),
            problematic=rng.random() < 0.02,
            all_bad=rng.random() < 0.05,
        )


def _adjudicate(session: Session, item: Item, k: int, admin: User, rng: random.Random, when: datetime) -> None:
    ids = {
        c.position: c.id
        for c in session.scalars(select(Candidate).where(Candidate.item_id == item.id, Candidate.round == item.round))
    }
    for step in range(rng.randint(1, 2)):  # the newest decision wins
        chosen, rejected = rng.sample(range(k), 2)
        overall = {"kind": PREF, "chosen": ids[chosen], "rejected": ids[rejected]}
        if rng.random() < 0.2:
            overall = {"kind": TIE, "chosen": None, "rejected": None}
        verdicts: dict[str, Any] = {"overall": overall}
        if rng.random() < 0.5:
            verdicts["harmless"] = {"kind": PREF, "chosen": ids[rejected], "rejected": ids[chosen]}
        session.add(
            Adjudication(
                project_id=item.project_id,
                item_id=item.id,
                round=item.round,
                decided_by_id=admin.id,
                verdicts=verdicts,
                reason=rng.choice(["", f"decision {step} on {item.id}"]),
                created_at=when + timedelta(minutes=step),
            )
        )
    session.flush()


def build_project(session: Session, slug: str, users: dict[str, User]) -> None:
    project_id, k, count = PROJECTS[slug]
    project = Project(
        id=project_id,
        slug=slug,
        name=slug.title(),
        k=k,
        overlap=3,
        dimensions=DIMENSIONS,
        generation={"model": "model-0", "temperature": 0.7, "base_url": "http://hidden", "max_tokens": 64},
    )
    session.add(project)
    session.flush()
    for name in ANNOTATORS:
        session.add(ProjectMember(project_id=project.id, user_id=users[name].id))
    rng = random.Random(f"{slug}-18")
    next_candidate = iter(range(project_id * 1000, project_id * 1000 + 999))
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    for number in range(count):
        item = _item(session, project, number, item_id=project_id * 100 + number, gold=number % 10 == 9)
        _candidates(session, item, k, 0, next_candidate, rng)
        if number % 13 == 5:  # judged, then regenerated: the earlier round never reaches an export
            _judge_all(session, item, k, users, rng, number)
            item.round = 1
            _candidates(session, item, k, 1, next_candidate, rng)
        if number % 11 != 7:  # a few items nobody judged
            _judge_all(session, item, k, users, rng, number)
        if number % 6 == 2:
            _adjudicate(session, item, k, users["chief"], rng, when + timedelta(hours=number))


@pytest.fixture
def golden_world(db: Database, settings: Settings) -> Iterator[dict[str, str]]:
    """Both projects, the fixed pseudonym key, and an admin's api token; the command line set up to use them."""
    data_dir = Path(settings.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / KEY_FILE).write_text(PSEUDONYM_KEY)
    with db.session() as session:
        users = {
            name: User(id=user_id, username=name, display_name=name, password_hash="x", role="annotator")
            for name, user_id in USER_IDS.items()
        }
        users["chief"].role = "admin"
        session.add_all(users.values())
        session.flush()
        for slug in PROJECTS:
            build_project(session, slug, users)
        token = create_api_token(session, user=users["chief"], scope="api", settings=settings)[1]
    env = {
        "PREFSTUDIO_DATABASE_URL": settings.database_url,
        "PREFSTUDIO_SECRET_KEY": settings.secret_key or "",
        "PREFSTUDIO_ENVIRONMENT": "test",
        "PREFSTUDIO_DATA_DIR": str(data_dir),
    }
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    get_settings.cache_clear()
    try:
        yield {"token": token}
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        get_settings.cache_clear()


def _cli_arguments(filters: dict[str, Any]) -> list[str]:
    arguments: list[str] = []
    for name, value in filters.items():
        option = CLI_OPTIONS.get(name, "--" + name.replace("_", "-"))
        if isinstance(value, bool):
            arguments.append(option if value else "--no-" + option[2:])
        else:
            for one in value if isinstance(value, list) else [value]:
                arguments += [option, str(one)]
    return arguments


def _matches_golden(name: str, made: bytes) -> None:
    path = GOLDEN / name
    if REGENERATE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_bytes(made)
    assert path.is_file(), f"no golden file {name}: run with PREFSTUDIO_REGENERATE_GOLDEN=1"
    assert made == path.read_bytes(), f"the export differs from {path}"


@pytest.mark.parametrize("slug", list(PROJECTS))
def test_api_and_command_line_export_the_golden_bytes(
    client: TestClient, golden_world: dict[str, str], slug: str, tmp_path: Path
) -> None:
    headers = {"Authorization": f"Bearer {golden_world['token']}"}
    for case, filters in CASES.items():
        response = client.get(f"/api/v1/projects/{slug}/export.jsonl", params=filters, headers=headers)
        assert response.status_code == 200, response.text
        _matches_golden(f"{slug}-{case}.jsonl", response.content)
        preview = client.get(f"/api/v1/projects/{slug}/export/preview", params=filters, headers=headers)
        assert preview.status_code == 200, preview.text
        _matches_golden(f"{slug}-{case}.preview.json", json.dumps(preview.json(), indent=1).encode() + b"\n")
        out = tmp_path / f"{slug}-{case}.jsonl"
        result = runner.invoke(cli, ["export", slug, "--out", str(out), *_cli_arguments(filters)])
        assert result.exit_code == 0, result.output
        assert out.read_bytes() == response.content, f"{case}: the command line and the API differ"


def test_the_golden_files_are_not_trivial() -> None:
    """Many pairs kept, and every reason for dropping one at work somewhere."""
    dropped: set[str] = set()
    rows = 0
    for slug in PROJECTS:
        rows += len((GOLDEN / f"{slug}-defaults.jsonl").read_bytes().splitlines())
        for case in CASES:
            preview = json.loads((GOLDEN / f"{slug}-{case}.preview.json").read_text())
            dropped |= {reason for reason, n in preview["dropped"].items() if n}
            assert preview["kept"] == len((GOLDEN / f"{slug}-{case}.jsonl").read_bytes().splitlines())
    assert rows > 100
    # The fixed projects have no strengths and no consensus fit: tests/export/test_strength.py and
    # test_model_label.py drop pairs by those two rules.
    needs_more = {"min_confidence", "min_strength"}
    assert dropped == set(json.loads((GOLDEN / "golden-two-defaults.preview.json").read_text())["dropped"]) - needs_more


@pytest.mark.parametrize("case", SNAPSHOT_CASES)
def test_snapshot_files_and_cards_are_the_golden_bytes(
    golden_world: dict[str, str], db: Database, settings: Settings, case: str
) -> None:
    for slug in PROJECTS:
        name = f"golden {case}"
        result = runner.invoke(cli, ["export", slug, "--snapshot", "--name", name, *_cli_arguments(CASES[case])])
        assert result.exit_code == 0, result.output
        with db.session(write=False) as session:
            snapshot = session.scalars(select(Snapshot).where(Snapshot.name == name).order_by(Snapshot.id)).all()[-1]
            assert snapshot.state == "ready" and snapshot.file_name
            body = (Path(settings.data_dir) / snapshot.file_name).read_bytes()
            card = re.sub(r"(?m)^- Created: .*$", "- Created: (when)", snapshot.card or "")
            card = re.sub(r"snapshot \d+", "snapshot N", card, count=1)
        assert body == (GOLDEN / f"{slug}-{case}.jsonl").read_bytes()
        _matches_golden(f"{slug}-{case}.card.md", card.encode())
