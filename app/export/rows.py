"""Export rows: the pairs a filter keeps, made from the chunks ``app.export.repository`` reads, as
TRL-ready rows (prompt, chosen, rejected, reason, meta) and as JSONL.

The first two stages of the export's stream (the rest is in ``app.export.stream``): ``pair_rows`` makes the
rows, a chunk of items at a time; ``jsonl_chunks`` turns each chunk's rows into one buffer of JSONL, which is
what an export process sends its parent. ``jsonl_lines`` is the same JSONL a line at a time, for writers in
this process (snapshot files).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy.orm import Session

from app.export.context import ItemContext
from app.export.fate import NO_VOTES, Posterior, is_tie, item_fate, pair_fate
from app.export.filters import Rules
from app.export.judged import JudgeLabel, judge_labels, judge_meta
from app.export.pairs import FIRST, SECOND, TIE, Pair, Votes, count, pairs_of, ranked_of, split_of, strengths_of
from app.export.repository import (
    ExportCandidate,
    ExportJudgment,
    ItemChunk,
    ItemRow,
    prefetched,
    read_chunks,
)

PACE_ITEMS = 8  # items between two calls of an export's pace (~40 pairs, 2-3 ms of work)
ROUND_TALLY = "_round_"  # + the candidate round: the rows made from items on that round


def rounds_of(drops: Counter[str]) -> list[int]:
    """The candidate rounds the rows of an export came from (as its tallies counted them)."""
    return sorted(int(key[len(ROUND_TALLY) :]) for key, n in drops.items() if key.startswith(ROUND_TALLY) and n)


def pair_rows(
    session: Session, *, rules: Rules, drops: Counter[str] | None = None, pace: Callable[[], Any] | None = None
) -> Iterator[dict[str, Any]]:
    """Every pair the filter keeps, as an export row ready for ``orjson.dumps`` (stored JSON is embedded as
    ``orjson.Fragment``); ``drops`` counts what each rule left out (and more); ``pace`` is called every
    ``PACE_ITEMS`` items and before each query (to give way to people's requests: ``app.kit.activity``).

    The next chunk of items is read from the database while this one's pairs are made (see ``prefetched``)."""
    for row in _pair_rows_by_chunk(session, rules=rules, drops=drops, pace=pace):
        if row is not None:
            yield row


def jsonl_lines(
    session: Session, *, rules: Rules, drops: Counter[str] | None = None, pace: Callable[[], Any] | None = None
) -> Iterator[bytes]:
    """The export as JSONL lines (UTF-8, one pair a line); ``pace``: see ``pair_rows``."""
    dumps, newline = orjson.dumps, orjson.OPT_APPEND_NEWLINE
    for row in pair_rows(session, rules=rules, drops=drops, pace=pace):
        yield dumps(row, option=newline)


def jsonl_chunks(
    session: Session,
    *,
    rules: Rules,
    ranges: Sequence[tuple[int, int | None]],
    drops: Counter[str] | None = None,
    pace: Callable[[], Any] | None = None,
) -> Iterator[bytearray]:
    """The JSONL of the items of each id range in turn, one value per range (empty if it keeps no pair);
    ``pace``: see ``pair_rows``.

    Lines are appended to one buffer as they are made: orjson's bytes keep the capacity they grew to (8 KB for
    a 1.4 KB line), so a list of a chunk's lines held 20 MB where its text is 3.5."""
    dumps, newline = orjson.dumps, orjson.OPT_APPEND_NEWLINE
    lines = bytearray()
    for row in _pair_rows_by_chunk(session, rules=rules, drops=drops, ranges=ranges, pace=pace):
        if row is None:
            yield lines
            lines = bytearray()
        else:
            lines += dumps(row, option=newline)


def _pair_rows_by_chunk(
    session: Session,
    *,
    rules: Rules,
    drops: Counter[str] | None = None,
    ranges: Sequence[tuple[int, int | None]] | None = None,
    pace: Callable[[], Any] | None = None,
) -> Iterator[dict[str, Any] | None]:
    """``pair_rows``, with None after each chunk's rows; ``ranges``: the chunks' id ranges (see ``read_chunks``)."""
    drops = drops if drops is not None else Counter()
    maker = _RowMaker(rules)
    if rules.by_judge:  # read before the chunks' reader thread takes the session
        maker.judged = judge_labels(session, project=rules.project, filters=rules.filters, kappa=rules.judge_kappa)
    chunks = read_chunks(
        session, project=rules.project, dims=rules.dims, ranges=ranges, pace=pace, rounds=rules.filters.rounds
    )
    for chunk in prefetched(session, chunks):
        tallies: Counter[str] = Counter()
        for item in chunk.items:
            tallies["_items"] += 1
            if pace is not None and not tallies["_items"] % PACE_ITEMS:
                pace()
            yield from _item_rows(chunk, item, rules, maker, tallies)
        drops.update(tallies)
        yield None


def _item_rows(
    chunk: ItemChunk, item: ItemRow, rules: Rules, maker: _RowMaker, tallies: Counter[str]
) -> Iterator[dict[str, Any]]:
    """The rows of one item's kept pairs by the filter's ``source``: people's (human), the judge's (judge), or
    people's where their votes keep the pair and the judge's on the item's other pairs (both)."""
    source = rules.filters.source
    if source == "human":
        yield from _human_rows(chunk, item, rules, maker, tallies)
        return
    if source == "arena":  # people's votes on an arena's items, marked as such, with the models compared
        by_id = {c.id: c.model_id for c in chunk.candidates.get(item[0], [])}
        for row in _human_rows(chunk, item, rules, maker, tallies):
            meta = row["meta"]
            meta["label_source"] = "arena"
            meta["chosen_model_id"] = by_id.get(meta["chosen_candidate_id"])
            meta["rejected_model_id"] = by_id.get(meta["rejected_candidate_id"])
            yield row
        return
    covered: set[tuple[int, int]] = set()
    if source == "both":
        for row in _human_rows(chunk, item, rules, maker, tallies):
            meta = row["meta"]
            meta["label_source"] = "human"
            meta["judge"] = None  # every row of a file has the same keys (Arrow refuses mixed ones)
            covered.add(_pair_key(meta))
            yield row
    yield from _judge_rows(chunk, item, rules, maker, tallies, covered)


def _pair_key(meta: dict[str, Any]) -> tuple[int, int]:
    a, b = meta["chosen_position"], meta["rejected_position"]
    return (a, b) if a < b else (b, a)


def _judge_rows(
    chunk: ItemChunk,
    item: ItemRow,
    rules: Rules,
    maker: _RowMaker,
    tallies: Counter[str],
    covered: set[tuple[int, int]],
) -> Iterator[dict[str, Any]]:
    """The judge-labelled rows of one item, for the pairs not in ``covered`` (those people's votes exported).
    The item's split and "problematic prompt" flags apply; people's vote thresholds and vetoes do not."""
    item_id = item[0]
    label = maker.judged.get(item_id)
    candidates = chunk.candidates.get(item_id)
    if label is None or candidates is None or len(candidates) < 2:
        return
    if label.dropped is not None:
        tallies[label.dropped] += 1
        return
    filters = rules.filters
    split = split_of(rules.slug, item_id, filters.test_share)
    judged = chunk.judgments.get(item_id, [])
    if (filters.drop_problematic and any(j.problematic for j in judged)) or filters.split not in ("all", split):
        return
    by_position = {c.position: c for c in candidates}
    labels = label.labels({c.id: c.position for c in candidates}, rules.project.k, filters.pairs)
    texts = {c.position: c.stripped for c in candidates}
    facts = _PairFacts(item_id, rules, {}, {}, {}, texts, [], [])
    facts.context = ItemContext.of(item, rules, [], [], split=split, decision=None)
    facts.context.judge_reason = label.rationale.strip()
    meta = judge_meta(label, rules.judge_kappa)
    kept = 0
    for pair in sorted(labels):
        direction = labels[pair]
        i, j = pair
        if pair in covered or texts[i] == texts[j] or (direction == TIE) != rules.ties:
            continue
        chosen, rejected = (j, i) if direction == SECOND else (i, j)
        row = maker(facts, pair, direction, by_position[chosen], by_position[rejected])
        row["meta"]["label_source"] = "judge"
        row["meta"]["judge"] = meta
        kept += 1
        yield row
    tallies["_kept"] += kept
    tallies["_judge_rows"] += kept
    tallies[f"_split_{split}"] += kept
    if kept:
        tallies[f"{ROUND_TALLY}{item[3]}"] += kept


def _human_rows(
    chunk: ItemChunk, item: ItemRow, rules: Rules, maker: _RowMaker, tallies: Counter[str]
) -> Iterator[dict[str, Any]]:
    """The rows of one item's pairs people's votes keep; ``tallies`` counts what was looked at and what each
    rule dropped."""
    filters, k, mode, dim = rules.filters, rules.project.k, rules.filters.pairs, rules.filters.dimension
    item_id = item[0]
    candidates = chunk.candidates.get(item_id)
    if candidates is None or len(candidates) < 2:
        return
    judged = chunk.judgments.get(item_id, [])
    if rules.excluded:
        judged = [j for j in judged if j.annotator not in rules.excluded]
    decision = chunk.decisions.get(item_id) if filters.adjudicated else None
    if not judged and decision is None:
        return
    tallies["_judged_items"] += 1
    verdicts = [(j.annotator, v) for j in judged if (v := j.verdicts.get(dim)) is not None]
    votes = count(tuple(v for _, v in verdicts), k, mode)
    decided: dict[str, dict[Pair, int] | None] = {}
    if decision is not None:
        ids_to_pos = {c.id: c.position for c in candidates}
        decided = {d: decided_pairs(decision[0], d, ids_to_pos=ids_to_pos, k=k, mode=mode) for d in rules.dims}
    decided_here = decided.get(dim)
    pairs = sorted(decided_here if decided_here is not None else votes)
    tallies["_candidate_pairs"] += len(pairs)
    if not pairs:
        return
    split = split_of(rules.slug, item_id, filters.test_share)
    problematic = any(j.problematic for j in judged)
    dropped = item_fate(
        filters, judgments=len(judged), adjudicated=decision is not None, problematic=problematic, split=split
    )
    if dropped is not None:
        tallies[dropped] += len(pairs)
        return
    veto_votes = {
        veto: count(tuple(v for j in judged if (v := j.verdicts.get(veto)) is not None), k, mode)
        for veto in filters.veto
    }
    facts = _PairFacts(
        item_id, rules, votes, decided, veto_votes, {c.position: c.stripped for c in candidates}, judged, verdicts
    )
    made = _tie_rows if rules.ties else _kept_rows
    kept = 0
    by_position = {c.position: c for c in candidates}
    for pair, direction, chosen_pos, rejected_pos in made(facts, pairs, tallies):
        if facts.context is None:
            facts.context = ItemContext.of(item, rules, judged, verdicts, split=split, decision=decision)
        kept += 1
        row = maker(facts, pair, direction, by_position[chosen_pos], by_position[rejected_pos])
        # For the data card's label smoothing hint: the mean disagreement of the exported pairs.
        certainty = row["meta"].get("confidence") if filters.label == "model" else row["meta"]["agreement"]
        if certainty is not None:
            tallies["_disagreement_e6"] += round((1 - certainty) * 1_000_000)
            tallies["_disagreement_n"] += 1
        yield row
    tallies["_kept"] += kept
    tallies[f"_split_{split}"] += kept
    if kept:
        tallies[f"{ROUND_TALLY}{item[3]}"] += kept
    if decision is not None:
        tallies["_adjudicated"] += kept


@dataclass(slots=True)
class _PairFacts:
    """What the rules and the rows of one item's pairs look at: votes, decisions, texts, posteriors, strengths."""

    item_id: int
    rules: Rules
    votes: dict[Pair, Votes]
    decided: dict[str, dict[Pair, int] | None]
    veto_votes: dict[str, dict[Pair, Votes]]
    texts: dict[int, str]
    judged: list[ExportJudgment]
    verdicts: list[tuple[int, Any]]
    context: ItemContext | None = None
    _strengths: list[tuple[dict[Pair, int], dict[Pair, int]]] | None = None

    def posterior(self, pair: Pair) -> Posterior | None:
        of = self.rules.posterior
        return of(self.item_id, pair) if of is not None else None

    def signed_strengths(self, pair: Pair, direction: int) -> list[int]:
        """The strengths of the votes on ``pair`` that carry one, signed: + for the ``direction`` (TIE: for
        the first candidate), − against it, 0 for a tie; in the order the judgments were made."""
        if self._strengths is None:
            self._strengths = _strengths_of(self.rules, self.judged)
        towards = FIRST if direction == TIE else direction
        out: list[int] = []
        for labels, strengths in self._strengths:
            label, strength = labels.get(pair), strengths.get(pair)
            if label is not None and strength is not None:
                out.append(0 if label == TIE else strength if label == towards else -strength)
        return out


def _strengths_of(rules: Rules, judged: list[ExportJudgment]) -> list[tuple[dict[Pair, int], dict[Pair, int]]]:
    """Per judgment with a verdict on the dimension: its labelled pairs and the strength of each."""
    k, mode, dim = rules.project.k, rules.filters.pairs, rules.filters.dimension
    out = []
    for judgment in judged:
        verdict = judgment.verdicts.get(dim)
        if verdict is not None:
            strengths = strengths_of(*verdict, k, judgment.strengths.get(dim))
            if strengths:
                out.append((pairs_of(*verdict, k, mode), strengths))
    return out


def _mean(values: list[int]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def _kept_rows(facts: _PairFacts, pairs: list[Pair], tallies: Counter[str]) -> Iterator[tuple[Pair, int, int, int]]:
    """(pair, direction, chosen position, rejected position) of each pair the filter keeps."""
    rules = facts.rules
    by_strength = rules.filters.min_strength is not None
    for pair in pairs:
        strength = _mean(facts.signed_strengths(pair, FIRST)) if by_strength else None
        reason, chosen_first = pair_fate(
            rules.filters,
            pair,
            facts.votes.get(pair) or NO_VOTES,
            decided=facts.decided,
            veto_votes=facts.veto_votes,
            texts=facts.texts,
            posterior=facts.posterior(pair),
            strength=strength,
        )
        if reason is not None:
            tallies[reason] += 1
            continue
        i, j = pair
        yield (pair, FIRST, i, j) if chosen_first else (pair, SECOND, j, i)


def _tie_rows(facts: _PairFacts, pairs: list[Pair], tallies: Counter[str]) -> Iterator[tuple[Pair, int, int, int]]:
    """(pair, TIE, i, j) of each pair whose consensus is a tie (identical answers left out)."""
    for pair in pairs:
        votes = facts.votes.get(pair) or NO_VOTES
        tie = is_tie(facts.rules.filters, votes, decided=facts.decided, pair=pair, posterior=facts.posterior(pair))
        i, j = pair
        if not tie or facts.texts[i] == facts.texts[j]:
            tallies["_not_tie"] += 1
            continue
        yield pair, TIE, i, j


def decided_pairs(
    verdicts: dict[str, Any], dim: str, *, ids_to_pos: dict[int, int], k: int, mode: str
) -> dict[Pair, int] | None:
    """The labelled pairs an adjudication's verdict on ``dim`` implies (None: it has none on ``dim``)."""
    verdict = verdicts.get(dim)
    if not verdict:
        return None
    chosen = ids_to_pos.get(verdict.get("chosen")) if verdict.get("chosen") is not None else None
    rejected = ids_to_pos.get(verdict.get("rejected")) if verdict.get("rejected") is not None else None
    ranked = ranked_of(verdict.get("ranking"), ids_to_pos) if verdict.get("ranking") else None
    return pairs_of(verdict["kind"], chosen, rejected, ranked, k, mode)


class _RowMaker:
    """Export rows of one filter: the per-export values looked up once."""

    def __init__(self, rules: Rules) -> None:
        self.slug = rules.slug
        self.dimension = rules.filters.dimension
        self.chat = rules.filters.format == "conversational"
        self.with_strength = rules.with_strength
        self.with_confidence = rules.posterior is not None
        self._share: dict[tuple[int, int], float | None] = {}
        self.judged: dict[int, JudgeLabel] = {}  # source ≠ human: the judge's label of each item

    def share(self, part: int, whole: int) -> float | None:
        value = self._share.get((part, whole), 0.0)
        if value == 0.0:
            value = self._share[(part, whole)] = round(part / whole, 4) if whole else None
        return value

    def __call__(
        self, facts: _PairFacts, pair: Pair, direction: int, chosen: ExportCandidate, rejected: ExportCandidate
    ) -> dict[str, Any]:
        item = facts.context
        assert item is not None
        first, second, ties = facts.votes.get(pair) or NO_VOTES
        for_chosen, against = (second, first) if direction == SECOND else (first, second)
        agreeing = ties if direction == TIE else for_chosen
        answer_chosen: Any = chosen.text
        answer_rejected: Any = rejected.text
        if self.chat:
            answer_chosen = [{"role": "assistant", "content": chosen.text}]
            answer_rejected = [{"role": "assistant", "content": rejected.text}]
        meta = {
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
            "agreement": self.share(agreeing, for_chosen + against + ties),
            "item_agreement": self.share(agreeing, item.judges),
            "adjudicated": item.decision is not None,
            "annotators": item.annotators,
            "split": item.split,
        }
        if self.with_strength:
            strengths = facts.signed_strengths(pair, direction)
            mean = _mean(strengths)
            meta["strength"] = strengths
            meta["mean_strength"] = mean
            meta["strength_margin"] = round(mean / 3, 4) if mean is not None else None
        if self.with_confidence:
            posterior = facts.posterior(pair)
            meta["confidence"] = None if posterior is None else round(posterior[min(direction, 2)], 4)
        if direction == TIE:
            meta["tie"] = True
        return {
            "prompt": item.prompt,
            "chosen": answer_chosen,
            "rejected": answer_rejected,
            "reason": item.reason_of(pair, direction),
            "meta": meta,
        }
