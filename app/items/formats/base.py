"""What a foreign format's record becomes: an item (prompt, candidates, meta) and the judgments of its external
annotators, with candidates named by their canonical position (the order the item stores them in).

A converter reads one record and returns a ``Converted``, or raises ``LineError`` saying what is wrong with it. The
project's shape (k, rank mode, dimensions) comes in a ``FormatContext``, which also turns an order of candidates
(tiers, best first) into the verdict the project asks for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.annotation.dimensions import required_keys
from app.items.readers import LineError
from app.models import OVERALL, Project

Prompt = str | list[dict[str, str]]
Tiers = list[list[int]]  # every candidate position once, best tier first; a tier of several is a tie
Verdict = str | dict[str, Any]


@dataclass
class ForeignJudgment:
    """One external annotator's judgment of a record, in the judgments file's shape (docs/import-judgments.md)."""

    annotator: str
    verdicts: dict[str, Verdict]
    reason: str = ""
    created_at: str | None = None


@dataclass
class Converted:
    """A record as an item and its judgments. ``skipped``: why the record brings nothing (the responses are
    identical); ``unjudged``: why it brings an item but no judgment (its ratings name no best and worst)."""

    prompt: Prompt
    candidates: list[dict[str, Any]]
    meta: dict[str, Any]
    external_id: str | None = None
    judgments: list[ForeignJudgment] = field(default_factory=list)
    skipped: str | None = None
    unjudged: str | None = None


@dataclass(frozen=True)
class FormatContext:
    """What a converter needs of the project, and the annotator name given with the import (if any)."""

    k: int
    rank_mode: bool
    dimensions: tuple[str, ...]
    required: frozenset[str]
    annotator: str | None = None

    @classmethod
    def of(cls, project: Project, annotator: str | None = None) -> FormatContext:
        return cls(
            k=project.k,
            rank_mode=project.ranking_mode == "rank" and project.k > 2,
            dimensions=tuple(project.dimension_keys),
            required=frozenset(required_keys(project)),
            annotator=annotator or None,
        )

    def name(self, default: str) -> str:
        """The annotator of a format with one source of judgments: the given name, else the format's."""
        return self.annotator or default

    def user_name(self, prefix: str, user: Any) -> str:
        """The annotator of a tool with users: ``prefix:<user>``, the prefix replaced by the given name."""
        if isinstance(user, bool) or not isinstance(user, str | int) or str(user).strip() == "":
            raise LineError("an annotation names no user")
        return f"{self.annotator or prefix}:{user}"

    def verdict(self, tiers: Tiers | None) -> Verdict | None:
        """The verdict an order implies: a tie (one tier), a ranking (rank mode), best and worst (each alone in
        its tier); None when it names no single best and worst (e.g. two candidates share the top rating)."""
        if not tiers:
            return None
        if len(tiers) == 1:
            return "tie"
        if self.rank_mode:
            return {"ranking": tiers}
        if len(tiers[0]) == 1 and len(tiers[-1]) == 1:
            return {"chosen": tiers[0][0], "rejected": tiers[-1][0]}
        return None

    def verdicts(self, overall: Tiers | None, others: dict[str, Tiers] | None = None) -> dict[str, Verdict] | None:
        """Overall and every dimension: what the orders say, "na" for a required dimension they do not judge;
        None when the order on overall names no best and worst."""
        first = self.verdict(overall)
        if first is None:
            return None
        out: dict[str, Verdict] = {OVERALL: first}
        for dim in self.dimensions:
            verdict = self.verdict((others or {}).get(dim))
            if verdict is not None:
                out[dim] = verdict
            elif dim in self.required:
                out[dim] = "na"
        return out


def tiers_of_scores(scores: Sequence[float]) -> Tiers:
    """Positions grouped by score, highest first (equal scores share a tier)."""
    by_score: dict[float, list[int]] = {}
    for position, score in enumerate(scores):
        by_score.setdefault(score, []).append(position)
    return [by_score[s] for s in sorted(by_score, reverse=True)]


def preferred(first_wins: bool) -> Tiers:
    """The order of a pair: candidate 0 before 1, or 1 before 0."""
    return [[0], [1]] if first_wins else [[1], [0]]


def text_of(value: Any, what: str) -> str:
    """A non-empty string, or a LineError naming the field."""
    if not isinstance(value, str) or not value.strip():
        raise LineError(f"{what} must be a non-empty string")
    return value


def messages_of(value: Any, what: str) -> list[dict[str, str]]:
    """A list of chat messages ``{"role", "content"}`` (extra keys dropped), or a LineError naming the field."""
    if not isinstance(value, list) or not value:
        raise LineError(f"{what} must be a list of messages")
    out = []
    for i, m in enumerate(value, start=1):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise LineError(f'{what}: message {i} must be {{"role": ..., "content": ...}}')
        out.append({"role": m["role"], "content": text_of(m.get("content"), f"{what}: message {i} content")})
    return out


def identical(texts: Sequence[str]) -> bool:
    """Whether two of the responses are the same text (spacing aside): such a record names no preference."""
    normalized = [" ".join(t.split()) for t in texts]
    return len(set(normalized)) != len(normalized)


PROMPT_FIELDS = ("prompt", "instruction", "question", "input")


def prompt_field(fields: dict[str, Any], where: str) -> Prompt:
    """The prompt of a tool's record: its first field named like one (a text, or a chat)."""
    for name in PROMPT_FIELDS:
        if name in fields:
            value = fields[name]
            what = f"field '{where}{name}'"
            return text_of(value, what) if isinstance(value, str) else messages_of(value, what)
    raise LineError(f"no prompt field (one of {', '.join(PROMPT_FIELDS)})")


def source_id(prefix: str, value: Any) -> str | None:
    """The item id ``prefix:<the source's id>``, when the record has an id."""
    if isinstance(value, bool) or not isinstance(value, str | int) or str(value) == "":
        return None
    return f"{prefix}:{value}"


def tool_record(
    fields: dict[str, Any],
    where: str,
    texts: list[str],
    *,
    fmt: str,
    prefix: str,
    record_id: Any,
    extra: dict[str, Any],
) -> Converted:
    """A labelling tool's record (Argilla, Label Studio) as an item: the prompt from ``fields``, the responses as
    candidates, the source in meta, the id ``prefix:<record_id>``; skipped when two responses are identical."""
    converted = Converted(
        prompt=prompt_field(fields, where),
        candidates=[{"text": t} for t in texts],
        meta={"source": {"format": fmt, "id": record_id, **extra}},
        external_id=source_id(prefix, record_id),
    )
    if identical(texts):
        converted.skipped = "two of the responses are identical"
    return converted


def field_of(obj: Any, what: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise LineError(f"{what} must be a JSON object")
    return obj


Converter = Callable[[Any, FormatContext], Converted]
