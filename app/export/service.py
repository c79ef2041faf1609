"""Export: preference pairs from judgments, filtered, as TRL-ready JSONL — streamed in constant memory.

Items are read in id order, a chunk at a time (keyset pagination), with their current-round candidates,
judgments, verdicts and newest adjudication; every chunk's pairs are yielded before the next chunk is read, so
memory does not grow with the project. Gold items and earlier candidate rounds never reach an export.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Select, Text, any_, cast, func, or_, select, update
from sqlalchemy.orm import Session

from app.config import Settings
from app.db import Database, driver_rows
from app.export import pairs as P
from app.export import pseudonyms
from app.export.schemas import DROP_REASONS, ExportFilter, PreviewOut
from app.kit import activity
from app.kit.errors import Conflict, Invalid, NotFound
from app.models import (
    OVERALL,
    Adjudication,
    AnnotatorTally,
    ApiToken,
    Candidate,
    Item,
    Judgment,
    Project,
    ProjectMember,
    Snapshot,
    User,
    Verdict,
    utcnow,
)

CHUNK_ITEMS = 2000
PACE_ITEMS = 8  # items between two calls of an export's pace (~40 pairs, 2-3 ms of work)


@dataclass
class Rules:
    """A filter resolved against a project: dimensions to read, annotators to ignore, the pseudonym key."""

    filt: ExportFilter
    project: Project
    key: bytes
    dims: list[str]
    excluded: set[int]  # by the filter's list or its thresholds
    named: set[int] = field(default_factory=set)  # those the filter's list names
    slug: str = ""

    _pseudonyms: dict[int, str] = field(default_factory=dict)

    def pseudonym(self, user_id: int) -> str:
        """A stable id for an annotator in this project's exports that does not reveal who it is."""
        name = self._pseudonyms.get(user_id)
        if name is None:
            name = self._pseudonyms[user_id] = pseudonyms.pseudonym(self.key, self.project.id, user_id)
        return name

    @property
    def excluded_pseudonyms(self) -> list[str]:
        return sorted(self.pseudonym(u) for u in self.excluded)

    def public_filter(self) -> ExportFilter:
        """The filter as it may be shown to export-token holders: annotators named by pseudonym only."""
        return self.filt.model_copy(update={"exclude_annotators": sorted(self.pseudonym(u) for u in self.named)})


@dataclass(slots=True)
class _Judged:
    annotator: int
    reason: str
    problematic: bool
    verdicts: dict[str, P.Verdict] = field(default_factory=dict)  # in canonical positions


@dataclass(slots=True)
class _Cand:
    id: int
    position: int
    text: str
    model: str | None
    params: orjson.Fragment  # the stored JSON text, embedded as it is
    seed: int | None
    stripped: str = ""  # the text without surrounding white space (identical answers never make a pair)


@dataclass
class _Chunk:
    items: list[tuple[int, str | None, str, int]]  # id, external id, prompt (JSON text), round
    candidates: dict[int, list[_Cand]]
    judgments: dict[int, list[_Judged]]
    decisions: dict[int, tuple[dict[str, Any], str]]  # verdicts (candidate ids), reason


def resolve(
    session: Session,
    *,
    project: Project,
    filt: ExportFilter,
    key: bytes,
    by_admin: bool = False,
    excluded: set[int] | None = None,
) -> Rules:
    """Check the filter against the project and work out which annotators it leaves out. Annotators are named by
    pseudonym; ``by_admin`` callers may name them by username or user id too. ``excluded``: as worked out
    before, for the same filter (neither the names nor the thresholds are evaluated again)."""
    known = [OVERALL, *project.dimension_keys]
    for dim in [filt.dimension, *filt.veto]:
        if dim not in known:
            raise Invalid(f"Unknown dimension {dim!r}; this project has: {', '.join(known)}")
    rules = Rules(
        filt=filt,
        project=project,
        key=key,
        dims=list(dict.fromkeys([filt.dimension, *filt.veto])),
        excluded=set(excluded or ()),
        slug=project.slug,
    )
    if excluded is not None:
        return rules
    annotators: dict[int, str] = {}
    if filt.exclude_annotators or filt.min_annotator_kappa is not None:
        annotators = project_annotators(session, project=project)
    if filt.exclude_annotators:
        rules.named = _named(rules, annotators, by_admin=by_admin)
    rules.excluded = set(rules.named)
    if filt.min_annotator_kappa is not None or filt.min_gold_accuracy is not None:
        ids = {name: user_id for user_id, name in annotators.items()}
        rules.excluded |= _below_thresholds(session, project=project, filt=filt, ids=ids)
    return rules


