"""The assignment queue and judgment rules, on both databases."""

from __future__ import annotations

import sys
import threading
import time
from datetime import timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.annotation import progress as annotation_progress
from app.annotation import queue, repository
from app.annotation.dimensions import dimension_keys
from app.annotation.judgments import edit_judgment, submit_judgment
from app.annotation.progress import counts_ttl, progress, project_counts
from app.annotation.queue import Task, assign_next_item, expire_leases, skip_assignment
from app.annotation.schemas import JudgmentForm, JudgmentIn, VerdictIn
from app.annotation.tallies import judged_count, recount_tallies
from app.config import Settings
from app.db import Database
from app.items.service import set_gold
from app.kit.errors import Busy, Conflict, Invalid
from app.models import AnnotatorTally, Assignment, Item, Judgment, Project, User, Verdict, utcnow
from tests.annotation.helpers import prefer_first
from tests.factories import make_item, make_items, make_project, make_user


@pytest.fixture
def world(db: Database) -> dict[str, int]:
    with db.session() as s:
        users = [make_user(s, f"ann{i}") for i in range(4)]
        project = make_project(s, "p", k=2, overlap=2, members=users)
        make_items(s, project, 3)
        return {"project": project.id, **{f"u{i}": u.id for i, u in enumerate(users)}}


def _ctx(s, world, who):  # type: ignore[no-untyped-def]
    from app.models import Project, User

    return s.get(Project, world["project"]), s.get(User, world[who])


def test_next_prefers_fullest_item_and_never_repeats(db: Database, world: dict[str, int]) -> None:
    with db.session() as s:
        project, u0 = _ctx(s, world, "u0")
        t0 = assign_next_item(s, project=project, annotator=u0)
        assert t0 is not None
        first_item = t0.item.id
    with db.session() as s:
        project, u1 = _ctx(s, world, "u1")
        t1 = assign_next_item(s, project=project, annotator=u1)
        # The item already leased once is closest to completion, so it goes out first.
        assert t1 is not None and t1.item.id == first_item
    with db.session() as s:
        project, u2 = _ctx(s, world, "u2")
        t2 = assign_next_item(s, project=project, annotator=u2)
        assert t2 is not None and t2.item.id != first_item  # overlap 2 reached on the first item


def test_one_open_lease_per_annotator(db: Database, world: dict[str, int]) -> None:
    with db.session() as s:
        project, u0 = _ctx(s, world, "u0")
        a = assign_next_item(s, project=project, annotator=u0)
        b = assign_next_item(s, project=project, annotator=u0)
        assert a is not None and b is not None
        assert a.assignment.id == b.assignment.id
        assert s.scalar(select(func.count()).select_from(Assignment)) == 1


def test_display_order_is_stored_and_verdicts_are_canonical(db: Database) -> None:
    with db.session() as s:
        user = make_user(s, "ann")
        project = make_project(s, "p4", k=4, overlap=1, members=[user])
        item = make_item(s, project, "q", candidates=["w", "x", "y", "z"])
        task = assign_next_item(s, project=project, annotator=user)
        assert task is not None
        shown = [c.id for c in task.candidates]
        assert sorted(shown) == sorted(task.assignment.display_order) and shown == task.assignment.display_order
        # The page says "best = A, worst = D" in this annotator's order; storage gets candidate ids.
        form = dict.fromkeys(dimension_keys(project), "")
        for d in dimension_keys(project):
            form[f"{d}__best"], form[f"{d}__worst"] = "A", "D"
        verdicts = JudgmentForm.model_validate(form).verdicts(project=project, display_order=shown)
        judgment, created = submit_judgment(
            s,
            project=project,
            annotator=user,
            assignment_id=task.assignment.id,
            submit_key="k" * 16,
            data=JudgmentIn(verdicts=verdicts),
        )
        assert created
        row = s.scalar(select(Verdict).where(Verdict.judgment_id == judgment.id, Verdict.dimension == "overall"))
        assert row is not None
        assert (row.chosen_candidate_id, row.rejected_candidate_id) == (shown[0], shown[3])
        assert s.get(Item, item.id).judgment_count == 1  # type: ignore[union-attr]


