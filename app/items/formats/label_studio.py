"""Label Studio's JSON export of pairwise or ranking tasks: ``[{"id", "data": {"prompt", "answer1", "answer2"},
"annotations": [{"completed_by": 3, "result": [{"type": "pairwise", "from_name", "to_name": "answer1,answer2",
"value": {"selected": "left"}}], "was_cancelled": false, "created_at": …}]}]``.

The prompt is ``data.prompt`` (or ``instruction``, ``question``, ``input``). The candidates are the pair of fields
``answer1``/``answer2`` (or ``response1``/``response2``, ``text1``/``text2``, ``answer_a``/``answer_b``,
``response_a``/``response_b``), left first; or, for the Ranker tag, a list of ``{"id", "body"}`` in ``data`` (in
its order), ranked by ``value.ranker`` (ids, best first). Each annotation that was not cancelled is a judgment of
``label-studio:<completed_by>`` on overall, or on the dimension its control is named after; a ``textarea`` result
is its reason.
"""

from __future__ import annotations

from typing import Any

from app.items.formats.base import (
    Converted,
    ForeignJudgment,
    FormatContext,
    Tiers,
    field_of,
    text_of,
    tool_record,
)
from app.items.readers import LineError
from app.models import OVERALL

PREFIX = "label-studio"
PAIR_FIELDS = (
    ("answer1", "answer2"),
    ("response1", "response2"),
    ("text1", "text2"),
    ("answer_a", "answer_b"),
    ("response_a", "response_b"),
)
ITEM_TEXT = ("body", "text", "html", "title")


def _candidates(data: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The responses' texts and their names (field names, or the Ranker's item ids), in canonical order."""
    for left, right in PAIR_FIELDS:
        if left in data and right in data:
            return [text_of(data[left], f"'data.{left}'"), text_of(data[right], f"'data.{right}'")], [left, right]
    for key, value in data.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) and "id" in v for v in value):
            texts = [text_of(next((v[f] for f in ITEM_TEXT if v.get(f)), None), f"'data.{key}' item") for v in value]
            return texts, [str(v["id"]) for v in value]
    raise LineError("'data' has no pair of answers (answer1 and answer2, …) and no list of items to rank")


def _ranked(result: dict[str, Any], names: list[str]) -> Tiers:
    ranker = (result.get("value") or {}).get("ranker")
    if isinstance(ranker, list):  # older exports: the ids themselves
        order = ranker
    elif isinstance(ranker, dict):
        lists = [v for k, v in ranker.items() if k != "_"]
        if len(lists) != 1:
            raise LineError("a ranker result with buckets is not a ranking of every response")
        order = lists[0]
    else:
        raise LineError("a ranker result needs 'value.ranker'")
    where = {name: i for i, name in enumerate(names)}
    if not isinstance(order, list) or sorted(str(o) for o in order) != sorted(names):
        raise LineError("a ranker result must order every item of the task once")
    return [[where[str(o)]] for o in order]


def _tiers(result: dict[str, Any], names: list[str]) -> Tiers | None:
    kind = result.get("type")
    if kind == "pairwise":
        if len(names) != 2:
            raise LineError("a pairwise result on a task with more than two responses")
        selected = (result.get("value") or {}).get("selected")
        if selected not in ("left", "right"):
            raise LineError('a pairwise result\'s \'value.selected\' must be "left" or "right"')
        return [[0], [1]] if selected == "left" else [[1], [0]]
    if kind == "ranker":
        return _ranked(result, names)
    return None


def _annotator(annotation: dict[str, Any], ctx: FormatContext) -> str:
    user = annotation.get("completed_by")
    if isinstance(user, dict):
        user = user.get("email") or user.get("id")
    return ctx.user_name(PREFIX, user)


def _judgment(annotation: Any, names: list[str], ctx: FormatContext) -> ForeignJudgment | None:
    annotation = field_of(annotation, "each annotation")
    if annotation.get("was_cancelled"):
        return None
    results = annotation.get("result") or []
    if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
        raise LineError("an annotation's 'result' must be a list of objects")
    orders: dict[str, Tiers] = {}
    reasons: list[str] = []
    for result in results:
        tiers = _tiers(result, names)
        if tiers is not None:
            name = result.get("from_name")
            orders[name if name in ctx.dimensions else OVERALL] = tiers
        elif result.get("type") == "textarea":
            reasons.extend(t for t in (result.get("value") or {}).get("text") or [] if isinstance(t, str))
    if OVERALL not in orders:
        return None
    verdicts = ctx.verdicts(orders.pop(OVERALL), orders)
    if verdicts is None:
        return None
    created = annotation.get("created_at") if isinstance(annotation.get("created_at"), str) else None
    reason = "\n\n".join(r.strip() for r in reasons if r.strip())[:10_000]
    return ForeignJudgment(_annotator(annotation, ctx), verdicts, reason=reason, created_at=created)


def convert(obj: Any, ctx: FormatContext) -> Converted:
    task = field_of(obj, "each task")
    data = field_of(task.get("data"), "'data'")
    texts, names = _candidates(data)
    if len(texts) != ctx.k:
        raise LineError(f"the task has {len(texts)} responses; this project has k = {ctx.k}")
    converted = tool_record(
        data, "data.", texts, fmt="label-studio", prefix=PREFIX, record_id=task.get("id"), extra={"responses": names}
    )
    if converted.skipped:
        return converted
    annotations = task.get("annotations") or []
    if not isinstance(annotations, list):
        raise LineError("'annotations' must be a list")
    for annotation in annotations:
        judgment = _judgment(annotation, names, ctx)
        if judgment is not None:
            converted.judgments.append(judgment)
    if not converted.judgments:
        converted.unjudged = "no annotation (not cancelled) compares or ranks the responses"
    return converted
