"""Labels you can trust, measured: the consensus model (Dawid–Skene with the position correction) against the
majority vote, on simulated annotation with a known truth, run through the real service layer.

Each run makes a project (k = 2, or k = 4 in best_worst or rank mode, overlap r = 3), items whose candidates
have a Bradley–Terry utility each (standard normal), and annotators with planted behaviour: 20 % spammers, one
who always picks what is shown first (k = 4: best = shown first, worst = shown last; a ranking = the display
order) and the rest accurate to 75–90 % on a pair. An accurate annotator ranks the candidates by utility ×
sharpness + Gumbel noise — a Plackett–Luce draw, so each pair comes out right with the Bradley–Terry probability
σ(sharpness · |Δu|), the sharpness chosen so that this averages to their accuracy.
A spammer (``--spammers``) is a random clicker on the real page ("any", the default): "tie" on a third of the
items (at k = 2 the page offers A, B and T), otherwise a random best and worst (k = 2: A or B, with a random
strength where the project asks for one), in rank mode a random order whose links are each ">", "=" or ">>";
or ("preference") a random order with no tie ever (a random best and worst, a random ranking).
Annotators take items from the queue (``assign_next_item``: the app shuffles the display order) in random turns
and submit with ``submit_judgment``. Then the model is fitted (``app.consensus.service.refresh``) and both
labels are scored against the truth:

- accuracy over every pair with a true strict preference (an unlabelled pair counts as wrong), coverage
  (share of pairs labelled) and accuracy on the labelled pairs — for ``label=model`` and for the majority, each by
  the export's own rule (``app.export.fate.pair_fate`` with the default ``ExportFilter``, implied pairs: a level
  vote or as many ties as winning votes leaves the pair unlabelled; the model: none when a tie is the most
  probable);
- reliability vs planted-good: AUC (``sklearn.metrics.roc_auc_score``), and which annotators are flagged.

``--size N`` (or ``--full``: 1M) also times the fit on N judgments × 6 dimensions (k = 2, bulk-inserted rows, not
through the services), loading included.

    python bench/labels.py                                   # 5 seeds, small, SQLite under /tmp (a minute or two)
    python bench/labels.py --items 300 --spammers any        # docs/consensus.md (and --spammers preference)
    PREFSTUDIO_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/bench python bench/labels.py --full
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import expit
from sklearn.metrics import roc_auc_score
from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from alembic import command  # noqa: E402

from app.annotation.judgments import submit_judgment  # noqa: E402
from app.annotation.queue import assign_next_item  # noqa: E402
from app.annotation.schemas import JudgmentIn, VerdictIn  # noqa: E402
from app.config import Settings  # noqa: E402
from app.consensus import pool, service, stats  # noqa: E402
from app.consensus.loading import load_labels  # noqa: E402
from app.db import Database, make_database  # noqa: E402
from app.export.fate import NO_VOTES, item_fate, pair_fate  # noqa: E402
from app.export.pairs import FIRST, SECOND, Pair, Verdict, Votes, count, ranked_of  # noqa: E402
from app.export.schemas import ExportFilter  # noqa: E402
from app.kit.security import hash_password  # noqa: E402
from app.models import DEFAULT_DIMENSIONS, OVERALL, Assignment, Candidate, Item, Judgment, Project, ProjectMember, User  # noqa: E402
from app.models import Verdict as VerdictRow  # noqa: E402
from bench.common import (  # noqa: E402
    ASSIGNMENT_COLUMNS,
    ITEM_COLUMNS,
    JUDGMENT_COLUMNS,
    VERDICT_COLUMNS,
    alembic_config,
    copy_rows,
    finish_fill,
    stamp,
)

CONFIGS = [(2, "best_worst"), (4, "best_worst"), (4, "rank")]
SPAMMERS = ("any", "preference")
SPAM_TIE = 1 / 3  # how often a random clicker ("any") presses "tie": as at k = 2, one answer of the page's three
MAJORITY = ExportFilter()  # the export's default rule: label=majority, implied pairs, drop_ties, min_margin 1
MODEL = ExportFilter(label="model")  # the same with label=model


@dataclass
class World:
    """A simulated project: who each annotator is, and the true utility of every item's candidates."""

    project_id: int
    k: int
    kind: dict[int, str]  # annotator id → "good", "spammer" or "first" (always picks what is shown first)
    accuracy: dict[int, float]
    utility: dict[int, list[float]]  # item id → utility by canonical position