def test_submit_is_idempotent_by_key_and_by_lease(db: Database, world: dict[str, int]) -> None:
    with db.session() as s:
        project, u0 = _ctx(s, world, "u0")
        task = assign_next_item(s, project=project, annotator=u0)
        assert task is not None
        data = prefer_first(task, project)
        j1, c1 = submit_judgment(
            s, project=project, annotator=u0, assignment_id=task.assignment.id, submit_key="key-00000001", data=data
        )
        j2, c2 = submit_judgment(
            s, project=project, annotator=u0, assignment_id=task.assignment.id, submit_key="key-00000001", data=data
        )
        j3, c3 = submit_judgment(
            s, project=project, annotator=u0, assignment_id=task.assignment.id, submit_key="key-00000002", data=data
        )
        assert (c1, c2, c3) == (True, False, False)
        assert j1.id == j2.id == j3.id
        assert s.scalar(select(func.count()).select_from(Judgment)) == 1
        assert s.get(Item, task.item.id).judgment_count == 1  # type: ignore[union-attr]


def test_invalid_verdicts_are_refused(db: Database, world: dict[str, int]) -> None:
    with db.session() as s:
        project, u0 = _ctx(s, world, "u0")
        task = assign_next_item(s, project=project, annotator=u0)
        assert task is not None
        a, b = (c.id for c in task.candidates)
        full = {d: VerdictIn(kind="tie") for d in dimension_keys(project)}
        with pytest.raises(Invalid, match="Missing"):
            submit_judgment(
                s,
                project=project,
                annotator=u0,
                assignment_id=task.assignment.id,
                submit_key="bad-0000001",
                data=JudgmentIn(verdicts={"overall": full["overall"]}),
            )
        foreign = dict(full, overall=VerdictIn(kind="preference", chosen=a, rejected=999_999))
        with pytest.raises(Invalid, match="belong"):
            submit_judgment(
                s,
                project=project,
                annotator=u0,
                assignment_id=task.assignment.id,
                submit_key="bad-0000002",
                data=JudgmentIn(verdicts=foreign),
            )
        with pytest.raises(ValueError, match="different"):
            VerdictIn(kind="preference", chosen=a, rejected=a)
        with pytest.raises(Invalid, match="overall"):
            submit_judgment(
                s,
                project=project,
                annotator=u0,
                assignment_id=task.assignment.id,
                submit_key="bad-0000003",
                data=JudgmentIn(verdicts=dict(full, overall=VerdictIn(kind="na"))),
            )
        assert b and s.scalar(select(func.count()).select_from(Judgment)) == 0


def test_database_refuses_chosen_equal_rejected(db: Database, world: dict[str, int]) -> None:
    from sqlalchemy.exc import IntegrityError

    with db.session() as s:
        project, u0 = _ctx(s, world, "u0")
        task = assign_next_item(s, project=project, annotator=u0)
        assert task is not None
        judgment, _ = submit_judgment(
            s,
            project=project,
            annotator=u0,
            assignment_id=task.assignment.id,
            submit_key="ok-00000001",
            data=prefer_first(task, project),
        )
        cid = task.candidates[0].id
    with pytest.raises(IntegrityError), db.session() as s:
        s.add(
            Verdict(
                judgment_id=judgment.id,
                dimension="extra",
                kind="preference",
                chosen_candidate_id=cid,
                rejected_candidate_id=cid,
            )
        )
        s.flush()


def test_skip_returns_item_and_hides_it_from_me(db: Database, world: dict[str, int]) -> None:
    with db.session() as s:
        project, u0 = _ctx(s, world, "u0")
        task = assign_next_item(s, project=project, annotator=u0)
        assert task is not None
        skipped_item = task.item.id
        skip_assignment(s, project=project, annotator=u0, assignment_id=task.assignment.id, reason="unclear")
        assert s.get(Item, skipped_item).claims == 0  # type: ignore[union-attr]
        nxt = assign_next_item(s, project=project, annotator=u0)
        assert nxt is not None and nxt.item.id != skipped_item
        with pytest.raises(Conflict):
            skip_assignment(s, project=project, annotator=u0, assignment_id=task.assignment.id, reason="")


