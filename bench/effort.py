"""The same label accuracy for fewer human judgments, measured: a flat overlap against a judge-guided queue
(uncertain first, adaptive overlap), on simulated annotation with a known truth, run through the real service layer.

The planted world is that of ``bench/labels.py`` (its defaults, its planting code): a k = 2 project, every
candidate a standard normal utility on each dimension ("overall" and three of the default ones, independent),
annotators of whom 20 % are random clickers (A, B or tie), one always picks what is shown first and the rest are
accurate to 75–90 % on a pair (a Bradley–Terry draw, sharper the further apart the candidates are). An annotator
answers every dimension of an item they take.

A simulated judge answers before anyone annotates. Per dimension it has its own accuracy (``JUDGE_ACCURACY``: 0.9
on "helpful", 0.8 on "overall", 0.75 on "harmless", 0.6 on "honest"), drawn like an annotator's: each of the two
orders it is asked in (A/B swapped) picks the better candidate with probability q = σ(β |Δu|), β chosen so that
q averages to that accuracy. It answers each order with probability q — its confidence is informative: the
clearer the pair, the surer and the more often right. Both orders agreeing give a "preference" suggestion with
confidence q (the mean of the two orders' answer probabilities, as the judge job computes it from logprobs);
disagreeing ones an "unsure" suggestion (confidence 0). ``Item.judge_confidence`` is the mean over the item's
dimensions. The suggestions are stored as ``Suggestion`` rows of the project's judge (``project.judge``).

Two arms on the same planted world (the same seed: the same utilities, annotators and judge verdicts; an
annotator gives the same answers to an item in both arms, drawn from (seed, item, annotator)):

- (a) flat: r = 3, ``queue_order`` fullest_first;
- (b) adaptive: ``queue_order`` uncertain_first, r_min (``overlap_min``) .. r_max (``overlap``), and the project's
  ``adaptive_margin`` — the queue reopens an item whose votes disagree or whose human majority goes against a
  confident judge.

Annotators take items through the queue (``assign_next_item``) in random turns and submit (``submit_judgment``)
until it is empty. Scored: label accuracy = the share of (item, dimension) pairs whose majority label, by the
export's rule (``bench.labels.exported``: drop ties, a level vote leaves the pair unlabelled, counted wrong),
equals the truth; human judgments = Judgment rows. Also shown, "(b)+judge": (b)'s labels with the judge's
confident suggestion (≥ ``CONFIDENT``) where the humans leave a pair unlabelled.

    python bench/effort.py                                    # 300 items, 10 annotators, 5 seeds (a few minutes)
    python bench/effort.py --items 100 --seeds 2 --r-min 1 --r-max 5 --margin 0.5   # the first design
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import expit
from sqlalchemy import select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.annotation.judgments import submit_judgment  # noqa: E402
from app.annotation.queue import Task, assign_next_item  # noqa: E402
from app.annotation.schemas import JudgmentIn, VerdictIn  # noqa: E402
from app.db import Database  # noqa: E402
from app.export.pairs import FIRST, SECOND, Verdict, count, ranked_of  # noqa: E402
from app.judge.repository import judge_name  # noqa: E402
from app.models import DEFAULT_DIMENSIONS, OVERALL, Candidate, Item, Judgment, Project, ProjectMember, Suggestion, User  # noqa: E402
from app.models import Verdict as VerdictRow  # noqa: E402
from bench.labels import MAJORITY, Page, _people, _verdict, exported, open_database, sharpness_for  # noqa: E402

DIMENSIONS = DEFAULT_DIMENSIONS[:3]  # helpful, harmless, honest
DIMENSION_KEYS = [OVERALL, *(d["key"] for d in DIMENSIONS)]
# The judge's accuracy on one order asked, by dimension: strong on one, middling on another, weak on a third.
JUDGE_ACCURACY = {OVERALL: 0.8, "helpful": 0.9, "harmless": 0.75, "honest": 0.6}
JUDGE = {"model": "sim-judge", "base_url": "http://judge.invalid/v1"}
CONFIDENT = 0.8  # the judge confidence at which the queue (and "(b)+judge") trusts a suggestion
PAGE = Page(ranks=False, strength=False, spammers="any")  # bench/labels.py's default: random clickers press tie
PAIR = (0, 1)


@dataclass(frozen=True)
class Arm:
    """A project's queue settings: r (r_max when adaptive), r_min (None: flat), order and reopening margin."""

    name: str
    overlap: int
    overlap_min: int | None = None
    queue_order: str = "fullest_first"
    adaptive_margin: float = 0.5


