"""The assignment queue as a state machine: random sequences of claim, submit, retry, key reuse, skip, expire, sweep,
edit and regeneration (an admin giving an item new candidates: a new round) by several annotators, with the queue's
invariants checked in the database after every step.

Projects with and without adaptive overlap (r_min..r_max, items reopened while their votes disagree; the rules'
choices agree and disagree) and in both queue orders. Invariants, for each item's current round: at most r
judgments and claims ≤ its effective target ≤ r_max, a complete item has at least r_min judgments, and its claims
are exactly its live leases plus its judgments, as its judgment count is its judgments; no lease open on an old
round. An annotator holds at most one lease and judges an item's round at most once; a leased assignment has no
judgment and every judgment's assignment is "submitted"; a submitted judgment is never lost, and it holds the last
accepted edit; each annotator's tally counts their judgments. Each rule also checks its own outcome (a stale edit
is refused, a true retry returns the same judgment and any other use of its key is refused, a submit for a
regenerated round is refused, claim finds work while there is some for this annotator, ...)."""

from __future__ import annotations

import itertools
import os
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select, update

from app.annotation.dimensions import dimension_keys
from app.annotation.judgments import Superseded, edit_judgment, submit_judgment
from app.annotation.overlap import effective_target, has_room
from app.annotation.queue import assign_next_item, expire_leases, skip_assignment
from app.annotation.schemas import JudgmentIn, VerdictIn
from app.db import Database
from app.generation.service import store_candidates
from app.kit.errors import Conflict
from app.models import AnnotatorTally, Assignment, Candidate, Item, Judgment, Project, User, Verdict, utcnow
from tests.annotation.helpers import regenerated_samples
from tests.factories import make_items, make_project, make_user

EXAMPLES = int(os.environ.get("PREFSTUDIO_QUEUE_EXAMPLES", "50"))
_machines = itertools.count(1)


def _verdicts(project: Project, candidate_ids: list[int], choice: int, *, all_bad: bool = False) -> JudgmentIn:
    """A judgment: 0 = the first canonical candidate preferred, 1 = the last one, 2 = a tie (on every dimension)."""
    first, last = sorted(candidate_ids)[0], sorted(candidate_ids)[-1]
    if choice == 2:
        verdict = VerdictIn(kind="tie")
    else:
        chosen, rejected = (first, last) if choice == 0 else (last, first)
        verdict = VerdictIn(kind="preference", chosen=chosen, rejected=rejected)
    return JudgmentIn(
        verdicts=dict.fromkeys(dimension_keys(project), verdict), reason=f"choice {choice}", all_bad=all_bad
    )


def _overall(data: JudgmentIn) -> tuple[str, int | None]:
    verdict = data.verdicts["overall"]
    return verdict.kind, verdict.chosen


def _candidates(s: Any, item_id: int, round_: int) -> list[int]:
    return list(s.scalars(select(Candidate.id).where(Candidate.item_id == item_id, Candidate.round == round_)))