def test_expired_lease_returns_item_and_late_submit_is_honoured_while_room(db: Database, world: dict[str, int]) -> None:
    with db.session() as s:
        project, u0 = _ctx(s, world, "u0")
        task = assign_next_item(s, project=project, annotator=u0)
        assert task is not None
        s.execute(update(Assignment).values(lease_expires_at=utcnow() - timedelta(minutes=1)))
        assert expire_leases(s, project_id=project.id) == 1
        assert s.get(Item, task.item.id).claims == 0  # type: ignore[union-attr]
        # The annotator comes back after the sweep and submits: the item still has room, so it counts.
        judgment, created = submit_judgment(
            s,
            project=project,
            annotator=u0,
            assignment_id=task.assignment.id,
            submit_key="late-0000001",
            data=prefer_first(task, project),
        )
        assert created and s.get(Item, task.item.id).claims == 1  # type: ignore[union-attr]


def test_expired_lease_submit_conflicts_when_item_was_filled(db: Database, world: dict[str, int]) -> None:
    with db.session() as s:
        project, u0 = _ctx(s, world, "u0")
        task = assign_next_item(s, project=project, annotator=u0)
        assert task is not None
        target = task.item.id
        s.execute(update(Assignment).values(lease_expires_at=utcnow() - timedelta(minutes=1)))
    for who in ("u1", "u2"):
        with db.session() as s:
            project, user = _ctx(s, world, who)
            t = assign_next_item(s, project=project, annotator=user)
            assert t is not None and t.item.id == target
            submit_judgment(
                s,
                project=project,
                annotator=user,
                assignment_id=t.assignment.id,
                submit_key=f"fill-{who}-0001",
                data=prefer_first(t, project),
            )
    with db.session() as s:
        project, u0 = _ctx(s, world, "u0")
        with pytest.raises(Conflict, match="expired"):
            submit_judgment(
                s,
                project=project,
                annotator=u0,
                assignment_id=task.assignment.id,
                submit_key="late-0000002",
                data=prefer_first(task, project),
            )
        assert s.get(Item, target).judgment_count == 2  # type: ignore[union-attr]


def test_edit_is_version_checked(db: Database, world: dict[str, int]) -> None:
    with db.session() as s:
        project, u0 = _ctx(s, world, "u0")
        task = assign_next_item(s, project=project, annotator=u0)
        assert task is not None
        judgment, _ = submit_judgment(
            s,
            project=project,
            annotator=u0,
            assignment_id=task.assignment.id,
            submit_key="edit-0000001",
            data=prefer_first(task, project),
        )
        ties = JudgmentIn(verdicts={d: VerdictIn(kind="tie") for d in dimension_keys(project)}, reason="r2")
        edited = edit_judgment(s, project=project, annotator=u0, judgment_id=judgment.id, version=1, data=ties)
        assert edited.version == 2 and edited.reason == "r2"
        with pytest.raises(Conflict, match="version 2"):
            edit_judgment(s, project=project, annotator=u0, judgment_id=judgment.id, version=1, data=ties)
        kinds = set(s.scalars(select(Verdict.kind).where(Verdict.judgment_id == judgment.id)))
        assert kinds == {"tie"}


def test_progress_counts(db: Database, world: dict[str, int]) -> None:
    with db.session() as s:
        project, u0 = _ctx(s, world, "u0")
        before = progress(s, project=project, annotator=u0)
        assert (before.judged_by_me, before.items_total, before.items_done) == (0, 3, 0)
        assert before.my_target == 2  # 3 items × r=2 shared by 4 members → ceil(1.5)
        _judge(s, project, u0, "prog-0000001")
        assert progress(s, project=project, annotator=u0).judged_by_me == 1


