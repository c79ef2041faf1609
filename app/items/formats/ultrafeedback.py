"""UltraFeedback: ``{"instruction", "completions": [{"model", "response", "overall_score", "fine-grained_score",
"annotations": {"helpfulness": {"Rating": "4"}, "honesty": …, "instruction_following": …, "truthfulness": …}}]}``,
and its binarized variant ``{"prompt", "chosen": [messages], "rejected": [messages], "score_chosen",
"score_rejected"}``.

The first k completions become the candidates (a record with fewer is refused). Overall is ordered by
``overall_score`` (else ``fine-grained_score``, else the mean of the aspect ratings); helpfulness judges
``helpful``, honesty ``honest``, and an aspect named like one of the project's dimensions judges that dimension.
Equal ratings are ties.
"""

from __future__ import annotations

import math
from typing import Any

from app.items.formats.base import (
    Converted,
    ForeignJudgment,
    FormatContext,
    Prompt,
    Tiers,
    field_of,
    identical,
    messages_of,
    text_of,
    tiers_of_scores,
)
from app.items.readers import LineError

ANNOTATOR = "ultrafeedback"
ASPECTS = {"helpfulness": "helpful", "honesty": "honest"}
OVERALL_FIELDS = ("overall_score", "fine-grained_score")


def _number(value: Any) -> float | None:
    """A rating as a number; None for what is no rating ("N/A", missing)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _rating(annotation: Any) -> float | None:
    if isinstance(annotation, list) and len(annotation) == 1:  # some copies wrap each aspect in a list
        annotation = annotation[0]
    return _number(annotation.get("Rating")) if isinstance(annotation, dict) else None


def _order(scores: list[float | None]) -> Tiers | None:
    """The candidates by score, when every candidate has one."""
    if any(s is None for s in scores):
        return None
    return tiers_of_scores([s for s in scores if s is not None])


def _overall(completions: list[dict[str, Any]]) -> Tiers | None:
    for key in OVERALL_FIELDS:
        order = _order([_number(c.get(key)) for c in completions])
        if order is not None:
            return order
    means: list[float | None] = []
    for c in completions:
        ratings = [r for a in (c.get("annotations") or {}).values() if (r := _rating(a)) is not None]
        means.append(sum(ratings) / len(ratings) if ratings else None)
    return _order(means)


def _aspects(completions: list[dict[str, Any]], ctx: FormatContext) -> dict[str, Tiers]:
    out: dict[str, Tiers] = {}
    names = {name for c in completions if isinstance(c.get("annotations"), dict) for name in c["annotations"]}
    for aspect in sorted(names):
        dim = ASPECTS.get(aspect, aspect)
        if dim not in ctx.dimensions:
            continue
        order = _order([_rating((c.get("annotations") or {}).get(aspect)) for c in completions])
        if order is not None:
            out[dim] = order
    return out


def _full(record: dict[str, Any], ctx: FormatContext) -> Converted:
    prompt = text_of(record.get("instruction"), "'instruction'")
    completions = record.get("completions")
    if not isinstance(completions, list) or not all(isinstance(c, dict) for c in completions):
        raise LineError("'completions' must be a list of objects")
    if len(completions) < ctx.k:
        raise LineError(f"{len(completions)} completions; this project has k = {ctx.k} (it needs at least {ctx.k})")
    chosen = completions[: ctx.k]
    candidates = []
    for i, c in enumerate(chosen, start=1):
        candidate: dict[str, Any] = {"text": text_of(c.get("response"), f"completion {i}: 'response'")}
        if isinstance(c.get("model"), str) and c["model"]:
            candidate["model"] = c["model"]
        candidates.append(candidate)
    source = {"format": "ultrafeedback", "completions": len(completions)}
    if isinstance(record.get("source"), str):
        source["dataset"] = record["source"]
    converted = Converted(prompt=prompt, candidates=candidates, meta={"source": source})
    if identical([c["text"] for c in candidates]):
        converted.skipped = "two of the responses are identical"
        return converted
    verdicts = ctx.verdicts(_overall(chosen), _aspects(chosen, ctx))
    if verdicts is None:
        converted.unjudged = "the overall ratings name no single best and worst response (or some are missing)"
    else:
        converted.judgments.append(ForeignJudgment(ctx.name(ANNOTATOR), verdicts))
    return converted


def _answer(messages: list[dict[str, str]], what: str) -> tuple[list[dict[str, str]], str]:
    if messages[-1]["role"] != "assistant" or len(messages) < 2:
        raise LineError(f"'{what}' must end with the assistant's answer after the user's prompt")
    return messages[:-1], messages[-1]["content"]


def _binarized(record: dict[str, Any], ctx: FormatContext) -> Converted:
    if ctx.k != 2:
        raise LineError(f"a binarized record has 2 responses; this project has k = {ctx.k}")
    context, chosen = _answer(messages_of(record.get("chosen"), "'chosen'"), "chosen")
    other, rejected = _answer(messages_of(record.get("rejected"), "'rejected'"), "rejected")
    if context != other:
        raise LineError("'chosen' and 'rejected' differ before their answers")
    prompt: Prompt = context[0]["content"] if len(context) == 1 and context[0]["role"] == "user" else context
    scores = [_number(record.get("score_chosen")), _number(record.get("score_rejected"))]
    external_id = f"ultrafeedback:{record['prompt_id']}" if isinstance(record.get("prompt_id"), str) else None
    converted = Converted(
        prompt=prompt,
        candidates=[{"text": chosen}, {"text": rejected}],
        meta={"source": {"format": "ultrafeedback", "variant": "binarized"}},
        external_id=external_id,
    )
    if identical([chosen, rejected]):
        converted.skipped = "'chosen' and 'rejected' are the same answer"
        return converted
    order = _order(scores) if None not in scores else [[0], [1]]
    verdicts = ctx.verdicts(order)
    assert verdicts is not None  # two candidates: an order or a tie
    converted.judgments.append(ForeignJudgment(ctx.name(ANNOTATOR), verdicts))
    return converted


def convert(obj: Any, ctx: FormatContext) -> Converted:
    record = field_of(obj, "each record")
    if "chosen" in record or "rejected" in record:
        return _binarized(record, ctx)
    return _full(record, ctx)