class Queue(RuleBasedStateMachine):
    leases = Bundle("leases")  # (annotator index, assignment id) of every claim that got an item
    judgments = Bundle("judgments")  # ids of the judgments the service reported as created

    def __init__(self, db: Database) -> None:
        super().__init__()
        self.db = db
        self.project_id = 0
        self.overlap = 0
        self.overlap_min: int | None = None
        self.annotators: list[int] = []
        # What the service accepted, to compare with the database:
        # judgment id -> (annotator, item, overall verdict (kind, chosen candidate), version)
        self.judgments: dict[int, tuple[int, int, tuple[str, int | None], int]] = {}
        self.keys: dict[int, str] = {}  # judgment id -> its submit key
        self.bodies: dict[int, JudgmentIn] = {}  # judgment id -> the answer first sent under its key
        self.items: list[int] = []
        self.skipped: set[int] = set()  # assignments skipped: never offered again

    # Few items for the annotators: leases lapse into items that others have filled meanwhile.
    @initialize(
        overlap=st.integers(1, 3),
        items=st.integers(1, 3),
        annotators=st.integers(2, 4),
        overlap_min=st.one_of(st.none(), st.integers(1, 3)),
        margin=st.sampled_from([0.0, 0.5, 1.0]),
    )
    def setup(self, overlap: int, items: int, annotators: int, overlap_min: int | None, margin: float) -> None:
        """A project with or without adaptive overlap (r_min..r, reopened below ``margin``)."""
        n = next(_machines)
        overlap_min = min(overlap_min, overlap) if overlap_min is not None else None
        with self.db.session() as s:
            users = [make_user(s, f"q{n}-ann{i}") for i in range(annotators)]
            project = make_project(
                s,
                f"queue-{n}",
                k=2,
                overlap=overlap,
                members=users,
                overlap_min=overlap_min,
                adaptive_margin=margin,
                queue_order="uncertain_first" if n % 2 else "fullest_first",
            )
            self.items = [item.id for item in make_items(s, project, items)]
            self.project_id, self.overlap, self.annotators = project.id, overlap, [u.id for u in users]
            self.overlap_min = overlap_min

    def _ctx(self, s: Any, who: int) -> tuple[Project, User]:
        project, user = s.get(Project, self.project_id), s.get(User, self.annotators[who % len(self.annotators)])
        assert project is not None and user is not None
        return project, user

    def _status(self, assignment_id: int) -> tuple[str, int, bool]:
        """An assignment's status, its item's claims below its effective target (negative: room) and whether its
        round was regenerated since, as they are before a rule acts."""
        with self.db.session(write=False) as s:
            assignment = s.get(Assignment, assignment_id)
            assert assignment is not None
            item = s.get(Item, assignment.item_id)
            project = s.get(Project, self.project_id)
            assert item is not None and project is not None
            wanted = effective_target(project, item.target)
            return assignment.status, item.claims - wanted, assignment.round != item.round

    # --- rules ---------------------------------------------------------------------------------------------

    @rule(target=leases, who=st.integers(0, 3))
    def claim(self, who: int) -> Any:
        with self.db.session() as s:
            project, user = self._ctx(s, who)
            task = assign_next_item(s, project=project, annotator=user)
            if task is None:
                # Nothing left for this annotator: every item with room is one they already had.
                had = (
                    select(Assignment.id)
                    .where(
                        Assignment.item_id == Item.id,
                        Assignment.round == Item.round,
                        Assignment.annotator_id == user.id,
                        Assignment.status != "expired",
                    )
                    .exists()
                )
                open_items = s.scalars(
                    select(Item.id).where(Item.project_id == project.id, has_room(project), ~had)
                ).all()
                assert not open_items, f"claim found nothing, yet items {open_items} have room for this annotator"
                return multiple()
            assert task.assignment.status == "leased" and task.assignment.annotator_id == user.id
            assert task.assignment.id not in self.skipped, "a skipped item was offered again to the one who skipped it"
            earlier = s.scalar(
                select(func.count())
                .select_from(Judgment)
                .where(
                    Judgment.item_id == task.item.id,
                    Judgment.round == task.item.round,
                    Judgment.annotator_id == user.id,
                )
            )
            assert earlier == 0, "an item's round was handed to an annotator who already judged it"
            assert task.assignment.round == task.item.round, "a lease on an old round was handed out"
            return (who, task.assignment.id)

    @rule(target=judgments, lease=leases, choice=st.integers(0, 2), all_bad=st.booleans())
    def submit(self, lease: tuple[int, int], choice: int, all_bad: bool) -> Any:
        """Submit for a lease of mine, whatever became of it (leased, lapsed, skipped, already submitted, its item
        regenerated)."""
        who, assignment_id = lease
        status_before, claims_before, superseded = self._status(assignment_id)
        key = f"key-{self.project_id}-{len(self.keys)}-{assignment_id}"
        try:
            with self.db.session() as s:
                project, user = self._ctx(s, who)
                assignment = s.get(Assignment, assignment_id)
                assert assignment is not None
                sent = _verdicts(project, _candidates(s, assignment.item_id, assignment.round), choice, all_bad=all_bad)
                judgment, created = submit_judgment(
                    s, project=project, annotator=user, assignment_id=assignment_id, submit_key=key, data=sent
                )
                jid, item_id = judgment.id, judgment.item_id
        except Superseded:
            assert superseded and status_before == "expired", f"a {status_before} assignment was called superseded"
            return multiple()
        except Conflict:
            assert status_before in ("skipped", "expired"), f"a {status_before} assignment's submission was refused"
            if status_before == "expired":
                assert claims_before >= 0, "a lapsed lease was refused although the item had room"
            return multiple()
        assert not (superseded and created), "a judgment was stored for a regenerated round"
        assert status_before != "skipped", "a skipped item was judged"
        if not created:
            assert status_before == "submitted" and jid in self.judgments, "a repeated submission made a new judgment"
            return multiple()
        assert status_before in ("leased", "expired") and jid not in self.judgments
        self.judgments[jid] = (self.annotators[who % len(self.annotators)], item_id, _overall(sent), 1)
        self.keys[jid] = key
        self.bodies[jid] = sent
        return jid

    @rule(jid=judgments, same=st.booleans(), choice=st.integers(0, 2))
    def retry(self, jid: int, same: bool, choice: int) -> None:
        """A double-click or a retry with the same submit key and answer returns the stored judgment, unchanged;
        the key with another answer is refused."""
        annotator = self.judgments[jid][0]
        sent = self.bodies[jid]
        with self.db.session(write=False) as s:
            project, _ = self._ctx(s, self.annotators.index(annotator))
            judgment = s.get(Judgment, jid)
            assert judgment is not None
            assignment_id = judgment.assignment_id
            other = _verdicts(project, _candidates(s, judgment.item_id, judgment.round), choice)
        same = same or other == sent
        try:
            with self.db.session() as s:
                project, user = self._ctx(s, self.annotators.index(annotator))
                again, created = submit_judgment(
                    s,
                    project=project,
                    annotator=user,
                    assignment_id=assignment_id,
                    submit_key=self.keys[jid],
                    data=sent if same else other,
                )
                answered = (again.id, created)
        except Conflict:
            assert not same, "a true retry was refused"
            return
        assert same, "a submit key was answered for a different answer"
        assert answered == (jid, False)  # (the invariant checks that the stored verdicts did not change)

    @rule(lease=leases, jid=judgments, choice=st.integers(0, 2))
    def reuse_key(self, lease: tuple[int, int], jid: int, choice: int) -> None:
        """A judgment's submit key sent with another lease: refused, and that lease is left as it was."""
        who, assignment_id = lease
        status_before, _, _ = self._status(assignment_id)
        with self.db.session(write=False) as s:
            assignment = s.get(Assignment, assignment_id)
            judgment = s.get(Judgment, jid)
            assert assignment is not None and judgment is not None
            if judgment.assignment_id == assignment_id:
                return  # that is a retry (the rule above)
        try:
            with self.db.session() as s:
                project, user = self._ctx(s, who)
                candidates = _candidates(s, assignment.item_id, assignment.round)
                submit_judgment(
                    s,
                    project=project,
                    annotator=user,
                    assignment_id=assignment_id,
                    submit_key=self.keys[jid],
                    data=_verdicts(project, candidates, choice),
                )
        except Conflict:
            assert self._status(assignment_id)[0] == status_before
            return
        raise AssertionError("a submit key already used for another lease was answered")

    @rule(index=st.integers(0, 2))
    def regenerate(self, index: int) -> None:
        """An admin regenerates an item (chosen by hand, or flagged "all bad"): a new round of candidates."""
        item_id = self.items[index % len(self.items)]
        with self.db.session() as s:
            item = s.get(Item, item_id)
            assert item is not None
            from_round = item.round
            new = regenerated_samples(2)
            assert store_candidates(s, item_id=item_id, from_round=from_round, regenerate=True, samples=new)
        with self.db.session(write=False) as s:
            item = s.get(Item, item_id)
            assert item is not None
            assert (item.round, item.claims, item.judgment_count) == (from_round + 1, 0, 0)

    @rule(lease=leases)
    def skip(self, lease: tuple[int, int]) -> None:
        who, assignment_id = lease
        status_before, _, _ = self._status(assignment_id)
        try:
            with self.db.session() as s:
                project, user = self._ctx(s, who)
                skip_assignment(s, project=project, annotator=user, assignment_id=assignment_id, reason="skip")
        except Conflict:
            assert status_before in ("submitted", "skipped"), f"skipping a {status_before} assignment was refused"
            return
        assert status_before in ("leased", "expired"), f"a {status_before} assignment was skipped"
        self.skipped.add(assignment_id)

    @rule(lease=leases)
    def lapse(self, lease: tuple[int, int]) -> None:
        """The annotator walks away: the lease runs out (the clock moves past it); a later claim sweeps it."""
        with self.db.session() as s:
            s.execute(
                update(Assignment)
                .where(Assignment.id == lease[1], Assignment.status == "leased")
                .values(lease_expires_at=utcnow() - timedelta(seconds=1))
            )

    @rule()
    def sweep(self) -> None:
        with self.db.session() as s:
            expire_leases(s, project_id=self.project_id)

    @rule(jid=judgments, stale=st.booleans(), choice=st.integers(0, 2))
    def edit(self, jid: int, stale: bool, choice: int) -> None:
        annotator, item_id, _, version = self.judgments[jid]
        stale = stale and version > 1  # version 1 has nothing older to send
        try:
            with self.db.session() as s:
                project, user = self._ctx(s, self.annotators.index(annotator))
                judgment = s.get(Judgment, jid)
                assert judgment is not None
                sent = _verdicts(project, _candidates(s, item_id, judgment.round), choice)
                edited = edit_judgment(
                    s,
                    project=project,
                    annotator=user,
                    judgment_id=jid,
                    version=version - 1 if stale else version,
                    data=sent,
                )
                new_version = edited.version
        except Conflict:
            assert stale, "an edit of the current version was refused"
            return
        assert not stale, "an edit of a stale version was accepted"
        assert new_version == version + 1
        self.judgments[jid] = (annotator, item_id, _overall(sent), new_version)

    # --- invariants ----------------------------------------------------------------------------------------

    @invariant()
    def queue_is_consistent(self) -> None:
        if not self.project_id:
            return
        r = self.overlap
        with self.db.session(write=False) as s:
            items = s.execute(
                select(Item.id, Item.round, Item.claims, Item.judgment_count, Item.target).where(
                    Item.project_id == self.project_id
                )
            ).all()
            project = s.get(Project, self.project_id)
            assert project is not None
            assignments = s.execute(
                select(
                    Assignment.id, Assignment.item_id, Assignment.round, Assignment.annotator_id, Assignment.status
                ).where(Assignment.project_id == self.project_id)
            ).all()
            judgments = s.execute(
                select(
                    Judgment.id,
                    Judgment.item_id,
                    Judgment.round,
                    Judgment.annotator_id,
                    Judgment.assignment_id,
                    Judgment.version,
                ).where(Judgment.project_id == self.project_id)
            ).all()
            tallies = dict(
                s.execute(
                    select(AnnotatorTally.annotator_id, AnnotatorTally.judged).where(
                        AnnotatorTally.project_id == self.project_id
                    )
                ).all()  # (a Result has keys(): dict() would take it for a mapping)
            )
            overall = {
                j: (kind, chosen)
                for j, kind, chosen in s.execute(
                    select(Verdict.judgment_id, Verdict.kind, Verdict.chosen_candidate_id).where(
                        Verdict.dimension == "overall", Verdict.judgment_id.in_([j.id for j in judgments])
                    )
                )
            }
        status = {a.id: a.status for a in assignments}
        low = min(self.overlap_min or r, r)
        for item_id, round_, claims, judgment_count, target in items:
            wanted = effective_target(project, target)
            assert low <= wanted <= r, f"item {item_id} wants {wanted}, outside r_min {low} .. r_max {r}"
            assert target is None or target <= r, f"item {item_id}: target {target} over r_max {r}"
            assert claims <= wanted, f"item {item_id} has {claims} claims, its target is {wanted}"
            if judgment_count >= wanted:  # complete: never fewer than r_min
                assert judgment_count >= low, f"item {item_id} is complete with {judgment_count} < r_min judgments"
            live = sum(1 for a in assignments if (a.item_id, a.round, a.status) == (item_id, round_, "leased"))
            judged = sum(1 for j in judgments if (j.item_id, j.round) == (item_id, round_))
            stale = [a.id for a in assignments if a.item_id == item_id and a.round != round_ and a.status == "leased"]
            assert not stale, f"item {item_id} was regenerated, yet leases {stale} of an old round are open"
            assert judged <= r, f"item {item_id} has {judged} judgments, r = {r}"
            assert claims <= r, f"item {item_id} has {claims} claims, r = {r}"
            assert claims == live + judged, f"item {item_id}: claims {claims} != {live} leases + {judged} judgments"
            assert judgment_count == judged
        holders = [a.annotator_id for a in assignments if a.status == "leased"]
        assert len(holders) == len(set(holders)), "an annotator holds two leases"
        pairs = [(a.item_id, a.round, a.annotator_id) for a in assignments]
        assert len(pairs) == len(set(pairs)), "two assignments of one item's round to one annotator"
        judged_pairs = [(j.item_id, j.round, j.annotator_id) for j in judgments]
        assert len(judged_pairs) == len(set(judged_pairs)), "an annotator judged the same round of an item twice"
        per_annotator = {a: sum(1 for j in judgments if j.annotator_id == a) for a in self.annotators}
        assert {a: tallies.get(a, 0) for a in self.annotators} == per_annotator, "a tally is not its judgments"
        for j in judgments:
            assert status[j.assignment_id] == "submitted", f"judgment {j.id}'s assignment is {status[j.assignment_id]}"
        assert sum(1 for a in assignments if a.status == "submitted") == len(judgments)
        # Never lost, and holding the last accepted write.
        stored = {j.id: j for j in judgments}
        for jid, (annotator, item_id, verdict, version) in self.judgments.items():
            assert jid in stored, f"judgment {jid} was lost"
            assert (stored[jid].annotator_id, stored[jid].item_id, stored[jid].version) == (annotator, item_id, version)
            assert overall[jid] == verdict, (
                f"judgment {jid} holds {overall[jid]}, the last accepted write was {verdict}"
            )
        assert len(stored) == len(self.judgments), "a judgment appeared that the service did not report"


def test_the_queue_keeps_its_invariants(db: Database) -> None:
    run_state_machine_as_test(
        lambda: Queue(db),
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=int(os.environ.get("PREFSTUDIO_QUEUE_STEPS", "50")),
            deadline=None,
            database=None,
            derandomize=True,  # the same sequences in every run: a CI failure reproduces locally
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