def test_an_admin_member_shares_the_work_only_once_they_judge(db: Database) -> None:
    """An admin who runs the project is no annotator: counting them shrank every annotator's fair share (a page
    showed "Judged by me 7 / 6")."""
    with db.session() as s:
        annotators = [make_user(s, f"worker{i}") for i in range(2)]
        admin = make_user(s, "boss", role="admin")
        project = make_project(s, "fair", k=2, overlap=1, members=[*annotators, admin])
        make_items(s, project, 6)
    with db.session() as s:
        project = s.get(Project, project.id)
        worker = s.get(User, annotators[0].id)
        assert project is not None and worker is not None
        assert progress(s, project=project, annotator=worker).my_target == 3  # 6 items × r=1 over 2 annotators
        boss = s.get(User, admin.id)
        assert boss is not None
        _judge(s, project, boss, "fair-boss-1")
        annotation_progress.project_counts_cache.clear()  # the counts are kept for a few seconds per process
        assert progress(s, project=project, annotator=worker).my_target == 2  # now the admin shares it: 6 over 3


def _judge(s: Session, project: Project, user: User, key: str | None = None) -> Task:
    """Lease the user's next item and judge it (``key``: the submit key; by default one of the user and item)."""
    task = assign_next_item(s, project=project, annotator=user)
    assert task is not None
    submit_judgment(
        s,
        project=project,
        annotator=user,
        assignment_id=task.assignment.id,
        submit_key=key or f"{user.username}-{task.item.id:08d}",
        data=prefer_first(task, project),
    )
    return task


def test_judged_count_is_my_judgments_in_this_project(db: Database) -> None:
    """Counted from the assignments' index; it must equal the judgment rows through skips, expiries, open leases."""
    with db.session() as s:
        me, peer = make_user(s, "jc-me"), make_user(s, "jc-peer")
        project = make_project(s, "jc", k=2, overlap=2, members=[me, peer], gold_share=0.0)
        other = make_project(s, "jc-other", k=2, overlap=2, members=[me, peer], gold_share=0.0)
        make_items(s, project, 4)
        make_items(s, other, 1)
        _judge(s, project, me, "jc-key-0001")
        _judge(s, project, peer, "jc-key-0002")
        _judge(s, other, me, "jc-key-0003")
        skipped = assign_next_item(s, project=project, annotator=me)
        assert skipped is not None
        skip_assignment(s, project=project, annotator=me, assignment_id=skipped.assignment.id, reason="")
        late = assign_next_item(s, project=project, annotator=me)
        assert late is not None
        s.execute(
            update(Assignment)
            .where(Assignment.id == late.assignment.id)
            .values(lease_expires_at=utcnow() - timedelta(minutes=1))
        )
        assert expire_leases(s, project_id=project.id) == 1
        submit_judgment(
            s,
            project=project,
            annotator=me,
            assignment_id=late.assignment.id,
            submit_key="jc-key-0004",
            data=prefer_first(late, project),
        )
        assert assign_next_item(s, project=project, annotator=me) is not None  # open: not a judgment
        stored = s.scalar(select(func.count()).where(Judgment.project_id == project.id, Judgment.annotator_id == me.id))
        assert stored == 2
        assert judged_count(s, project=project, annotator=me) == 2
        assert progress(s, project=project, annotator=me).judged_by_me == 2
        assert judged_count(s, project=other, annotator=me) == 1


def test_gold_share_counts_gold_judgments_of_this_project_only(db: Database) -> None:
    with db.session() as s:
        me = make_user(s, "gs-me")
        other = make_project(s, "gs-other", k=2, overlap=1, members=[me], gold_share=0.0)
        make_items(s, other, 1)
        elsewhere = _judge(s, other, me, "gs-key-0001")
        elsewhere.item.is_gold = True  # a gold judgment in another project: not part of this share
        project = make_project(s, "gs", k=2, overlap=1, members=[me], gold_share=0.5)
        gold, *_ = make_items(s, project, 3)
        gold.is_gold, gold.gold = True, {"overall": {"kind": "preference", "chosen": 0, "rejected": 1}}
        s.flush()
        first = _judge(s, project, me, "gs-key-0002")
        assert first.item.id == gold.id  # 0 of 0 judged here were gold: gold is due
        second = _judge(s, project, me, "gs-key-0003")
        assert not second.item.is_gold  # 1 of 1: the share is met