def sharpness_for(accuracy: float) -> float:
    """The Bradley–Terry sharpness β at which E[σ(β |Δu|)] = accuracy, for Δu of two standard normal utilities."""
    gaps = np.abs(np.random.default_rng(0).normal(0.0, np.sqrt(2.0), 100_000))
    low, high = 0.0, 100.0
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if expit(middle * gaps).mean() < accuracy else (low, middle)
    return (low + high) / 2


def _people(session: Any, slug: str, n: int, rng: np.random.Generator) -> tuple[list[User], dict[int, str], Any]:
    spammers = max(1, round(0.2 * n))
    kinds = ["spammer"] * spammers + ["first"] + ["good"] * (n - spammers - 1)
    password = hash_password("sim-password")
    users = [User(username=f"{slug}-{i:02d}", password_hash=password) for i in range(n)]
    session.add_all(users)
    session.flush()
    order = rng.permutation(n)  # who is what does not follow the ids
    kind = {users[int(p)].id: kinds[i] for i, p in enumerate(order)}
    accuracy = {uid: (float(rng.uniform(0.75, 0.9)) if k == "good" else 0.5) for uid, k in kind.items()}
    return users, kind, accuracy


def _project(
    session: Any, slug: str, k: int, mode: str, items: int, rng: np.random.Generator, strength: bool
) -> tuple[Project, Any]:
    project = Project(
        slug=slug, name=slug, k=k, overlap=3, dimensions=[], gold_share=0.0, ranking_mode=mode, strength=strength
    )  # fmt: skip
    session.add(project)
    session.flush()
    utility: dict[int, list[float]] = {}
    for n in range(items):
        prompt = f"{slug} prompt {n}"
        item = Item(
            project_id=project.id,
            prompt=prompt,
            prompt_hash=hashlib.sha256(prompt.encode()).hexdigest(),
            status="ready",
        )
        session.add(item)
        session.flush()
        session.add_all([Candidate(item_id=item.id, position=p, text=f"answer {p}", model="sim") for p in range(k)])
        utility[item.id] = [float(u) for u in rng.normal(0.0, 1.0, k)]
    session.flush()
    return project, utility


@dataclass(frozen=True)
class Page:
    """What the annotation page asks for: a ranking (rank mode, k ≥ 3), a strength (k = 2, when the project asks),
    and how a spammer clicks ("any" or "preference")."""

    ranks: bool
    strength: bool
    spammers: str


def _verdict(kind: str, beta: float, shown: list[Candidate], u: list[float], page: Page, rng: Any) -> VerdictIn:
    """One annotator's answer on the item shown in this order."""
    if kind == "spammer" and page.spammers == "any":
        return _random_click(shown, page, rng)
    gap = 0.0
    if kind == "first":
        ranked = [c.id for c in shown]
    else:  # a spammer ("preference") has sharpness 0: a uniformly random order
        score = [beta * u[c.position] + g for c, g in zip(shown, rng.gumbel(size=len(shown)), strict=True)]
        ranked = [c.id for _, c in sorted(zip(score, shown, strict=True), key=lambda pair: -pair[0])]
        gap = abs(score[0] - score[-1])
    if page.ranks:
        return VerdictIn(kind="ranking", ranking=[[cid] for cid in ranked])
    how = None
    if page.strength:  # the clicker always says "better"; the others by how far apart the answers seemed
        how = 2 if kind == "first" else int(rng.integers(1, 4)) if kind == "spammer" else 1 + (gap > 1) + (gap > 3)
    return VerdictIn(kind="preference", chosen=ranked[0], rejected=ranked[-1], strength=how)