def project_annotators(session: Session, *, project: Project) -> dict[int, str]:
    """user id → username of those an export may name: the project's members and whoever has judged in it."""
    members = select(ProjectMember.user_id).where(ProjectMember.project_id == project.id)
    judges = select(AnnotatorTally.annotator_id).where(AnnotatorTally.project_id == project.id)
    rows = session.execute(select(User.id, User.username).where(or_(User.id.in_(members), User.id.in_(judges))))
    return dict(rows.tuples().all())


def names_of(session: Session, *, project: Project, key: bytes, of: list[str]) -> list[str]:
    """The usernames behind pseudonyms of this project (for admins' pages), in the order given."""
    annotators = project_annotators(session, project=project)
    names = {pseudonyms.pseudonym(key, project.id, u): n for u, n in annotators.items()}
    return [names.get(p, p) for p in of]


def _named(rules: Rules, annotators: dict[int, str], *, by_admin: bool) -> set[int]:
    """The annotators the filter's list names. Anything else is refused with one answer, whether such a user
    exists or not (an export token learns nothing about users)."""
    by_pseudonym = {rules.pseudonym(user_id): user_id for user_id in annotators}
    by_name = {name: user_id for user_id, name in annotators.items()} if by_admin else {}
    named: set[int] = set()
    unknown: list[str] = []
    for who in rules.filt.exclude_annotators:
        if pseudonyms.looks_like_pseudonym(who) and who in by_pseudonym:
            named.add(by_pseudonym[who])
        elif who in by_name:
            named.add(by_name[who])
        elif by_admin and who.isascii() and who.isdigit() and int(who) in annotators:
            named.add(int(who))
        else:
            unknown.append(who[:100])
    if unknown:
        how = "by pseudonym (a_…, as in meta.annotators)" + (", username or user id" if by_admin else "")
        raise Invalid(f"Not an annotator of this project: {', '.join(unknown)}. Name annotators {how}.")
    return named


def _below_thresholds(session: Session, *, project: Project, filt: ExportFilter, ids: dict[str, int]) -> set[int]:
    from app.agreement import service as agreement

    out: set[int] = set()
    if filt.min_annotator_kappa is not None:
        figures = agreement.compute(session, project=project, resamples=0)
        kappas: dict[str, list[float]] = defaultdict(list)
        for pair in figures.pairs:
            if pair.kappa is not None:
                kappas[pair.a].append(pair.kappa)
                kappas[pair.b].append(pair.kappa)
        for person in figures.annotators:
            values = kappas.get(person.annotator)
            if values and sum(values) / len(values) < filt.min_annotator_kappa and person.annotator in ids:
                out.add(ids[person.annotator])
    if filt.min_gold_accuracy is not None:
        for user_id, (_, accuracy) in agreement.gold_accuracy(session, project=project).items():
            if accuracy is not None and accuracy < filt.min_gold_accuracy:
                out.add(user_id)
    return out


def _exported_items(project: Project) -> Any:
    return (Item.project_id == project.id, Item.is_gold.is_(False), Item.status == "ready")


def chunk_starts(session: Session, *, project: Project, size: int = CHUNK_ITEMS) -> list[int]:
    """The first item id of each chunk of ``size`` exported items, in order (from the index alone)."""
    numbered = (
        select(Item.id, func.row_number().over(order_by=Item.id).label("n")).where(*_exported_items(project)).subquery()
    )
    return list(session.scalars(select(numbered.c.id).where((numbered.c.n - 1) % size == 0).order_by(numbered.c.id)))