def _tallies(s: Session, project: Project) -> dict[int, tuple[int, int]]:
    rows = s.execute(
        select(AnnotatorTally.annotator_id, AnnotatorTally.judged, AnnotatorTally.gold_judged).where(
            AnnotatorTally.project_id == project.id
        )
    )
    return {annotator: (judged, gold) for annotator, judged, gold in rows}


def test_tallies_follow_submits_and_gold_changes_and_agree_with_a_recount(db: Database) -> None:
    """Next-item reads each annotator's judged and gold-judged counts from their tally: every submit and every
    change of an item's gold flag must keep it equal to what counting the judgments gives."""
    with db.session() as s:
        me, peer = make_user(s, "t-me"), make_user(s, "t-peer")
        project = make_project(s, "tally", k=2, overlap=2, members=[me, peer], gold_share=0.0)
        other = make_project(s, "tally-other", k=2, overlap=1, members=[me], gold_share=0.0)
        make_items(s, project, 4)
        make_items(s, other, 1)
        mine = {_judge(s, project, me, f"t-me-{i:04d}").item.id for i in range(3)}
        theirs = {_judge(s, project, peer, f"t-peer-{i:04d}").item.id for i in range(2)}
        _judge(s, other, me, "t-other-0001")
        assert _tallies(s, project) == {me.id: (3, 0), peer.id: (2, 0)}
        both, only_mine = min(mine & theirs), min(mine - theirs)
        tie = {"overall": {"kind": "tie"}}

        set_gold(s, project=project, item_id=both, expected=tie)
        assert _tallies(s, project) == {me.id: (3, 1), peer.id: (2, 1)}
        set_gold(s, project=project, item_id=both, expected={"overall": {"kind": "either"}})  # still gold
        assert _tallies(s, project) == {me.id: (3, 1), peer.id: (2, 1)}
        set_gold(s, project=project, item_id=only_mine, expected=tie)
        set_gold(s, project=project, item_id=both, expected=None)
        assert _tallies(s, project) == {me.id: (3, 1), peer.id: (2, 0)}
        assert _tallies(s, other) == {me.id: (1, 0)}
        assert judged_count(s, project=project, annotator=me) == 3

        kept = _tallies(s, project)
        s.execute(update(AnnotatorTally).values(judged=0, gold_judged=7))  # as a bulk load would leave them
        recount_tallies(s, project_id=project.id)
        assert _tallies(s, project) == kept
    with db.session() as s:  # a new request reads the stored tally
        fresh_me, fresh_project = s.get(User, me.id), s.get(Project, project.id)
        assert fresh_me is not None and fresh_project is not None
        assert progress(s, project=fresh_project, annotator=fresh_me).judged_by_me == 3


cache = annotation_progress.project_counts_cache


def _kept(key: annotation_progress.CountsKey) -> annotation_progress.KeptCounts:
    kept = cache.get(key)
    assert kept is not None
    return kept


def test_lapsed_project_counts_are_served_while_one_background_recount_runs(
    db: Database, world: dict[str, int]
) -> None:
    with db.session() as s:
        project, _ = _ctx(s, world, "u0")
        key = (str(s.get_bind().engine.url), project.id, project.created_at)
        lapsed = annotation_progress.ProjectCounts(99, 98, 97)
        cache.put(key, annotation_progress.KeptCounts(lapsed, fresh_until=0.0))  # lapsed long ago
        annotation_progress._recounting.add(key)  # a recount is under way already
        try:
            assert project_counts(s, project) == lapsed
            annotation_progress._recount_pool.submit(lambda: None).result()  # the pool's thread is idle: none queued
            assert _kept(key).counts == lapsed
        finally:
            annotation_progress._recounting.discard(key)
        assert project_counts(s, project) == lapsed  # not held up: the lapsed counts at once
        annotation_progress._recount_pool.submit(lambda: None).result()  # after the recount it queued
        assert key not in annotation_progress._recounting
        assert _kept(key).counts[:3] == (3, 0, 4)
        assert project_counts(s, project)[:3] == (3, 0, 4)