def _random_click(shown: list[Candidate], page: Page, rng: Any) -> VerdictIn:
    """Any answer the page offers, at random: "tie" (a third of the time), else a random best and worst (with a
    random strength where asked), or in rank mode a random order whose links are each ">", "=" or ">>"."""
    if rng.random() < SPAM_TIE:
        return VerdictIn(kind="tie")
    order = [shown[int(i)].id for i in rng.permutation(len(shown))]
    if not page.ranks:
        how = int(rng.integers(1, 4)) if page.strength else None
        return VerdictIn(kind="preference", chosen=order[0], rejected=order[-1], strength=how)
    tiers, much = [[order[0]]], []
    for cid, link in zip(order[1:], rng.integers(0, 3, len(order) - 1), strict=True):
        if link == 1:  # "="
            tiers[-1].append(cid)
            continue
        if link == 2:  # ">>"
            much.append(len(tiers) - 1)
        tiers.append([cid])
    return VerdictIn(kind="ranking", ranking=tiers, much=much or None)


def simulate(
    db: Database,
    *,
    seed: int,
    k: int,
    mode: str,
    items: int,
    annotators: int,
    spammers: str = "any",
    strength: bool = False,
) -> World:
    """Make the project and let the annotators work through the queue until every item has r = 3 judgments.
    ``spammers``: "any" (a random clicker: any answer the page offers, ties included) or "preference" (random
    among the preference answers only); ``strength``: the project asks how much better (k = 2)."""
    if spammers not in SPAMMERS:
        raise ValueError(f"spammers must be one of {SPAMMERS}")
    rng = np.random.default_rng(seed)
    random.seed(seed)  # the queue shuffles each display order with the random module
    slug = f"sim-{seed}-k{k}-{mode.replace('_', '')}-{os.getpid()}-{time.monotonic_ns() % 10**6}"
    with db.session() as s:
        users, kind, accuracy = _people(s, slug, annotators, rng)
        project, utility = _project(s, slug, k, mode, items, rng, strength)
        page = Page(ranks=mode == "rank" and k > 2, strength=strength and k == 2, spammers=spammers)
        s.add_all([ProjectMember(project_id=project.id, user_id=u.id) for u in users])
        s.flush()
        beta = {uid: sharpness_for(a) if kind[uid] == "good" else 0.0 for uid, a in accuracy.items()}
        active = list(users)
        while active:
            for at in rng.permutation(len(active)):
                user = active[int(at)]
                task = assign_next_item(s, project=project, annotator=user)
                if task is None:
                    active = [u for u in active if u.id != user.id]
                    break
                answer = _verdict(kind[user.id], beta[user.id], task.candidates, utility[task.item.id], page, rng)
                data = JudgmentIn(verdicts={OVERALL: answer}, seconds=5.0)
                key = f"{slug}-{task.assignment.id}"
                submit_judgment(
                    s, project=project, annotator=user, assignment_id=task.assignment.id, submit_key=key, data=data
                )
        project_id = project.id
    return World(project_id, k, kind, accuracy, utility)


def item_votes(db: Database, world: World) -> dict[int, tuple[int, dict[Pair, Votes]]]:
    """Item → (judgments, votes on each pair) on "overall", counted as the export counts them (implied pairs)."""
    with db.session(write=False) as s:
        positions = dict(
            s.execute(
                select(Candidate.id, Candidate.position).join(Item, Item.id == Candidate.item_id)
                .where(Item.project_id == world.project_id)
            ).tuples().all()
        )  # fmt: skip
        rows = s.execute(
            select(Judgment.item_id, VerdictRow.kind, VerdictRow.chosen_candidate_id, VerdictRow.rejected_candidate_id,
                   VerdictRow.ranking)
            .join(Judgment, Judgment.id == VerdictRow.judgment_id)
            .where(Judgment.project_id == world.project_id, VerdictRow.dimension == OVERALL)
        ).all()  # fmt: skip
    by_item: dict[int, list[Verdict]] = defaultdict(list)
    for item_id, kind, chosen, rejected, ranking in rows:
        c = positions[chosen] if chosen else None
        r = positions[rejected] if rejected else None
        by_item[item_id].append((kind, c, r, ranked_of(ranking, positions)))
    return {item_id: (len(v), count(tuple(v), world.k, MAJORITY.pairs)) for item_id, v in by_item.items()}