def _chunks(
    session: Session,
    *,
    project: Project,
    dims: list[str],
    size: int = CHUNK_ITEMS,
    ranges: Sequence[tuple[int, int | None]] | None = None,
    pace: Callable[[], Any] | None = None,
) -> Iterator[_Chunk]:
    """The exported items a chunk at a time, with all they need: the next ``size`` items each time, or the items
    of each id range ``[start, end)`` of ``ranges`` (``end`` None: no end) in turn; ``pace`` is called before
    each query."""
    conn = session.connection()
    by_postgres = conn.dialect.name == "postgresql"

    def rows(query: Select[Any]) -> list[Any]:
        if pace is not None:
            pace()
        return driver_rows(conn, query)

    columns = select(Item.id, Item.external_id, cast(Item.prompt, Text), Item.round).where(*_exported_items(project))
    last = 0
    pending = list(ranges) if ranges is not None else None
    while True:
        if pending is None:
            items = rows(columns.where(Item.id > last).order_by(Item.id).limit(size))
            if not items:
                return
        elif not pending:
            return
        else:
            start, end = pending.pop(0)
            query = columns.where(Item.id >= start)
            items = rows((query.where(Item.id < end) if end is not None else query).order_by(Item.id))
            if not items:
                yield _Chunk([], {}, {}, {})
                continue
        lo, hi = items[0][0], items[-1][0]
        last = hi
        rounds = {i[0]: i[3] for i in items}

        candidates: dict[int, list[_Cand]] = defaultdict(list)
        position: dict[int, int] = {}
        for cid, item_id, round_, pos, text, model, params, seed in rows(
            select(
                Candidate.id,
                Candidate.item_id,
                Candidate.round,
                Candidate.position,
                Candidate.text,
                Candidate.model,
                cast(Candidate.params, Text),
                Candidate.seed,
            ).where(Candidate.item_id.between(lo, hi))
        ):
            if rounds.get(item_id) == round_:
                candidates[item_id].append(
                    _Cand(cid, pos, text, model, orjson.Fragment(params or "{}"), seed, text.strip())
                )
                position[cid] = pos

        judgments: dict[int, list[_Judged]] = defaultdict(list)
        by_id: dict[int, _Judged] = {}
        # By item range only (the (item, round, annotator) index); rows of other projects' items in the range
        # are dropped, as they have no entry in ``rounds``.
        for jid, item_id, round_, annotator, reason, problematic in rows(
            select(
                Judgment.id,
                Judgment.item_id,
                Judgment.round,
                Judgment.annotator_id,
                Judgment.reason,
                Judgment.flag_problematic,
            )
            .where(Judgment.item_id.between(lo, hi))
            .order_by(Judgment.id)
        ):
            if rounds.get(item_id) == round_:
                judged = by_id[jid] = _Judged(annotator, reason or "", bool(problematic))
                judgments[item_id].append(judged)
        # The verdicts of those judgments by the (judgment, dimension) index. Not a join: on PostgreSQL the
        # planner's row estimates made it a hash join over every verdict of the table (400 ms a chunk where
        # the index takes 15), or a parallel plan that takes both CPUs.
        judged_here = select(Judgment.id).where(Judgment.item_id.between(lo, hi))
        if by_postgres:
            mine = Verdict.judgment_id == any_(func.array(judged_here.scalar_subquery()))  # ARRAY(SELECT ...)
        else:
            mine = Verdict.judgment_id.in_(judged_here)
        for jid, dim, kind, chosen, rejected in rows(
            select(
                Verdict.judgment_id,
                Verdict.dimension,
                Verdict.kind,
                Verdict.chosen_candidate_id,
                Verdict.rejected_candidate_id,
            ).where(mine, Verdict.dimension.in_(dims))
        ):
            owner = by_id.get(jid)
            if owner is not None:
                owner.verdicts[dim] = (
                    kind,
                    position.get(chosen) if chosen is not None else None,
                    position.get(rejected) if rejected is not None else None,
                )

        decisions: dict[int, tuple[dict[str, Any], str]] = {}
        if pace is not None:
            pace()
        for item_id, round_, verdicts, reason in conn.execute(  # JSON: SQLAlchemy decodes it
            select(Adjudication.item_id, Adjudication.round, Adjudication.verdicts, Adjudication.reason)
            .where(Adjudication.item_id.between(lo, hi))
            .order_by(Adjudication.created_at, Adjudication.id)
        ).tuples():
            if rounds.get(item_id) == round_:
                decisions[item_id] = (verdicts, reason)  # the newest wins
        yield _Chunk(list(items), candidates, judgments, decisions)


def _decided_pairs(
    verdicts: dict[str, Any], dim: str, *, ids_to_pos: dict[int, int], k: int, mode: str
) -> dict[P.Pair, int] | None:
    v = verdicts.get(dim)
    if not v:
        return None
    chosen = ids_to_pos.get(v.get("chosen")) if v.get("chosen") is not None else None
    rejected = ids_to_pos.get(v.get("rejected")) if v.get("rejected") is not None else None
    return P.pairs_of(v["kind"], chosen, rejected, k, mode)


def _prompt(prompt: str, fmt: str) -> Any:
    """The prompt for the row, from its stored JSON text (embedded as it is where it can be)."""
    is_chat = prompt.lstrip().startswith("[")
    if fmt == "conversational":
        return orjson.Fragment(prompt) if is_chat else [{"role": "user", "content": orjson.Fragment(prompt)}]
    if is_chat:  # a chat prompt in the standard format: a plain transcript
        messages = orjson.loads(prompt)
        return "\n\n".join(f"{m.get('role', 'user')}: {m.get('content', '')}" for m in messages)
    return orjson.Fragment(prompt)


def iter_pairs(
    session: Session, *, rules: Rules, drops: Counter[str] | None = None, pace: Callable[[], Any] | None = None
) -> Iterator[dict[str, Any]]:
    """Every pair the filter keeps, as an export row ready for ``orjson.dumps`` (stored JSON is embedded as
    ``orjson.Fragment``); ``drops`` counts what each rule left out (and more); ``pace`` is called every
    ``PACE_ITEMS`` items and before each query (to give way to people's requests: ``app.kit.activity``).

    The next chunk of items is read from the database while this one's pairs are made (see ``_prefetched``)."""
    for row in _pairs(session, rules=rules, drops=drops, pace=pace):
        if row is not None:
            yield row


