"""TRL preference rows, as prefstudio's export writes them: standard ``{"prompt": str, "chosen": str, "rejected":
str}`` or conversational (``prompt`` a list of messages, ``chosen``/``rejected`` ``[{"role": "assistant",
"content": …}]``), with an optional ``reason`` and ``meta``; also TRL's implicit-prompt form (no ``prompt``:
``chosen`` and ``rejected`` are whole conversations that share all but their last message).

Each row is an item with two candidates, ``chosen`` first, and one judgment chosen ≻ rejected on overall with the
row's reason. From ``meta`` (our export's) the item keeps its external id and the candidates their model, sampling
parameters and seed.
"""

from __future__ import annotations

from typing import Any

from app.items.formats.base import Converted, ForeignJudgment, FormatContext, Prompt, field_of, identical, messages_of
from app.items.formats.base import text_of as _text
from app.items.readers import LineError

ANNOTATOR = "trl"
MAX_REASON = 10_000


def _answer(value: Any, what: str) -> str:
    if isinstance(value, str):
        return _text(value, f"'{what}'")
    messages = messages_of(value, f"'{what}'")
    if len(messages) != 1 or messages[0]["role"] != "assistant":
        raise LineError(f"'{what}' must be a string or one assistant message")
    return messages[0]["content"]


def _implicit(record: dict[str, Any]) -> tuple[Prompt, str, str]:
    chosen = messages_of(record.get("chosen"), "'chosen'")
    rejected = messages_of(record.get("rejected"), "'rejected'")
    if chosen[:-1] != rejected[:-1] or len(chosen) < 2:
        raise LineError("without 'prompt', 'chosen' and 'rejected' must be conversations that differ only at the end")
    if chosen[-1]["role"] != "assistant" or rejected[-1]["role"] != "assistant":
        raise LineError("'chosen' and 'rejected' must end with an assistant message")
    return chosen[:-1], chosen[-1]["content"], rejected[-1]["content"]


def _candidate(text: str, meta: dict[str, Any], side: str) -> dict[str, Any]:
    """A candidate with what our export's meta says of it (model, sampling parameters, seed)."""
    candidate: dict[str, Any] = {"text": text}
    if isinstance(meta.get(f"{side}_model"), str) and meta[f"{side}_model"]:
        candidate["model"] = meta[f"{side}_model"]
    if isinstance(meta.get(f"{side}_params"), dict) and meta[f"{side}_params"]:
        candidate["params"] = meta[f"{side}_params"]
    seed = meta.get(f"{side}_seed")
    if isinstance(seed, int) and not isinstance(seed, bool):
        candidate["seed"] = seed
    return candidate


def convert(obj: Any, ctx: FormatContext) -> Converted:
    record = field_of(obj, "each row")
    meta: dict[str, Any] = record["meta"] if isinstance(record.get("meta"), dict) else {}
    prompt: Prompt
    if "prompt" in record:
        value = record["prompt"]
        prompt = _text(value, "'prompt'") if isinstance(value, str) else messages_of(value, "'prompt'")
        chosen, rejected = _answer(record.get("chosen"), "chosen"), _answer(record.get("rejected"), "rejected")
    else:
        prompt, chosen, rejected = _implicit(record)
    reason = record.get("reason") or ""
    if not isinstance(reason, str) or len(reason) > MAX_REASON:
        raise LineError(f"'reason' must be text of at most {MAX_REASON} characters")
    external_id = meta.get("external_id") if isinstance(meta.get("external_id"), str) else None
    source = {"format": "trl"} | ({"project": meta["project"]} if isinstance(meta.get("project"), str) else {})
    converted = Converted(
        prompt=prompt,
        candidates=[_candidate(chosen, meta, "chosen"), _candidate(rejected, meta, "rejected")],
        meta={"source": source},
        external_id=external_id or None,
    )
    if identical([chosen, rejected]):
        converted.skipped = "'chosen' and 'rejected' are the same answer"
        return converted
    verdicts = ctx.verdicts([[0], [1]])
    assert verdicts is not None
    converted.judgments.append(ForeignJudgment(ctx.name(ANNOTATOR), verdicts, reason=reason))
    return converted