@dataclass(frozen=True)
class JudgeAnswer:
    """The judge on one item and dimension: the position it picked in each order, and its probability q."""

    picks: tuple[int, int]
    q: float

    @property
    def sure(self) -> bool:
        return self.picks[0] == self.picks[1]

    @property
    def confidence(self) -> float:
        return self.q if self.sure else 0.0


@dataclass
class Planted:
    """A seed's world: utilities of positions 0 and 1 by item and dimension, and the judge's answers."""

    seed: int
    utility: list[dict[str, tuple[float, float]]]
    judge: list[dict[str, JudgeAnswer]]

    def truth(self, n: int, dim: str) -> int:
        u = self.utility[n][dim]
        return FIRST if u[0] > u[1] else SECOND


def plant(seed: int, items: int) -> Planted:
    """The true utilities and the judge's answers of one seed."""
    rng = np.random.default_rng([seed, 0])
    beta = {dim: sharpness_for(a) for dim, a in JUDGE_ACCURACY.items()}
    utility: list[dict[str, tuple[float, float]]] = []
    judge: list[dict[str, JudgeAnswer]] = []
    for _ in range(items):
        u = {dim: (float(rng.normal()), float(rng.normal())) for dim in DIMENSION_KEYS}
        utility.append(u)
        answers = {}
        for dim in DIMENSION_KEYS:
            better = 0 if u[dim][0] > u[dim][1] else 1
            q = float(expit(beta[dim] * abs(u[dim][0] - u[dim][1])))
            picks = tuple(better if rng.random() < q else 1 - better for _ in range(2))
            answers[dim] = JudgeAnswer(picks=(picks[0], picks[1]), q=q)
        judge.append(answers)
    return Planted(seed=seed, utility=utility, judge=judge)


@dataclass
class Outcome:
    """One arm on one seed."""

    accuracy: float  # (item, dimension) pairs whose majority label is the truth; unlabelled counts wrong
    judgments: int  # human Judgment rows
    with_judge: float  # the same, the judge's confident suggestion filling pairs the humans leave unlabelled
    by_dimension: dict[str, float] = field(default_factory=dict)
    per_item: dict[int, int] = field(default_factory=dict)  # judgments on an item → how many items


def make_project(session: Any, planted: Planted, arm: Arm, slug: str) -> tuple[Project, dict[int, int]]:
    """The project with the arm's settings, its items and candidates, and the judge's suggestions; returns the
    project and item id → item number."""
    project = Project(
        slug=slug, name=slug, k=2, overlap=arm.overlap, overlap_min=arm.overlap_min, queue_order=arm.queue_order,
        adaptive_margin=arm.adaptive_margin, dimensions=list(DIMENSIONS), gold_share=0.0, judge={"judges": [JUDGE]},
    )  # fmt: skip
    session.add(project)
    session.flush()
    number: dict[int, int] = {}
    for n in range(len(planted.utility)):
        prompt = f"{slug} prompt {n}"
        item = Item(
            project_id=project.id,
            prompt=prompt,
            prompt_hash=hashlib.sha256(prompt.encode()).hexdigest(),
            status="ready",
        )
        session.add(item)
        session.flush()
        candidates = [Candidate(item_id=item.id, position=p, text=f"answer {p}", model="sim") for p in (0, 1)]
        session.add_all(candidates)
        session.flush()
        _suggest(session, project, item, candidates, planted.judge[n])
        number[item.id] = n
    session.flush()
    return project, number


