"""Reading one line of a judgments file (see docs/import-judgments.md) into a judgment in canonical positions.

A line: ``{"item": external id, "annotator": name, "verdicts": {dimension: verdict}, "reason": "", "all_bad": false,
"problematic": false, "seconds": 12.5, "created_at": "2025-05-01T12:00:00Z"}``; only the first three are required.
A verdict: ``"tie"``, ``"na"``, ``{"chosen": 1, "rejected": 0}`` (with ``"strength": 1–3`` on a project that asks
how much better), or ``{"ranking": [[2], [0, 1]], "much": [0]}`` — candidates named by their canonical position,
0-based. Everything here is checked without the database; the project's rules are checked by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from app.items.readers import LineError
from app.kit.schemas import text_problem

FIELDS = {"item", "annotator", "verdicts", "reason", "all_bad", "problematic", "seconds", "created_at"}
PREFERENCE_FIELDS = {"chosen", "rejected", "strength"}
RANKING_FIELDS = {"ranking", "much"}
MAX_NAME = 64  # a username
MAX_EXTERNAL_ID = 200
MAX_REASON = 10_000
MAX_SECONDS = 86_400


Kind = Literal["preference", "tie", "na", "ranking"]


@dataclass(frozen=True)
class PositionVerdict:
    """One dimension's verdict with candidates as canonical positions (0-based)."""

    kind: Kind
    chosen: int | None = None
    rejected: int | None = None
    strength: int | None = None
    ranking: tuple[tuple[int, ...], ...] | None = None
    much: tuple[int, ...] | None = None


@dataclass(frozen=True)
class JudgmentLine:
    item: str
    annotator: str
    verdicts: dict[str, PositionVerdict]
    reason: str
    all_bad: bool
    problematic: bool
    seconds: float | None
    created_at: datetime | None


def _text(value: Any, what: str, limit: int) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise LineError(f"'{what}' must be a non-empty string")
    if len(value) > limit:
        raise LineError(f"'{what}' is longer than {limit} characters")
    problem = text_problem(value)
    if problem:
        raise LineError(f"'{what}' {problem}")
    return value


def _name(value: Any) -> str:
    name = _text(value, "annotator", MAX_NAME)
    if any(c.isspace() for c in name):
        raise LineError("'annotator' must be a name without spaces (it becomes a username)")
    return name


def _position(value: Any, where: str, k: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < k:
        raise LineError(f"{where} must be a candidate position from 0 to {k - 1}")
    return value


def _ranking(dim: str, value: dict[str, Any], k: int) -> PositionVerdict:
    tiers = value.get("ranking")
    if not isinstance(tiers, list) or not tiers or not all(isinstance(t, list) and t for t in tiers):
        raise LineError(f"{dim}: 'ranking' must be a list of tiers, each a non-empty list of positions")
    ranked = tuple(tuple(_position(p, f"{dim}: a ranked candidate", k) for p in tier) for tier in tiers)
    flat = [p for tier in ranked for p in tier]
    if sorted(flat) != list(range(k)):
        raise LineError(f"{dim}: a ranking orders every candidate (positions 0 to {k - 1}), each once")
    much = value.get("much") or []
    if not isinstance(much, list) or not all(isinstance(g, int) and not isinstance(g, bool) for g in much):
        raise LineError(f"{dim}: 'much' must be a list of gaps (0: the gap after the first tier)")
    if any(not 0 <= g < len(ranked) - 1 for g in much) or len(set(much)) != len(much):
        raise LineError(f"{dim}: 'much' lists gaps between tiers, from 0 to {len(ranked) - 2}, each once")
    return PositionVerdict("ranking", ranking=ranked, much=tuple(sorted(much)))


def _preference(dim: str, value: dict[str, Any], k: int) -> PositionVerdict:
    if "chosen" not in value or "rejected" not in value:
        raise LineError(f"{dim}: a preference needs both 'chosen' and 'rejected'")
    chosen = _position(value["chosen"], f"{dim}: 'chosen'", k)
    rejected = _position(value["rejected"], f"{dim}: 'rejected'", k)
    if chosen == rejected:
        raise LineError(f"{dim}: 'chosen' and 'rejected' must be different candidates")
    strength = value.get("strength")
    if strength is not None and (not isinstance(strength, int) or isinstance(strength, bool) or not 1 <= strength <= 3):
        raise LineError(f"{dim}: 'strength' must be 1 (slightly better), 2 (better) or 3 (much better)")
    return PositionVerdict("preference", chosen=chosen, rejected=rejected, strength=strength)


def _verdict(dim: str, value: Any, k: int) -> PositionVerdict:
    if value == "tie" or value == "na":
        return PositionVerdict(value)
    if not isinstance(value, dict):
        raise LineError(f'{dim}: a verdict is "tie", "na", {{"chosen", "rejected"}} or {{"ranking"}}')
    keys = set(value)
    if keys & RANKING_FIELDS:
        if keys - RANKING_FIELDS:
            raise LineError(f"{dim}: a ranking takes only 'ranking' and 'much'")
        return _ranking(dim, value, k)
    if keys - PREFERENCE_FIELDS:
        raise LineError(f"{dim}: unknown field(s) {', '.join(sorted(keys - PREFERENCE_FIELDS))}")
    return _preference(dim, value, k)


def _seconds(value: Any) -> float | None:
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= MAX_SECONDS:
        raise LineError(f"'seconds' must be a number from 0 to {MAX_SECONDS}")
    return float(value)


def _created_at(value: Any) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None:
        raise LineError("'created_at' must be an ISO 8601 date and time, e.g. 2025-05-01T12:00:00Z")
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _flag(obj: dict[str, Any], key: str) -> bool:
    value = obj.get(key, False)
    if not isinstance(value, bool):
        raise LineError(f"'{key}' must be true or false")
    return value


def judgment_line(obj: Any, k: int) -> JudgmentLine:
    """A line's judgment, positions checked against k; a LineError says what is wrong."""
    if not isinstance(obj, dict):
        raise LineError("each line must be a JSON object")
    unknown = set(obj) - FIELDS
    if unknown:
        raise LineError(f"unknown field(s): {', '.join(sorted(unknown))}")
    verdicts = obj.get("verdicts")
    if not isinstance(verdicts, dict) or not verdicts:
        raise LineError("'verdicts' must be an object: {dimension: verdict}, with at least 'overall'")
    reason = obj.get("reason") or ""
    if not isinstance(reason, str) or len(reason) > MAX_REASON or text_problem(reason):
        raise LineError(f"'reason' must be text of at most {MAX_REASON} characters (no NUL)")
    return JudgmentLine(
        item=_text(obj.get("item"), "item", MAX_EXTERNAL_ID),
        annotator=_name(obj.get("annotator")),
        verdicts={str(dim): _verdict(str(dim), value, k) for dim, value in verdicts.items()},
        reason=reason.strip(),
        all_bad=_flag(obj, "all_bad"),
        problematic=_flag(obj, "problematic"),
        seconds=_seconds(obj.get("seconds")),
        created_at=_created_at(obj.get("created_at")),
    )