def exported(
    filters: ExportFilter, k: int, judgments: int, votes: dict[Pair, Votes], posterior: Any
) -> tuple[dict[Pair, int], dict[str, int]]:
    """The direction (FIRST / SECOND) of each pair of one item an export with ``filters`` keeps, by the export's
    own rules (``item_fate``, ``pair_fate``: only pairs with votes, as the export), and why the others go."""
    texts = {p: f"answer {p}" for p in range(k)}
    dropped: dict[str, int] = defaultdict(int)
    why = item_fate(filters, judgments=judgments, adjudicated=False, problematic=False, split="all")
    if why is not None:
        dropped[why] += len(votes)
        return {}, dropped
    kept = {}
    for pair in sorted(votes):
        reason, chosen_first = pair_fate(
            filters,
            pair,
            votes.get(pair) or NO_VOTES,
            decided={},
            veto_votes={},
            texts=texts,
            posterior=posterior(pair),
        )
        if reason is None:
            kept[pair] = FIRST if chosen_first else SECOND
        else:
            dropped[reason] += 1
    return kept, dropped


@dataclass
class Score:
    model: float  # accuracy over every pair with a true strict preference (unlabelled = wrong)
    majority: float
    model_coverage: float
    majority_coverage: float
    model_labelled: float  # accuracy on the pairs each method labels
    majority_labelled: float
    planted: float  # a reference: a vote weighted by each annotator's planted accuracy (log-odds)
    majority_dropped: dict[str, float]  # why the majority leaves pairs unlabelled: reason → share of all pairs
    auc: float  # reliability vs planted-good
    flagged: dict[str, tuple[int, int]]  # kind → (flagged, of how many)
    reliability: dict[str, tuple[float, float]]  # kind → (lowest, highest) reliability
    fit_ms: float


def score(db: Database, world: World) -> Score:
    """Fit the model and score both methods against the truth."""
    with db.session() as s:
        project = s.get(Project, world.project_id)
        assert project is not None
        fits = service.refresh(s, project=project, force=True)
        assert fits is not None
        fit = fits[OVERALL]
    votes = item_votes(db, world)
    pairs = [(i, j) for i in range(world.k) for j in range(i + 1, world.k)]
    right_model = right_majority = labelled_model = labelled_majority = 0
    dropped: dict[str, int] = defaultdict(int)
    for item_id, u in world.utility.items():
        judgments, on_item = votes.get(item_id, (0, {}))
        model, _ = exported(MODEL, world.k, judgments, on_item, lambda pair, i=item_id: fit.of(i, pair))
        majority, why = exported(MAJORITY, world.k, judgments, on_item, lambda pair: None)
        for reason, n in why.items():
            dropped[reason] += n
        labelled_model += len(model)
        labelled_majority += len(majority)
        for pair in pairs:
            truth = FIRST if u[pair[0]] > u[pair[1]] else SECOND
            right_model += int(model.get(pair) == truth)
            right_majority += int(majority.get(pair) == truth)
    total = len(world.utility) * len(pairs)
    planted = _weighted_by_planted(db, world, pairs) / total
    ids = sorted(fit.reliability)
    good = [world.kind[a] == "good" for a in ids]
    flagged: dict[str, tuple[int, int]] = {}
    spread: dict[str, tuple[float, float]] = {}
    for kind in ("spammer", "first", "good"):
        members = [a for a in ids if world.kind[a] == kind]
        spread[kind] = (min(fit.reliability[a] for a in members), max(fit.reliability[a] for a in members))
        hits = sum(stats.flagged(fit.reliability[a], fit.labels.get(a, 0)) for a in members)
        flagged[kind] = (hits, len(members))
    return Score(
        model=right_model / total,
        majority=right_majority / total,
        model_coverage=labelled_model / total,
        majority_coverage=labelled_majority / total,
        model_labelled=right_model / max(labelled_model, 1),
        majority_labelled=right_majority / max(labelled_majority, 1),
        planted=planted,
        majority_dropped={reason: n / total for reason, n in sorted(dropped.items())},
        auc=float(roc_auc_score(good, [fit.reliability[a] for a in ids])),
        flagged=flagged,
        reliability=spread,
        fit_ms=fit.fit_ms,
    )