def _pairs(
    session: Session,
    *,
    rules: Rules,
    drops: Counter[str] | None = None,
    ranges: Sequence[tuple[int, int | None]] | None = None,
    pace: Callable[[], Any] | None = None,
) -> Iterator[dict[str, Any] | None]:
    """``iter_pairs``, with None after each chunk's pairs; ``ranges``: the chunks' id ranges (see ``_chunks``)."""
    filt, project = rules.filt, rules.project
    drops = drops if drops is not None else Counter()
    k, mode, dim, vetoes, excluded = project.k, filt.pairs, filt.dimension, filt.veto, rules.excluded
    count, pairs_of = P.count, P.pairs_of
    row = _RowMaker(rules)
    chunks = _chunks(session, project=project, dims=rules.dims, ranges=ranges, pace=pace)
    for chunk in _prefetched(session, chunks):
        tallies: Counter[str] = Counter()
        for item_id, external_id, prompt, _round in chunk.items:
            tallies["_items"] += 1
            if pace is not None and not tallies["_items"] % PACE_ITEMS:
                pace()
            cands = chunk.candidates.get(item_id)
            if cands is None or len(cands) < 2:
                continue
            judged = chunk.judgments.get(item_id, [])
            if excluded:
                judged = [j for j in judged if j.annotator not in excluded]
            decision = chunk.decisions.get(item_id) if filt.adjudicated else None
            if not judged and decision is None:
                continue
            tallies["_judged_items"] += 1
            by_position = {c.position: c for c in cands}
            verdicts = [(j.annotator, v) for j in judged if (v := j.verdicts.get(dim)) is not None]
            votes = count(tuple(v for _, v in verdicts), k, mode)
            decided: dict[str, dict[P.Pair, int] | None] = {}
            if decision is not None:
                ids_to_pos = {c.id: c.position for c in cands}
                decided = {d: _decided_pairs(decision[0], d, ids_to_pos=ids_to_pos, k=k, mode=mode) for d in rules.dims}
            decided_here = decided.get(dim)
            pairs = sorted(decided_here if decided_here is not None else votes)
            tallies["_candidate_pairs"] += len(pairs)
            if not pairs:
                continue
            if decision is None and len(judged) < filt.min_judgments:
                tallies["min_judgments"] += len(pairs)
                continue
            if filt.drop_problematic and any(j.problematic for j in judged):
                tallies["problematic"] += len(pairs)
                continue
            split = P.split_of(rules.slug, item_id, filt.test_share)
            if filt.split != "all" and split != filt.split:
                tallies["split"] += len(pairs)
                continue
            veto_votes = {}
            if vetoes:
                veto_votes = {
                    d: count(tuple(v for j in judged if (v := j.verdicts.get(d)) is not None), k, mode) for d in vetoes
                }
            context: _ItemContext | None = None
            kept = 0
            for pair in pairs:
                first, second, ties = votes.get(pair) or (0, 0, 0)
                if decided_here is not None:
                    decided_label = decided_here.get(pair)
                    if decided_label is None or decided_label == P.TIE:
                        tallies["no_majority"] += 1
                        continue
                    chosen_first = decided_label == P.FIRST
                else:
                    if first == second:
                        tallies["no_majority"] += 1
                        continue
                    chosen_first = first > second
                    winner, loser = (first, second) if chosen_first else (second, first)
                    if filt.drop_ties and ties >= winner:
                        tallies["tie"] += 1
                        continue
                    if winner - loser < filt.min_margin:
                        tallies["margin"] += 1
                        continue
                    if winner < filt.min_share * (first + second + ties):
                        tallies["share"] += 1
                        continue
                i, j = pair
                chosen_pos, rejected_pos = (i, j) if chosen_first else (j, i)
                if vetoes and _vetoed(vetoes, pair, chosen_pos, rejected_pos, decided, veto_votes):
                    tallies["veto"] += 1
                    continue
                chosen, rejected = by_position[chosen_pos], by_position[rejected_pos]
                if chosen.stripped == rejected.stripped:
                    tallies["identical"] += 1
                    continue
                if context is None:
                    context = _ItemContext(
                        item_id=item_id,
                        external_id=external_id,
                        prompt=_prompt(prompt, filt.format),
                        annotators=sorted({rules.pseudonym(j.annotator) for j in judged}),
                        split=split,
                        decision=decision,
                        reasons={j.annotator: r for j in judged if (r := j.reason.strip())},
                        labelled=[(a, pairs_of(*v, k, mode)) for a, v in verdicts],
                    )
                kept += 1
                if chosen_first:
                    yield row(context, pair, P.FIRST, chosen, rejected, first, second, ties)
                else:
                    yield row(context, pair, P.SECOND, chosen, rejected, second, first, ties)
            tallies["_kept"] += kept
            tallies[f"_split_{split}"] += kept
            if decision is not None:
                tallies["_adjudicated"] += kept
        drops.update(tallies)
        yield None