def test_the_first_counts_of_a_project_are_counted_by_the_request(db: Database, world: dict[str, int]) -> None:
    with db.session() as s:
        project, _ = _ctx(s, world, "u0")
        key = (str(s.get_bind().engine.url), project.id, project.created_at)
        cache.clear()
        assert project_counts(s, project)[:3] == (3, 0, 4)
        assert _kept(key).fresh_until > time.monotonic()


def test_a_larger_project_is_recounted_less_often() -> None:
    """Counting reads every item: a project's counts last one second per 10,000 items (5 s at least, a minute
    at most), so that recounting costs a server process about the same whatever the project's size."""
    assert counts_ttl(0) == counts_ttl(50_000) == 5.0
    assert counts_ttl(370_000) == 37.0
    assert counts_ttl(5_000_000) == 60.0


def test_a_submit_that_loses_the_insert_race_returns_the_stored_judgment(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two submits of one lease can both find no judgment and both insert; the second insert does nothing (the
    unique constraint) and returns what the first stored, counting nothing twice. The interleaving is forced:
    the second submit's look for an existing judgment is made to miss it, as if the first committed just after."""
    with db.session() as s:
        me = make_user(s, "race-me")
        project = make_project(s, "race", k=2, overlap=1, members=[me], gold_share=0.0)
        (item,) = make_items(s, project, 1)
        task = assign_next_item(s, project=project, annotator=me)
        assert task is not None
        data = prefer_first(task, project)
        first, created = submit_judgment(
            s, project=project, annotator=me, assignment_id=task.assignment.id, submit_key="race-0001", data=data
        )
        assert created
        looks: list[str] = []
        real_stored, real_judgment_of = repository.stored_judgments, repository.judgment_of_lease

        def stored_late(
            session: Session, assignment: Assignment, submit_key: str
        ) -> tuple[Judgment | None, Judgment | None]:
            looks.append("before insert")
            assert real_stored(session, assignment, submit_key)[1] is not None  # there, but missed
            return None, None

        def judgment_of(session: Session, assignment: Assignment) -> Judgment | None:
            looks.append("after insert")
            return real_judgment_of(session, assignment)

        monkeypatch.setattr(repository, "stored_judgments", stored_late)
        monkeypatch.setattr(repository, "judgment_of_lease", judgment_of)
        again, created = submit_judgment(
            s, project=project, annotator=me, assignment_id=task.assignment.id, submit_key="race-0002", data=data
        )
        assert (again.id, created, looks) == (first.id, False, ["before insert", "after insert"])
        assert s.scalar(select(func.count()).select_from(Judgment)) == 1
        assert s.scalar(select(Item.judgment_count).where(Item.id == item.id)) == 1
        assert _tallies(s, project) == {me.id: (1, 0)}


def test_a_server_process_shortens_the_interpreter_switch_interval(app: FastAPI) -> None:
    from app.web import warmup

    sys.setswitchinterval(0.005)  # Python's default
    with TestClient(app):
        assert warmup.SWITCH_INTERVAL < 0.005
        assert sys.getswitchinterval() == pytest.approx(warmup.SWITCH_INTERVAL)


def test_a_server_process_keeps_its_start_up_objects_out_of_the_collector(settings: Settings) -> None:
    """After warming up, what start-up made is frozen (a full collection does not walk it); stopping the app
    unfreezes it again. Off by a setting (the suite turns it off: every app start would collect its heap)."""
    import gc

    from app.main import create_app

    assert Settings(environment="dev").gc_freeze is True  # on unless turned off
    for freeze in (True, False):
        app = create_app(settings.model_copy(update={"gc_freeze": freeze}))
        assert gc.get_freeze_count() == 0
        with TestClient(app) as client:
            assert (gc.get_freeze_count() > 10_000) is freeze
            assert client.get("/healthz").status_code == 200
        assert gc.get_freeze_count() == 0
        app.state.db.dispose()


def test_a_server_warms_up_before_serving(db: Database, world: dict[str, int]) -> None:
    """Warming up counts the newest projects into the very cache key requests read (from either session kind),
    compiles every template and makes the stand-in hash a failed login verifies against."""
    from app.kit.security import dummy_hash
    from app.templating import env
    from app.web.warmup import warm_up

    for write in (True, False):
        with db.session(write=write) as s:
            project, _ = _ctx(s, world, "u0")
            key = (str(s.get_bind().engine.url), project.id, project.created_at)
            cache.clear()
            env.cache.clear()  # type: ignore[union-attr]
            dummy_hash.cache_clear()
            warm_up(db)
            assert dummy_hash.cache_info().currsize == 1
            assert _kept(key).counts[:3] == (3, 0, 4)
            assert len(env.cache) == len(env.list_templates(extensions=["html"])) > 10  # type: ignore[arg-type]


@pytest.mark.postgres_only
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)  # row locks: SQLite serializes writers instead
def test_nothing_left_only_after_a_locked_claim_has_finished(db: Database) -> None:
    """PostgreSQL claims with SKIP LOCKED; when the only open item is locked by another claim that then rolls
    back (a killed connection, say), the annotator gets that item instead of "nothing left"."""
    with db.session() as s:
        users = [make_user(s, n) for n in ("holder", "waiter")]
        project = make_project(s, "locked", k=2, overlap=1, members=users)
        (item,) = make_items(s, project, 1)
        project_id, item_id, waiter_id = project.id, item.id, users[1].id
    got: list[int | None] = []
    with db.session() as holder:  # another claim in flight: the item row is locked, then rolled back
        holder.execute(select(Item).where(Item.id == item_id).with_for_update())

        def claim() -> None:
            with db.session() as s:
                project, waiter = s.get(Project, project_id), s.get(User, waiter_id)
                assert project is not None and waiter is not None
                task = assign_next_item(s, project=project, annotator=waiter)
                got.append(task.item.id if task is not None else None)

        waiter_thread = threading.Thread(target=claim)
        waiter_thread.start()
        waiter_thread.join(timeout=1.0)
        assert waiter_thread.is_alive()  # it waits for the lock instead of answering "nothing left"
        holder.rollback()
    waiter_thread.join(timeout=10)
    assert got == [item_id]