def _weighted_by_planted(db: Database, world: World, pairs: list[tuple[int, int]]) -> int:
    """Pairs right by a vote weighted with each annotator's planted log-odds (0 for spammers and the clicker)."""
    with db.session(write=False) as s:
        project = s.get(Project, world.project_id)
        assert project is not None
        labels = load_labels(s, project=project)
    weight = {a: (np.log(p / (1 - p)) if world.kind[a] == "good" else 0.0) for a, p in world.accuracy.items()}
    w = np.array([weight[int(a)] for a in labels.annotator])
    sign = np.where(labels.label == FIRST, 1.0, np.where(labels.label == SECOND, -1.0, 0.0))
    keys, at = np.unique(labels.item * 8 + labels.pair, return_inverse=True)
    votes = dict(zip(keys.tolist(), np.bincount(at, weights=sign * w).tolist(), strict=True))
    right = 0
    for item_id, u in world.utility.items():
        for n, (i, j) in enumerate(pairs):
            v = votes.get(item_id * 8 + n, 0.0)
            right += int((v > 0 and u[i] > u[j]) or (v < 0 and u[i] < u[j]))
    return right


def open_database(url: str | None) -> Database:
    """The database to run in, migrated to head (a fresh SQLite file under /tmp by default)."""
    url = url or f"sqlite:///{tempfile.mkdtemp(prefix='labels-bench-')}/sim.db"
    command.upgrade(alembic_config(url), "head")
    settings = Settings(environment="test", database_url=url, secret_key="bench-secret-key-0123456789-0123456789")
    return make_database(settings)


def compare(db: Database, *, seeds: int, items: int, annotators: int, spammers: str, strength: bool) -> None:
    print(
        f"{items} items, {annotators} annotators, r = 3, {seeds} seeds, spammers: {spammers}"
        f"{', strength asked' if strength else ''}; accuracy over all pairs (coverage, on labelled)"
    )
    for k, mode in CONFIGS:
        scores = []
        for seed in range(seeds):
            world = simulate(
                db, seed=seed, k=k, mode=mode, items=items, annotators=annotators, spammers=spammers, strength=strength
            )
            scores.append(score(db, world))
            sc = scores[-1]
            flags = ", ".join(f"{kind} {a}/{b}" for kind, (a, b) in sc.flagged.items())
            print(
                f"  k={k} {mode:<10} seed {seed}: model {sc.model:.3f} ({sc.model_coverage:.2f}, "
                f"{sc.model_labelled:.3f})  majority {sc.majority:.3f} ({sc.majority_coverage:.2f}, "
                f"{sc.majority_labelled:.3f})  planted-weights vote {sc.planted:.3f}  AUC {sc.auc:.3f}  "
                f"flagged: {flags}  fit {sc.fit_ms:.0f} ms"
            )
        reasons = sorted({r for s in scores for r in s.majority_dropped})
        unlabelled = ", ".join(f"{r} {np.mean([s.majority_dropped.get(r, 0.0) for s in scores]):.3f}" for r in reasons)
        gain = 100 * np.mean([s.model - s.majority for s in scores])
        spam = sum(s.flagged["spammer"][0] for s in scores), sum(s.flagged["spammer"][1] for s in scores)
        first = sum(s.flagged["first"][0] for s in scores), len(scores)
        good = sum(s.flagged["good"][0] for s in scores), sum(s.flagged["good"][1] for s in scores)
        print(
            f"k={k} {mode}: model {np.mean([s.model for s in scores]):.3f} vs majority "
            f"{np.mean([s.majority for s in scores]):.3f}: {gain:+.1f} points (target +5: "
            f"{'met' if gain >= 5 else 'not met'}; planted-weights vote {100 * np.mean([s.planted - s.majority for s in scores]):+.1f}); AUC min {min(s.auc for s in scores):.3f}; flagged spammers "
            f"{spam[0]}/{spam[1]}, always-first {first[0]}/{first[1]}, accurate {good[0]}/{good[1]}"
        )
        print(f"    majority leaves unlabelled (share of all pairs): {unlabelled or 'none'}")
        for kind in ("spammer", "first", "good"):
            low = min(s.reliability[kind][0] for s in scores)
            high = max(s.reliability[kind][1] for s in scores)
            print(f"    reliability of {kind}: {low:.2f}–{high:.2f}")


