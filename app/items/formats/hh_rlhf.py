"""Anthropic HH-RLHF: ``{"chosen": "\\n\\nHuman: …\\n\\nAssistant: …", "rejected": "…"}``.

The two transcripts share everything before their last assistant turn: that is the prompt (one human turn: a text
prompt; several turns: a list of chat messages). The two last assistant turns are the candidates, ``chosen`` first;
the label is chosen ≻ rejected on overall, and the record says nothing of the other dimensions.
"""

from __future__ import annotations

import re
from typing import Any

from app.items.formats.base import Converted, ForeignJudgment, FormatContext, Prompt, field_of, identical, preferred
from app.items.readers import LineError

ANNOTATOR = "hh-rlhf"
_TURN = re.compile(r"\n\n(Human|Assistant):")
_ROLES = {"Human": "user", "Assistant": "assistant"}


def transcript_messages(value: Any, what: str) -> list[dict[str, str]]:
    """A ``\\n\\nHuman: …\\n\\nAssistant: …`` transcript as chat messages (content stripped)."""
    if not isinstance(value, str) or not value.strip():
        raise LineError(f"'{what}' must be a non-empty transcript")
    text = value if value.startswith("\n\n") else "\n\n" + value.lstrip()
    parts = _TURN.split(text)
    if parts[0].strip() or len(parts) < 3:
        raise LineError(f"'{what}' must be turns that begin with '\\n\\nHuman:' or '\\n\\nAssistant:'")
    return [
        {"role": _ROLES[role], "content": content.strip()}
        for role, content in zip(parts[1::2], parts[2::2], strict=True)
    ]


def convert(obj: Any, ctx: FormatContext) -> Converted:
    record = field_of(obj, "each record")
    chosen = transcript_messages(record.get("chosen"), "chosen")
    rejected = transcript_messages(record.get("rejected"), "rejected")
    for name, turns in (("chosen", chosen), ("rejected", rejected)):
        if turns[-1]["role"] != "assistant" or len(turns) < 2:
            raise LineError(f"'{name}' must end with an assistant turn that follows a human one")
        if not turns[-1]["content"]:
            raise LineError(f"the last assistant turn of '{name}' is empty")
    if chosen[:-1] != rejected[:-1]:
        raise LineError("'chosen' and 'rejected' differ before their last assistant turn")
    context = chosen[:-1]
    if context[-1]["role"] != "user":
        raise LineError("the turn before the last assistant turn must be a human one")
    if any(not m["content"] for m in context):
        raise LineError("a turn of the conversation is empty")
    prompt: Prompt = context[0]["content"] if len(context) == 1 else context
    texts = [chosen[-1]["content"], rejected[-1]["content"]]
    meta = {"source": {"format": "hh-rlhf"}}
    converted = Converted(prompt=prompt, candidates=[{"text": t} for t in texts], meta=meta)
    if identical(texts):
        converted.skipped = "'chosen' and 'rejected' end with the same answer: no preference to import"
        return converted
    verdicts = ctx.verdicts(preferred(True))
    assert verdicts is not None  # a strict order of two always has a best and a worst
    converted.judgments.append(ForeignJudgment(ctx.name(ANNOTATOR), verdicts))
    return converted