def _suggest(
    session: Any, project: Project, item: Item, candidates: list[Candidate], answers: dict[str, JudgeAnswer]
) -> None:
    """The judge's suggestions on one item (canonical candidate ids) and the item's judge confidence."""
    ids = [c.id for c in candidates]
    for dim, answer in answers.items():
        shown = [[ids[0], ids[1]], [ids[1], ids[0]]]  # order 0 shows position 0 as A, order 1 position 1
        orders = [
            {"shown": s, "answer": "A" if s[0] == ids[pick] else "B", "p": answer.q}
            for s, pick in zip(shown, answer.picks, strict=True)
        ]
        chosen = ids[answer.picks[0]] if answer.sure else None
        session.add(
            Suggestion(
                project_id=project.id,
                item_id=item.id,
                round=item.round,
                dimension=dim,
                judge=judge_name(JUDGE["model"], JUDGE["base_url"]),
                model=JUDGE["model"],
                base_url=JUDGE["base_url"],
                prompt_version="sim",
                kind="preference" if answer.sure else "unsure",
                chosen_candidate_id=chosen,
                rejected_candidate_id=None if chosen is None else ids[1 - answer.picks[0]],
                confidence=answer.confidence,
                orders=orders,
            )
        )
    item.judge_confidence = float(np.mean([a.confidence for a in answers.values()]))


def annotate(db: Database, planted: Planted, arm: Arm, annotators: int) -> int:
    """Make the arm's project on the planted world and let the annotators empty its queue; returns its id."""
    random.seed(planted.seed)  # the queue shuffles each display order with the random module
    slug = f"effort-{planted.seed}-{arm.name}-{os.getpid()}-{time.monotonic_ns() % 10**6}"
    with db.session() as s:
        users, kind, accuracy = _people(s, slug, annotators, np.random.default_rng([planted.seed, 1]))
        index = {u.id: i for i, u in enumerate(users)}
        beta = {uid: sharpness_for(a) if kind[uid] == "good" else 0.0 for uid, a in accuracy.items()}
        project, number = make_project(s, planted, arm, slug)

        def answer(user: User, task: Task) -> dict[str, VerdictIn]:
            n = number[task.item.id]
            # The same annotator answers the same item alike in every arm (its own stream of draws).
            rng = np.random.default_rng([planted.seed, 3, n, index[user.id]])
            u = planted.utility[n]
            return {dim: _verdict(kind[user.id], beta[user.id], task.candidates, list(u[dim]), PAGE, rng)
                    for dim in DIMENSION_KEYS}  # fmt: skip

        empty_queue(s, project=project, users=users, answer=answer, turns=np.random.default_rng([planted.seed, 2]))
        return project.id


def empty_queue(
    session: Any,
    *,
    project: Project,
    users: list[User],
    answer: Callable[[User, Task], dict[str, VerdictIn]],
    turns: np.random.Generator,
) -> None:
    """The users (made members) take items from the queue in random turns and submit ``answer``'s verdicts, until
    it has nothing left for any of them."""
    session.add_all([ProjectMember(project_id=project.id, user_id=u.id) for u in users])
    session.flush()
    active = list(users)
    while active:
        for at in turns.permutation(len(active)):
            user = active[int(at)]
            task = assign_next_item(session, project=project, annotator=user)
            if task is None:
                active = [u for u in active if u.id != user.id]
                break
            submit_judgment(
                session,
                project=project,
                annotator=user,
                assignment_id=task.assignment.id,
                submit_key=f"{project.slug}-{task.assignment.id}",
                data=JudgmentIn(verdicts=answer(user, task), seconds=5.0),
            )