SPEED_ANNOTATORS = 30
SPEED_DIMS = [OVERALL, *(d["key"] for d in DEFAULT_DIMENSIONS)]


def fill(db: Database, judgments: int) -> int:
    """A k = 2 project with ``judgments`` judgments (each item by 3 of 30 annotators) × 6 dimensions, written as
    rows (COPY on PostgreSQL); reused while one of that size exists. Returns its id."""
    slug = f"labels-speed-{judgments}"
    with db.session() as s:
        found = s.scalar(select(Project.id).where(Project.slug == slug))
        if found is not None:
            return int(found)
    rng = np.random.default_rng(7)
    items = judgments // 3
    now = stamp(db, datetime.now(UTC))
    with db.session() as s:
        password = hash_password("sim-password")
        users = [User(username=f"{slug}-{i:02d}", password_hash=password) for i in range(SPEED_ANNOTATORS)]
        s.add_all(users)
        project = Project(slug=slug, name=slug, k=2, overlap=3, gold_share=0.0)
        s.add(project)
        s.flush()
        s.add_all([ProjectMember(project_id=project.id, user_id=u.id) for u in users])
        project_id, user_ids = project.id, [u.id for u in users]
        base = {t: (s.scalar(select(func.max(m.id))) or 0) for t, m in BASES.items()}
    t0 = time.perf_counter()
    item_ids = base["item"] + 1 + np.arange(items)
    copy_rows(db, "item", ITEM_COLUMNS, (
        (int(i), project_id, f'"{slug} {i}"', f"{slug}-{i}", "{}", False, "ready", 0, 3, 3, now) for i in item_ids
    ))  # fmt: skip
    copy_rows(db, "candidate", ["id", "item_id", "round", "position", "text", "params", "created_at"], (
        (base["candidate"] + 2 * n + p + 1, int(i), 0, p, f"answer {p}", "{}", now)
        for n, i in enumerate(item_ids) for p in (0, 1)
    ))  # fmt: skip
    raters = np.argsort(rng.random((items, SPEED_ANNOTATORS)), axis=1)[:, :3].ravel()
    n = items * 3
    flipped = rng.random(n) < 0.5
    good = np.array([rng.uniform(0.75, 0.9) for _ in range(SPEED_ANNOTATORS)])
    truth = rng.random((len(SPEED_DIMS), items)) < 0.5  # True: position 1 is better
    right = rng.random((len(SPEED_DIMS), n)) < good[raters]
    judgment_ids = base["judgment"] + 1 + np.arange(n)
    assignment_ids = base["assignment"] + 1 + np.arange(n)

    def candidate(j: int, position: int) -> int:
        return int(base["candidate"] + 2 * (j // 3) + position + 1)

    copy_rows(db, "assignment", ASSIGNMENT_COLUMNS, (
        (int(assignment_ids[j]), project_id, int(item_ids[j // 3]), user_ids[raters[j]], 0, "submitted",
         f"[{candidate(j, int(flipped[j]))}, {candidate(j, 1 - int(flipped[j]))}]", now, now, now)
        for j in range(n)
    ))  # fmt: skip
    copy_rows(db, "judgment", JUDGMENT_COLUMNS, (
        (int(judgment_ids[j]), project_id, int(item_ids[j // 3]), user_ids[raters[j]], int(assignment_ids[j]), 0,
         "", False, False, 5.0, f"{slug}-{j}", 1, now, now)
        for j in range(n)
    ))  # fmt: skip

    def verdicts() -> Any:
        vid = base["verdict"]
        for d, dim in enumerate(SPEED_DIMS):
            for j in range(n):
                vid += 1
                second = bool(truth[d, j // 3]) == bool(right[d, j])  # the verdict says position 1 is better
                win, lose = candidate(j, int(second)), candidate(j, 1 - int(second))
                yield (vid, int(judgment_ids[j]), dim, "preference", win, lose)

    copy_rows(db, "verdict", VERDICT_COLUMNS, verdicts())
    finish_fill(db, project_id)
    print(f"filled {n:,} judgments × {len(SPEED_DIMS)} dimensions in {time.perf_counter() - t0:.0f} s")
    return project_id


BASES = {"item": Item, "candidate": Candidate, "assignment": Assignment, "judgment": Judgment, "verdict": VerdictRow}


def time_fit(db: Database, *, judgments: int) -> None:
    """Fit every dimension of a filled project (loading included), three times (the first one starts the process
    pool); print the best and the parts, and the machine's load."""
    project_id = fill(db, judgments)
    best = float("inf")
    for _ in range(3):
        with db.session() as s:
            project = s.get(Project, project_id)
            assert project is not None
            t0 = time.perf_counter()
            labels = load_labels(s, project=project)
            t1 = time.perf_counter()
            fits = service.fit_labels(labels, SPEED_DIMS, source="bench", k=2)
            t2 = time.perf_counter()
        best = min(best, t2 - t0)
        print(f"  load {t1 - t0:.2f} s ({len(labels.label):,} pair labels), fit {t2 - t1:.2f} s "
              f"({len(fits)} dimensions, {'in processes' if len(labels.label) >= pool.PARALLEL_MIN_LABELS else 'in turn'})")  # fmt: skip
    print(f"fit on {judgments:,} judgments × {len(SPEED_DIMS)} dimensions ({db.url.split(':')[0]}): "
          f"{best:.2f} s, loading included (target < 10 s); {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--items", type=int, default=150)
    parser.add_argument("--annotators", type=int, default=10)
    parser.add_argument(
        "--spammers",
        choices=SPAMMERS,
        default="any",
        help="any: a random clicker (any answer the page offers, ties included); preference: random, never a tie",
    )
    parser.add_argument("--strength", action="store_true", help="the k = 2 project asks how much better")
    parser.add_argument("--size", type=int, default=0, help="also time the fit on this many judgments × 6 dims")
    parser.add_argument("--full", action="store_true", help="--size 1000000")
    parser.add_argument("--skip-compare", action="store_true")
    args = parser.parse_args()
    db = open_database(os.environ.get("PREFSTUDIO_DATABASE_URL"))
    try:
        if not args.skip_compare:
            compare(
                db,
                seeds=args.seeds,
                items=args.items,
                annotators=args.annotators,
                spammers=args.spammers,
                strength=args.strength,
            )
        size = 1_000_000 if args.full else args.size
        if size:
            time_fit(db, judgments=size)
    finally:
        db.dispose()


if __name__ == "__main__":
    main()