@pytest.mark.postgres_only
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_waiting_claim_keeps_no_lock_on_the_items_it_passed(db: Database) -> None:
    """A claim waiting for the last open items must not hold the rows it found filled meanwhile: a blocking
    ``FOR UPDATE`` kept the lock of the item it had waited for, so the submit of that item waited on the claim,
    which waited on another claim, and PostgreSQL aborted a request as a deadlock."""
    with db.session() as s:
        users = [make_user(s, n) for n in ("first", "second", "third")]
        project = make_project(s, "passed", k=2, overlap=1, members=users)
        first_item, second_item = make_items(s, project, 2)
        project_id, ids = project.id, [u.id for u in users]

    def claim(s: Session, user_id: int) -> Task | None:
        project, user = s.get(Project, project_id), s.get(User, user_id)
        assert project is not None and user is not None
        return assign_next_item(s, project=project, annotator=user)

    got: list[int | None] = []

    def third_claims() -> None:
        with db.session() as s:
            task = claim(s, ids[2])
            got.append(task.item.id if task is not None else None)

    submitted: list[bool] = []
    with db.session() as second:
        with db.session() as first:
            first_task = claim(first, ids[0])
            assert first_task is not None and first_task.item.id == first_item.id
            first_project = first.get(Project, project_id)
            assert first_project is not None
            lease_id, data = first_task.assignment.id, prefer_first(first_task, first_project)
            second_task = claim(second, ids[1])
            assert second_task is not None and second_task.item.id == second_item.id
            third = threading.Thread(target=third_claims)
            third.start()
            time.sleep(0.3)  # the third claim finds both items locked and waits
        # The first claim committed: its item is full. Its submit must not wait for the third claim.

        def submit() -> None:
            with db.session() as s:
                project, user = s.get(Project, project_id), s.get(User, ids[0])
                assert project is not None and user is not None
                submit_judgment(
                    s, project=project, annotator=user, assignment_id=lease_id, submit_key="k-first", data=data
                )
                submitted.append(True)

        submitter = threading.Thread(target=submit)
        submitter.start()
        submitter.join(timeout=5)
        assert submitted == [True]
        assert third.is_alive()  # still waiting for the second item
        second.rollback()  # the second claim is given up: the third annotator gets its item
    third.join(timeout=10)
    assert got == [second_item.id]


