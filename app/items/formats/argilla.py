"""Argilla 2.x records (``rg.Dataset.records.to_json``: a JSON list; or one record a line): ``{"id", "fields":
{"prompt": …, "response1": …, "response2": …}, "responses": {"ranking": [{"value": ["response2", "response1"],
"user_id": …, "status": "submitted"}]}, …}``.

The prompt is the field ``prompt`` (or ``instruction``, ``question``, ``input``), a text or a chat; the candidates
are the fields named ``response1``, ``response2``, … (also ``answer``/``completion``/``generation``, numbered or
lettered), in that order. Each user's submitted answer to the preference question (named ``ranking``,
``preference``, ``label``, ``choice``, ``best`` or ``overall``) is a judgment on overall: a ranking (field names,
best first; or ``[{"value", "rank"}]``, equal ranks tied) or a label (the better field's name, or ``tie``). A
question named like a project dimension judges that dimension; a text question named ``rationale``, ``reason``,
``comment`` or ``feedback`` is the reason. Drafts and discarded answers are left out. A flattened record (fields at
the top, ``ranking.responses`` with ``ranking.responses.users``) is read the same way.
"""

from __future__ import annotations

import re
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

PREFIX = "argilla"
RESPONSE_FIELD = re.compile(r"^(?:response|answer|completion|generation)[-_]?(\d+|[a-z])$", re.IGNORECASE)
PREFERENCE_QUESTIONS = ("ranking", "preference", "label", "choice", "best", OVERALL)
REASON_QUESTIONS = ("rationale", "reason", "comment", "feedback")
TIE_LABELS = {"tie", "equal", "both", "draw", "same"}
# The keys of a flattened record that are not fields.
FLAT_RESERVED = {"id", "_server_id", "status", "inserted_at", "updated_at", "metadata", "vectors", "score"}


def _response_fields(fields: dict[str, Any]) -> list[str]:
    """The candidates' field names, in their numbered or lettered order."""
    found = [(m.group(1), name) for name in fields if (m := RESPONSE_FIELD.match(name))]
    numbered = sorted((int(tag), name) for tag, name in found if tag.isdigit())
    lettered = sorted((tag.lower(), name) for tag, name in found if not tag.isdigit())
    return [name for _, name in numbered] + [name for _, name in lettered]


def _tiers(value: Any, names: list[str], question: str) -> Tiers:
    """An answer (a ranking, or a label) as tiers of candidate positions."""
    where = {name: i for i, name in enumerate(names)}
    if isinstance(value, str):
        if value.strip().lower() in TIE_LABELS:
            return [list(range(len(names)))]
        if value not in where:
            raise LineError(f"'{question}': {value!r} is not one of the responses ({', '.join(names)})")
        return [[where[value]], [i for i in range(len(names)) if i != where[value]]]
    if not isinstance(value, list) or not value:
        raise LineError(f"'{question}' must be a ranking (a list of the responses) or a label")
    if all(isinstance(v, dict) for v in value):  # [{"value": "response1", "rank": 1}, …]: equal ranks are ties
        ranks: dict[Any, list[int]] = {}
        for v in value:
            name, rank = v.get("value"), v.get("rank")
            if name not in where or isinstance(rank, bool) or not isinstance(rank, int):
                raise LineError(f"'{question}': each entry needs a response name and an integer rank")
            ranks.setdefault(rank, []).append(where[name])
        tiers = [ranks[r] for r in sorted(ranks)]
    elif all(isinstance(v, str) for v in value):
        if any(v not in where for v in value):
            raise LineError(f"'{question}' ranks a name that is not one of the responses ({', '.join(names)})")
        tiers = [[where[v]] for v in value]
    else:
        raise LineError(f"'{question}' must list the responses by name")
    if sorted(p for t in tiers for p in t) != list(range(len(names))):
        raise LineError(f"'{question}' must rank every response once")
    return tiers


def _by_user(responses: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """user id → {question: value} of their submitted answers."""
    users: dict[str, dict[str, Any]] = {}
    for question, answers in responses.items():
        if not isinstance(answers, list):
            raise LineError(f"'responses.{question}' must be a list of answers")
        for answer in answers:
            if not isinstance(answer, dict) or "value" not in answer:
                raise LineError(f"'responses.{question}': each answer needs a 'value' and a 'user_id'")
            if answer.get("status", "submitted") != "submitted":
                continue
            user = answer.get("user_id")
            if not isinstance(user, str | int) or isinstance(user, bool) or not str(user):
                raise LineError(f"'responses.{question}': an answer has no 'user_id'")
            users.setdefault(str(user), {})[question] = answer["value"]
    return users


def _judgment(user: str, answers: dict[str, Any], names: list[str], ctx: FormatContext) -> ForeignJudgment | None:
    question = next((q for q in PREFERENCE_QUESTIONS if q in answers), None)
    if question is None:
        return None
    others = {q: _tiers(v, names, q) for q, v in answers.items() if q in ctx.dimensions and q != question}
    verdicts = ctx.verdicts(_tiers(answers[question], names, question), others)
    if verdicts is None:
        return None
    reason = next((v for q in REASON_QUESTIONS if isinstance(v := answers.get(q), str)), "")
    return ForeignJudgment(ctx.user_name(PREFIX, user), verdicts, reason=reason.strip()[:10_000])


def _nested(record: dict[str, Any]) -> dict[str, Any]:
    """A flattened record (``to_list(flatten=True)``, ``to_datasets``, the Hub: fields at the top,
    ``<question>.responses`` / ``.responses.users`` / ``.responses.status``) in the nested shape."""
    if "fields" in record or not any(key.endswith(".responses") for key in record):
        return record
    responses: dict[str, Any] = {}
    for key, values in record.items():
        if key.endswith(".responses") and isinstance(values, list):
            question = key.removesuffix(".responses")
            users = record.get(f"{key}.users") or []
            statuses = record.get(f"{key}.status") or []
            if not isinstance(users, list) or len(users) != len(values):
                raise LineError(f"'{key}.users' must name the user of each answer")
            statuses = statuses if isinstance(statuses, list) and len(statuses) == len(values) else []
            responses[question] = [
                {"value": v, "user_id": u} | ({"status": statuses[i]} if statuses and statuses[i] else {})
                for i, (v, u) in enumerate(zip(values, users, strict=True))
            ]
    fields = {k: v for k, v in record.items() if "." not in k and k not in FLAT_RESERVED}
    return {"id": record.get("id"), "fields": fields, "responses": responses}


def convert(obj: Any, ctx: FormatContext) -> Converted:
    record = _nested(field_of(obj, "each record"))
    fields = field_of(record.get("fields"), "'fields'")
    names = _response_fields(fields)
    if len(names) != ctx.k:
        raise LineError(f"{len(names)} response fields ({', '.join(names) or 'none'}); this project has k = {ctx.k}")
    texts = [text_of(fields[n], f"field '{n}'") for n in names]
    converted = tool_record(
        fields, "", texts, fmt="argilla", prefix=PREFIX, record_id=record.get("id"), extra={"fields": names}
    )
    if converted.skipped:
        return converted
    responses = record.get("responses") or {}
    users = _by_user(field_of(responses, "'responses'"))
    for user, answers in sorted(users.items()):
        judgment = _judgment(user, answers, names, ctx)
        if judgment is not None:
            converted.judgments.append(judgment)
    if not converted.judgments:
        converted.unjudged = "no submitted answer names a best and a worst response"
    return converted