def votes_by_pair(db: Database, project_id: int) -> tuple[dict[int, int], dict[tuple[int, str], list[Verdict]]]:
    """Item id → human judgments, and (item id, dimension) → its verdicts in canonical positions."""
    with db.session(write=False) as s:
        positions = dict(
            s.execute(
                select(Candidate.id, Candidate.position).join(Item, Item.id == Candidate.item_id)
                .where(Item.project_id == project_id)
            ).tuples().all()
        )  # fmt: skip
        rows = s.execute(
            select(Judgment.item_id, Judgment.id, VerdictRow.dimension, VerdictRow.kind,
                   VerdictRow.chosen_candidate_id, VerdictRow.rejected_candidate_id, VerdictRow.ranking)
            .join(Judgment, Judgment.id == VerdictRow.judgment_id)
            .where(Judgment.project_id == project_id)
        ).all()  # fmt: skip
    judgments: dict[int, set[int]] = defaultdict(set)
    verdicts: dict[tuple[int, str], list[Verdict]] = defaultdict(list)
    for item_id, judgment_id, dim, kind, chosen, rejected, ranking in rows:
        judgments[item_id].add(judgment_id)
        c = positions[chosen] if chosen else None
        r = positions[rejected] if rejected else None
        verdicts[(item_id, dim)].append((kind, c, r, ranked_of(ranking, positions)))
    return {i: len(j) for i, j in judgments.items()}, verdicts


def majority_label(judgments: int, verdicts: list[Verdict]) -> int | None:
    """FIRST / SECOND as the export's majority labels the pair, None when it leaves it unlabelled."""
    if not verdicts:
        return None
    kept, _ = exported(MAJORITY, 2, judgments, count(tuple(verdicts), 2, MAJORITY.pairs), lambda _pair: None)
    return kept.get(PAIR)


def judge_label(answer: JudgeAnswer) -> int | None:
    """The judge's suggestion as a label, where it is sure and confident."""
    if not answer.sure or answer.q < CONFIDENT:
        return None
    return FIRST if answer.picks[0] == 0 else SECOND


def score(db: Database, planted: Planted, project_id: int) -> Outcome:
    """Label accuracy against the truth, and the human judgments it took."""
    per_item, verdicts = votes_by_pair(db, project_id)
    with db.session(write=False) as s:
        ids = s.scalars(select(Item.id).where(Item.project_id == project_id).order_by(Item.id)).all()
    right: dict[str, int] = defaultdict(int)
    filled = 0
    for n, item_id in enumerate(ids):
        for dim in DIMENSION_KEYS:
            label = majority_label(per_item.get(item_id, 0), verdicts.get((item_id, dim), []))
            truth = planted.truth(n, dim)
            right[dim] += int(label == truth)
            fallback = label if label is not None else judge_label(planted.judge[n][dim])
            filled += int(fallback == truth)
    total = len(ids) * len(DIMENSION_KEYS)
    histogram: dict[int, int] = defaultdict(int)
    for item_id in ids:
        histogram[per_item.get(item_id, 0)] += 1
    return Outcome(
        accuracy=sum(right.values()) / total,
        judgments=sum(per_item.values()),
        with_judge=filled / total,
        by_dimension={dim: right[dim] / len(ids) for dim in DIMENSION_KEYS},
        per_item=dict(sorted(histogram.items())),
    )


def run_seed(db: Database, *, seed: int, items: int, annotators: int, arms: list[Arm]) -> list[Outcome]:
    """Every arm on one seed's planted world."""
    planted = plant(seed, items)
    return [score(db, planted, annotate(db, planted, arm, annotators)) for arm in arms]


def judge_report(seeds: int, items: int) -> None:
    """The planted judge: accuracy of its suggestions and how often it is unsure, by dimension, and its
    calibration (accuracy by confidence)."""
    worlds = [plant(seed, items) for seed in range(seeds)]
    parts = []
    for dim in DIMENSION_KEYS:
        answers = [(w.judge[n][dim], w.truth(n, dim)) for w in worlds for n in range(items)]
        sure = [(a, t) for a, t in answers if a.sure]
        right = np.mean([(FIRST if a.picks[0] == 0 else SECOND) == t for a, t in sure])
        parts.append(f"{dim} {JUDGE_ACCURACY[dim]:.2f}/order → {right:.3f} on {len(sure) / len(answers):.0%} sure")
    print("judge (accuracy of a sure suggestion, share sure): " + "; ".join(parts))
    bins = np.array([0.5, 0.6, 0.7, 0.8, 0.9, 1.01])
    hits: dict[int, list[bool]] = defaultdict(list)
    for w in worlds:
        for n in range(items):
            for dim, a in w.judge[n].items():
                if a.sure:
                    hits[int(np.searchsorted(bins, a.q, side="right")) - 1].append(
                        (FIRST if a.picks[0] == 0 else SECOND) == w.truth(n, dim)
                    )
    cells = [
        f"{bins[b]:.1f}–{min(bins[b + 1], 1.0):.1f}: {np.mean(h):.3f} (n {len(h)})" for b, h in sorted(hits.items())
    ]
    print("judge calibration, accuracy by confidence: " + "; ".join(cells))