@pytest.mark.postgres_only
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_claim_answers_busy_when_the_open_items_stay_locked(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(queue, "CLAIM_WAIT_SECONDS", 0.3)
    with db.session() as s:
        users = [make_user(s, n) for n in ("holder", "waiter")]
        project = make_project(s, "busy", k=2, overlap=1, members=users)
        (item,) = make_items(s, project, 1)
        project_id, item_id, waiter_id = project.id, item.id, users[1].id
    with db.session() as holder:
        holder.execute(select(Item).where(Item.id == item_id).with_for_update())
        with db.session() as s:
            project, waiter = s.get(Project, project_id), s.get(User, waiter_id)
            assert project is not None and waiter is not None
            with pytest.raises(Busy) as raised:
                assign_next_item(s, project=project, annotator=waiter)
            assert raised.value.status_code == 503 and "try again" in str(raised.value.detail)


def test_an_annotator_far_ahead_gets_a_fresh_item_and_every_open_item_stays_reachable(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fullest first looks at a window of the fullest items in progress: one who judged all of them gets the first
    fresh item rather than a walk through the items in progress past it (their own, mostly); the others still get
    the fullest; once nothing is fresh, an open item past the window is still given."""
    monkeypatch.setattr(queue, "IN_PROGRESS_WINDOW", 2)
    with db.session() as s:
        fast, slow, third = make_user(s, "fast"), make_user(s, "slow"), make_user(s, "third")
        project = make_project(s, "ahead", k=2, overlap=3, members=[fast, slow, third], gold_share=0.0)
        ids = [i.id for i in make_items(s, project, 6)]
        assert [_judge(s, project, fast).item.id for _ in range(5)] == ids[:5]  # each in progress once judged
        assert [_judge(s, project, slow).item.id for _ in range(2)] == ids[:2]  # the fullest, lowest id first
        # The window (ids 0 and 1, two judgments each) is all slow's: the fresh item, not ids[2] past the window.
        assert _judge(s, project, slow).item.id == ids[5]
        assert _judge(s, project, fast).item.id == ids[5]  # nothing fresh, the window theirs: past it
        assert _judge(s, project, slow).item.id == ids[2]
        assert assign_next_item(s, project=project, annotator=fast) is None  # fast judged every item
        assert _judge(s, project, third).item.id == ids[0]  # the fullest, completed (r = 3)


def test_every_statement_of_a_next_item_and_a_submit_can_be_cached(db: Database, world: dict[str, int]) -> None:
    """Each statement has a cache key, so SQLAlchemy compiles it once: one with ON CONFLICT has none in 2.0 and
    was compiled again at every submit, a third of its Python work. Only an annotator's first submit in a project
    upserts their tally (not cacheable); later ones update it."""
    from sqlalchemy import event

    seen: list[tuple[str, str]] = []

    def record(conn, cursor, statement, params, context, executemany):  # type: ignore[no-untyped-def]
        if context.compiled is not None:  # not driver-level SQL (SQLite's BEGIN IMMEDIATE), which is never compiled
            seen.append((str(context.cache_hit), statement.split("\n")[0][:80]))

    engines = {db.write_engine, db.read_engine}
    for engine in engines:
        event.listen(engine, "after_cursor_execute", record)
    try:
        for _ in range(2):  # the second round runs on the statements the first compiled
            seen.clear()
            for who in ("u0", "u1"):
                with db.session() as s:
                    project, user = _ctx(s, world, who)
                    _judge(s, project, user)
    finally:
        for engine in engines:
            event.remove(engine, "after_cursor_execute", record)
    assert len(seen) > 10 and any(hit.endswith("CACHE_HIT") for hit, _ in seen)
    assert [(hit, sql) for hit, sql in seen if hit.endswith("NO_CACHE_KEY")] == []
