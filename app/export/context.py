"""What every exported pair of one item shares (``ItemContext``), and the row's prompt (``prompt_of``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from app.export.filters import Rules
from app.export.pairs import Pair, pairs_of
from app.export.repository import Decision, ExportJudgment, ItemRow


def prompt_of(prompt: str, fmt: str) -> Any:
    """The prompt for the row, from its stored JSON text (embedded as it is where it can be)."""
    is_chat = prompt.lstrip().startswith("[")
    if fmt == "conversational":
        return orjson.Fragment(prompt) if is_chat else [{"role": "user", "content": orjson.Fragment(prompt)}]
    if is_chat:  # a chat prompt in the standard format: a plain transcript
        messages = orjson.loads(prompt)
        return "\n\n".join(f"{m.get('role', 'user')}: {m.get('content', '')}" for m in messages)
    return orjson.Fragment(prompt)


@dataclass(slots=True)
class ItemContext:
    """What every exported pair of one item shares."""

    item_id: int
    external_id: str | None
    prompt: Any
    annotators: list[str]
    split: str
    decision: Decision | None
    reasons: dict[int, str]  # annotator → reason (the non-empty ones)
    labelled: list[tuple[int, dict[Pair, int]]]  # annotator → the labelled pairs of their verdict
    judges: int = 0  # annotators with a verdict on the dimension, whether or not it says anything of a pair
    judge_reason: str = ""  # a judge-labelled row's reason: the judge's rationale
    joined: dict[tuple[int, ...], str] = field(default_factory=dict)  # voters → their reasons, joined

    @classmethod
    def of(
        cls,
        item: ItemRow,
        rules: Rules,
        judged: list[ExportJudgment],
        verdicts: list[tuple[int, Any]],
        *,
        split: str,
        decision: Decision | None,
    ) -> ItemContext:
        """The context of an item with a kept pair: ``verdicts`` are (annotator, verdict) on the dimension."""
        k, mode = rules.project.k, rules.filters.pairs
        item_id, external_id, prompt, _round = item
        return cls(
            item_id=item_id,
            external_id=external_id,
            prompt=prompt_of(prompt, rules.filters.format),
            annotators=sorted({rules.pseudonym(j.annotator) for j in judged}),
            split=split,
            decision=decision,
            reasons={j.annotator: r for j in judged if (r := j.reason.strip())},
            labelled=[(a, pairs_of(*v, k, mode)) for a, v in verdicts],
            judges=len(verdicts),
        )

    def reason_of(self, pair: Pair, direction: int) -> str:
        """The decision's reason, or the reasons of those who voted for the exported direction, joined."""
        if self.judge_reason:
            return self.judge_reason
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