_DONE = object()


def _prefetched(session: Session, chunks: Iterator[_Chunk]) -> Iterator[_Chunk]:
    """``chunks``, with the next one read in a thread while the caller works on the current one.

    The thread has the session's connection to itself while it reads (the caller only works on chunks it was
    given), so the database's work and the network wait overlap with making pairs. Closing this generator
    stops the reader before the session is used again."""
    session.connection()  # the transaction (and its isolation level) begins here, before the thread uses it
    ready: queue.Queue[Any] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def read() -> None:
        try:
            for chunk in chunks:
                while not stop.is_set():
                    try:
                        ready.put(chunk, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            ready.put(_DONE)
        except BaseException as error:  # handed to the caller, raised there
            ready.put(error)
        finally:
            chunks.close()  # type: ignore[attr-defined]

    reader = threading.Thread(target=read, name="export-reader", daemon=True)
    reader.start()
    try:
        while True:
            got = ready.get()
            if got is _DONE:
                return
            if isinstance(got, BaseException):
                raise got
            yield got
    finally:
        stop.set()
        with contextlib.suppress(queue.Empty):
            ready.get_nowait()  # unblock a reader waiting to hand over a chunk
        reader.join()


def _vetoed(
    vetoes: list[str],
    pair: P.Pair,
    chosen_pos: int,
    rejected_pos: int,
    decided: dict[str, dict[P.Pair, int] | None],
    votes: dict[str, dict[P.Pair, P.Votes]],
) -> bool:
    """True when the chosen candidate loses to the rejected one on a veto dimension."""
    for veto in vetoes:
        other = decided.get(veto)
        if other is not None:
            label = other.get(pair)
            if label is not None and label != P.TIE and ((label == P.FIRST) != (chosen_pos == pair[0])):
                return True
        elif P.loses_on(votes[veto].get(pair), pair, chosen_pos, rejected_pos):
            return True
    return False


@dataclass(slots=True)
class _ItemContext:
    """What every exported pair of one item shares."""

    item_id: int
    external_id: str | None
    prompt: Any
    annotators: list[str]
    split: str
    decision: tuple[dict[str, Any], str] | None
    reasons: dict[int, str]  # annotator → reason (the non-empty ones)
    labelled: list[tuple[int, dict[P.Pair, int]]]  # annotator → the labelled pairs of their verdict
    joined: dict[tuple[int, ...], str] = field(default_factory=dict)  # voters → their reasons, joined

    def reason_of(self, pair: P.Pair, direction: int) -> str:
        """The decision's reason, or the reasons of those who voted for the exported direction, joined."""
        if self.decision is not None and self.decision[1].strip():
            return self.decision[1].strip()
        if not self.reasons:
            return ""
        voters = [a for a, labels in self.labelled if labels.get(pair) == direction]
        key = tuple(voters)
        text = self.joined.get(key)
        if text is None:
            text = self.joined[key] = "\n\n".join(dict.fromkeys(r for v in voters if (r := self.reasons.get(v))))
        return text


class _RowMaker:
    """Export rows of one filter: the per-export values looked up once."""

    def __init__(self, rules: Rules) -> None:
        self.slug = rules.slug
        self.dimension = rules.filt.dimension
        self.chat = rules.filt.format == "conversational"
        self._agreement: dict[tuple[int, int], float | None] = {}

    def __call__(
        self,
        item: _ItemContext,
        pair: P.Pair,
        direction: int,
        chosen: _Cand,
        rejected: _Cand,
        for_chosen: int,
        against: int,
        ties: int,
    ) -> dict[str, Any]:
        total = for_chosen + against + ties
        agreement = self._agreement.get((for_chosen, total), 0.0)
        if agreement == 0.0:
            agreement = self._agreement[(for_chosen, total)] = round(for_chosen / total, 4) if total else None
        answer_c: Any = chosen.text
        answer_r: Any = rejected.text
        if self.chat:
            answer_c = [{"role": "assistant", "content": chosen.text}]
            answer_r = [{"role": "assistant", "content": rejected.text}]
        return {
            "prompt": item.prompt,
            "chosen": answer_c,
            "rejected": answer_r,
            "reason": item.reason_of(pair, direction),
            "meta": {
                "project": self.slug,
                "item_id": item.item_id,
                "external_id": item.external_id,
                "dimension": self.dimension,
                "chosen_candidate_id": chosen.id,
                "rejected_candidate_id": rejected.id,
                "chosen_position": chosen.position,
                "rejected_position": rejected.position,
                "chosen_model": chosen.model,
                "rejected_model": rejected.model,
                "chosen_params": chosen.params,
                "rejected_params": rejected.params,
                "chosen_seed": chosen.seed,
                "rejected_seed": rejected.seed,
                "votes": {"chosen": for_chosen, "rejected": against, "tie": ties},
                "margin": for_chosen - against,
                "agreement": agreement,
                "adjudicated": item.decision is not None,
                "annotators": item.annotators,
                "split": item.split,
            },
        }


def iter_jsonl(
    session: Session, *, rules: Rules, drops: Counter[str] | None = None, pace: Callable[[], Any] | None = None
) -> Iterator[bytes]:
    """The export as JSONL lines (UTF-8, one pair a line); ``pace``: see ``iter_pairs``."""
    dumps, newline = orjson.dumps, orjson.OPT_APPEND_NEWLINE
    for row in iter_pairs(session, rules=rules, drops=drops, pace=pace):
        yield dumps(row, option=newline)


def jsonl_of_ranges(
    session: Session,
    *,
    rules: Rules,
    ranges: Sequence[tuple[int, int | None]],
    drops: Counter[str] | None = None,
    pace: Callable[[], Any] | None = None,
) -> Iterator[bytearray]:
    """The JSONL of the items of each id range in turn, one value per range (empty if it keeps no pair);
    ``pace``: see ``iter_pairs``.

    Lines are appended to one buffer as they are made: orjson's bytes keep the capacity they grew to (8 KB for
    a 1.4 KB line), so a list of a chunk's lines held 20 MB where its text is 3.5."""
    dumps, newline = orjson.dumps, orjson.OPT_APPEND_NEWLINE
    lines = bytearray()
    for row in _pairs(session, rules=rules, drops=drops, ranges=ranges, pace=pace):
        if row is None:
            yield lines
            lines = bytearray()
        else:
            lines += dumps(row, option=newline)


def preview(
    session: Session, *, project: Project, filt: ExportFilter, key: bytes, by_admin: bool = False
) -> PreviewOut:
    """How many pairs the filter keeps, and what each rule drops — without writing anything."""
    rules = resolve(session, project=project, filt=filt, key=key, by_admin=by_admin)
    drops: Counter[str] = Counter()
    for _ in iter_pairs(session, rules=rules, drops=drops):
        pass
    return preview_from(drops, rules)


def preview_from(drops: Counter[str], rules: Rules) -> PreviewOut:
    return PreviewOut(
        items=drops["_items"],
        judged_items=drops["_judged_items"],
        candidate_pairs=drops["_candidate_pairs"],
        dropped={reason: drops[reason] for reason in DROP_REASONS},
        kept=drops["_kept"],
        adjudicated=drops["_adjudicated"],
        by_split={"train": drops["_split_train"], "test": drops["_split_test"]},
        excluded_annotators=rules.excluded_pseudonyms,
    )


# --- snapshots -------------------------------------------------------------------------------------------


def create_snapshot(
    session: Session,
    *,
    project: Project,
    filt: ExportFilter,
    name: str,
    key: bytes,
    created_by_id: int | None,
    enqueue: bool = True,
) -> Snapshot:
    """Record a snapshot to be written by the worker (state "pending"); the filter is checked now (an admin's:
    annotators may be named by username) and stored naming annotators by pseudonym only."""
    from app.jobs import service as jobs

    rules = resolve(session, project=project, filt=filt, key=key, by_admin=True)  # fails here, not in the worker
    snapshot = Snapshot(
        project_id=project.id,
        created_by_id=created_by_id,
        name=name.strip(),
        format=filt.format,
        filters=rules.public_filter().model_dump(mode="json"),
        state="pending",
    )
    session.add(snapshot)
    session.flush()
    if not enqueue:  # the caller writes it (command line)
        return snapshot
    job = jobs.enqueue(
        session,
        kind="snapshot",
        project_id=project.id,
        params={"snapshot_id": snapshot.id},
        created_by_id=created_by_id,
    )
    snapshot.job_id = job.id
    session.flush()
    return snapshot


def list_snapshots(session: Session, *, project: Project, limit: int = 100) -> list[Snapshot]:
    return list(
        session.scalars(
            select(Snapshot)
            .where(Snapshot.project_id == project.id)
            .order_by(Snapshot.created_at.desc(), Snapshot.id.desc())
            .limit(limit)
        )
    )


def get_snapshot(session: Session, *, snapshot_id: int) -> Snapshot:
    snapshot = session.get(Snapshot, snapshot_id)
    if snapshot is None:
        raise NotFound("No such snapshot")
    return snapshot


def latest_snapshot(session: Session, *, project_id: int) -> Snapshot:
    snapshot = session.scalar(
        select(Snapshot)
        .where(Snapshot.project_id == project_id, Snapshot.state == "ready")
        .order_by(Snapshot.created_at.desc(), Snapshot.id.desc())
        .limit(1)
    )
    if snapshot is None:
        raise NotFound("This project has no ready snapshot yet")
    return snapshot


def snapshot_path(snapshot: Snapshot, settings: Settings) -> Path:
    """The file of a ready snapshot; Conflict while it is being written, NotFound if it failed."""
    if snapshot.state == "pending":
        raise Conflict("The snapshot is still being written")
    if snapshot.state != "ready" or not snapshot.file_name:
        raise NotFound(f"The snapshot failed: {snapshot.error or 'no file'}")
    path = Path(settings.data_dir) / snapshot.file_name
    if not path.is_file() or path.stat().st_size != snapshot.size_bytes:
        raise NotFound("The snapshot's file is missing or damaged on the server")
    return path


def write_snapshot(
    db: Database, *, snapshot_id: int, settings: Settings, beat: Callable[[], None] | None = None
) -> str:
    """Write a pending snapshot: stream the pairs into a temporary file, fsync, rename into place, then mark it
    ready with its sha256, row count and data card. A crash leaves a temporary file, never a served one."""
    data_dir = Path(settings.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(data_dir, snapshot_id)
    key = pseudonyms.pseudonym_key(data_dir)
    with db.session(write=False) as s:
        if db.is_postgres:  # one consistent view of the data for the whole file
            s.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        snapshot = s.get(Snapshot, snapshot_id)
        if snapshot is None:
            raise NotFound("No such snapshot")
        if snapshot.state != "pending":
            return snapshot.state
        project = s.get(Project, snapshot.project_id)
        assert project is not None
        filt = ExportFilter.model_validate(snapshot.filters)
        # Written by the app itself: a filter stored before annotators were stored by pseudonym still resolves.
        rules = resolve(s, project=project, filt=filt, key=key, by_admin=True)
        drops: Counter[str] = Counter()
        digest = hashlib.sha256()
        rows = size = 0
        tmp = data_dir / f".snapshot-{snapshot_id}-{uuid.uuid4().hex}.tmp"
        try:
            with open(tmp, "wb") as f:
                pace = activity.pacer(data_dir, settings.export_yield_ms / 1000)
                for line in iter_jsonl(s, rules=rules, drops=drops, pace=pace):
                    f.write(line)
                    digest.update(line)
                    rows += 1
                    size += len(line)
                    if beat is not None and rows % 20000 == 0:
                        beat()
                f.flush()
                os.fsync(f.fileno())
            sha = digest.hexdigest()
            final = data_dir / f"snapshot-{snapshot_id}-{sha[:16]}.jsonl"
            os.replace(tmp, final)
            os.chmod(final, 0o444)
            _fsync_dir(data_dir)
        finally:
            tmp.unlink(missing_ok=True)
        card = data_card(s, project=project, snapshot=snapshot, rules=rules, drops=drops, sha=sha, rows=rows, size=size)
    with db.session() as s:
        marked = s.execute(
            update(Snapshot)
            .where(Snapshot.id == snapshot_id, Snapshot.state == "pending")
            .values(
                state="ready",
                row_count=rows,
                size_bytes=size,
                sha256=sha,
                file_name=final.name,
                card=card,
                filters=rules.public_filter().model_dump(mode="json"),
                finished_at=utcnow(),
            )
        )
        if marked.rowcount == 1:  # type: ignore[attr-defined]
            return "ready"
        # Another writer (a worker that took the job over) or a failure got there first: theirs stands.
        current = s.execute(select(Snapshot.state, Snapshot.file_name).where(Snapshot.id == snapshot_id)).one()
    if current.file_name != final.name:
        final.unlink(missing_ok=True)
    return str(current.state)


ABANDONED_AFTER_S = 600  # a live writer touches its temporary file continuously


def _remove_abandoned(data_dir: Path, snapshot_id: int) -> None:
    """Temporary files of this snapshot left by a writer that died (untouched for ten minutes)."""
    cutoff = time.time() - ABANDONED_AFTER_S
    for path in data_dir.glob(f".snapshot-{snapshot_id}-*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mtime < cutoff:
                path.unlink()


def fail_snapshot(db: Database, *, snapshot_id: int, error: str) -> None:
    with db.session() as s:
        s.execute(
            update(Snapshot)
            .where(Snapshot.id == snapshot_id, Snapshot.state == "pending")
            .values(state="failed", error=error[:2000], finished_at=utcnow())
        )


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def data_card(
    session: Session,
    *,
    project: Project,
    snapshot: Snapshot,
    rules: Rules,
    drops: Counter[str],
    sha: str,
    rows: int,
    size: int,
) -> str:
    """The snapshot's data card (markdown): what is in it, where it came from, how far to trust it."""
    from app.agreement import service as agreement

    filt = rules.filt
    lines = [
        f"# {project.name} — snapshot {snapshot.id}" + (f" ({snapshot.name})" if snapshot.name else ""),
        "",
        f"- Created: {utcnow():%Y-%m-%d %H:%M} UTC",
        f"- Pairs: {rows:,} ({filt.format} format, dimension `{filt.dimension}`, {filt.pairs} pairs)",
        f"- File: {size:,} bytes, sha256 `{sha}`",
        f"- Split: {drops['_split_train']:,} train, {drops['_split_test']:,} test (test share {filt.test_share})",
        f"- Adjudicated pairs: {drops['_adjudicated']:,}",
        "",
        "## Filter",
        "",
        "| rule | value |",
        "| --- | --- |",
    ]
    for key, value in rules.public_filter().model_dump(mode="json").items():
        lines.append(f"| {key} | `{orjson.dumps(value).decode()}` |")
    lines += ["", "## What the filter dropped", "", "| reason | pairs |", "| --- | --- |"]
    lines += [f"| {reason} | {drops[reason]:,} |" for reason in DROP_REASONS]

    counts = session.execute(
        select(Verdict.dimension, Verdict.kind, func.count())
        .join(Judgment, Judgment.id == Verdict.judgment_id)
        .join(Item, (Item.id == Judgment.item_id) & (Item.round == Judgment.round))
        .where(Judgment.project_id == project.id, Item.is_gold.is_(False))
        .group_by(Verdict.dimension, Verdict.kind)
    ).all()
    per_dim: dict[str, Counter[str]] = defaultdict(Counter)
    for dim, kind, n in counts:
        per_dim[dim][kind] = n
    lines += [
        "",
        "## Verdicts per dimension",
        "",
        "| dimension | preference | tie | n.a. |",
        "| --- | --- | --- | --- |",
    ]
    for dim in [OVERALL, *project.dimension_keys]:
        c = per_dim.get(dim, Counter())
        lines.append(f"| {dim} | {c['preference']:,} | {c['tie']:,} | {c['na']:,} |")

    figures = agreement.compute(session, project=project, resamples=0)
    lines += [
        "",
        "## Agreement (over preference pairs, whole project)",
        "",
        "| dimension | Fleiss' κ | Krippendorff's α | % agreement | units |",
        "| --- | --- | --- | --- | --- |",
    ]
    for d in figures.dimensions:
        lines.append(
            f"| {d.dimension} | {_fmt(d.fleiss_kappa)} | {_fmt(d.alpha)} | {_fmt(d.percent_agreement)} | {d.units:,} |"
        )

    pool = session.execute(
        select(Judgment.annotator_id, func.count())
        .join(Item, (Item.id == Judgment.item_id) & (Item.round == Judgment.round))
        .where(Judgment.project_id == project.id, Item.is_gold.is_(False))
        .group_by(Judgment.annotator_id)
    ).all()
    lines += [
        "",
        "## Annotator pool (pseudonymous)",
        "",
        "| annotator | judgments | in this export |",
        "| --- | --- | --- |",
    ]
    for user_id, n in sorted(pool, key=lambda r: -r[1]):
        lines.append(f"| {rules.pseudonym(user_id)} | {n:,} | {'no' if user_id in rules.excluded else 'yes'} |")

    models = session.execute(
        select(Candidate.model, func.count())
        .join(Item, (Item.id == Candidate.item_id) & (Item.round == Candidate.round))
        .where(Item.project_id == project.id, Item.is_gold.is_(False))
        .group_by(Candidate.model)
    ).all()
    lines += ["", "## Models", "", "| model | candidates |", "| --- | --- |"]
    lines += [f"| {m or '(imported, unknown)'} | {n:,} |" for m, n in models]
    lines += ["", "Sampling settings of the project's generation:", ""]
    lines += ["```json", sampling_settings(project), "```", ""]
    return "\n".join(lines)


SAMPLING_KEYS = ("mode", "strategy", "model", "temperature", "temperatures", "top_p", "max_tokens", "stop", "seed")


def sampling_settings(project: Project) -> str:
    """The project's generation settings as a data card may show them: model names and sampling parameters,
    never where the models are served or how (base URLs, keys, headers, timeouts)."""
    generation = project.generation or {}
    shown: dict[str, Any] = {k: generation[k] for k in SAMPLING_KEYS if k in generation}
    models = generation.get("models")
    if isinstance(models, list) and models:
        shown["models"] = [m.get("model") for m in models if isinstance(m, dict)]
    return orjson.dumps(shown).decode()


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


# --- export tokens ---------------------------------------------------------------------------------------


def export_tokens(session: Session, *, project: Project) -> list[ApiToken]:
    return list(
        session.scalars(
            select(ApiToken)
            .where(ApiToken.project_id == project.id, ApiToken.scope == "export")
            .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
        )
    )


def revoke_export_token(session: Session, *, project: Project, token_id: int) -> ApiToken:
    token = session.get(ApiToken, token_id)
    if token is None or token.project_id != project.id or token.scope != "export":
        raise NotFound("No such token")
    token.revoked_at = token.revoked_at or utcnow()
    session.flush()
    return token