def compare(db: Database, *, seeds: int, items: int, annotators: int, adaptive: Arm) -> dict[str, float]:
    """Both arms over ``seeds`` seeds, printed side by side; returns the means."""
    flat = Arm(name="flat", overlap=3)
    print(
        f"{items} items × {len(DIMENSION_KEYS)} dimensions (k = 2), {annotators} annotators, {seeds} seeds; "
        f"(a) flat r = 3 fullest_first; (b) {adaptive.queue_order} r_min {adaptive.overlap_min} .. r_max "
        f"{adaptive.overlap}, margin {adaptive.adaptive_margin}"
    )
    judge_report(seeds, items)
    results = []
    for seed in range(seeds):
        t0 = time.perf_counter()
        a, b = run_seed(db, seed=seed, items=items, annotators=annotators, arms=[flat, adaptive])
        results.append((a, b))
        print(
            f"  seed {seed}: (a) accuracy {a.accuracy:.3f}, {a.judgments} judgments | (b) accuracy {b.accuracy:.3f}, "
            f"{b.judgments} judgments ({b.judgments / a.judgments:.2f} × (a)), (b)+judge {b.with_judge:.3f}; "
            f"(b) judgments per item {b.per_item}  [{time.perf_counter() - t0:.0f} s]"
        )
    means = {
        "a_accuracy": float(np.mean([a.accuracy for a, _ in results])),
        "b_accuracy": float(np.mean([b.accuracy for _, b in results])),
        "b_with_judge": float(np.mean([b.with_judge for _, b in results])),
        "a_judgments": float(np.mean([a.judgments for a, _ in results])),
        "b_judgments": float(np.mean([b.judgments for _, b in results])),
    }
    ratio = means["b_judgments"] / means["a_judgments"]
    for dim in DIMENSION_KEYS:
        da = np.mean([a.by_dimension[dim] for a, _ in results])
        db_ = np.mean([b.by_dimension[dim] for _, b in results])
        print(f"    {dim:<9} (a) {da:.3f}  (b) {db_:.3f}")
    met = means["b_accuracy"] >= means["a_accuracy"] and ratio <= 0.7
    print(
        f"mean of {seeds}: (a) accuracy {means['a_accuracy']:.3f} with {means['a_judgments']:.0f} judgments | "
        f"(b) accuracy {means['b_accuracy']:.3f} with {means['b_judgments']:.0f} judgments = {ratio:.2f} × (a) "
        f"| (b)+judge {means['b_with_judge']:.3f}; target (b) ≥ (a) with ≤ 0.70 × its judgments: "
        f"{'met' if met else 'not met'}"
    )
    return means


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--annotators", type=int, default=10)
    parser.add_argument("--r-min", type=int, default=1, help="(b): judgments every item gets")
    parser.add_argument("--r-max", type=int, default=5, help="(b): the most an item gets when reopened")
    parser.add_argument("--margin", type=float, default=0.3, help="(b): reopen while a vote margin is below this")
    parser.add_argument("--order", choices=("uncertain_first", "fullest_first"), default="uncertain_first")
    args = parser.parse_args()
    adaptive = Arm(
        name="adaptive",
        overlap=args.r_max,
        overlap_min=args.r_min,
        queue_order=args.order,
        adaptive_margin=args.margin,
    )
    db = open_database(os.environ.get("PREFSTUDIO_DATABASE_URL"))
    try:
        compare(db, seeds=args.seeds, items=args.items, annotators=args.annotators, adaptive=adaptive)
    finally:
        db.dispose()


if __name__ == "__main__":
    main()
