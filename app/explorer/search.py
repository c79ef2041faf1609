"""Text search per dialect: the item ids whose prompt or any candidate answer (any round) holds the text.

PostgreSQL: ``words`` matches the 'simple' tsvector expressions indexed by migration 0011 (GIN), ``substring`` is
ILIKE on the same text (a pg_trgm GIN index serves it when the extension exists). SQLite: FTS5 ``MATCH`` on the
word tables (unicode61) or, for substrings of 3+ characters, the trigram tables; shorter substrings scan (LIKE).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Text, cast, column, exists, func, literal_column, select, table, union
from sqlalchemy.sql.elements import ColumnElement

from app.models import Candidate, Item

_SIMPLE: Any = literal_column("'simple'::regconfig")
_STRINGS: Any = literal_column("""'["string"]'::jsonb""")


def _like_pattern(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _fts_phrase(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def fts_query(text: str, match: str) -> str:
    """The FTS5 query: every word as a quoted phrase (implicitly AND), or the whole text as one phrase."""
    if match == "substring":
        return _fts_phrase(text)
    return " ".join(_fts_phrase(word) for word in text.split())


def _postgres(project_id: int, text: str, match: str, ids: tuple[int, int] | None) -> Any:
    if match == "words":
        query = func.plainto_tsquery(_SIMPLE, text)
        in_prompt = func.jsonb_to_tsvector(_SIMPLE, Item.prompt, _STRINGS).op("@@")(query)
        in_answer = func.to_tsvector(_SIMPLE, Candidate.text).op("@@")(query)
    else:
        pattern = _like_pattern(text)
        in_prompt = cast(Item.prompt, Text).ilike(pattern, escape="\\")
        in_answer = Candidate.text.ilike(pattern, escape="\\")
    return union(
        select(Item.id).where(Item.project_id == project_id, in_prompt, *_within(Item.id, ids)),
        select(Candidate.item_id).where(in_answer, *_within(Candidate.item_id, ids)),
    )


def _within(column: Any, ids: tuple[int, int] | None) -> list[Any]:
    return [] if ids is None else [column.between(*ids)]


def _sqlite(project_id: int, text: str, match: str, ids: tuple[int, int] | None) -> Any:
    if match == "substring" and len(text) < 3:  # the trigram tables need three characters
        pattern = _like_pattern(text)
        strings = func.json_tree(Item.prompt).table_valued("type", "value", "key")
        in_prompt = exists().where(
            strings.c.type == "text", strings.c.key.is_not("role"), strings.c.value.like(pattern, escape="\\")
        )
        return union(
            select(Item.id).where(Item.project_id == project_id, in_prompt, *_within(Item.id, ids)),
            select(Candidate.item_id).where(
                Candidate.text.like(pattern, escape="\\"), *_within(Candidate.item_id, ids)
            ),
        )
    suffix = "trigrams" if match == "substring" else "words"
    query = fts_query(text, match)
    prompt_index, answer_index = table(f"item_{suffix}", column("rowid")), table(f"candidate_{suffix}", column("rowid"))
    prompts = select(prompt_index.c.rowid).where(
        literal_column(prompt_index.name).op("MATCH")(query), *_within(prompt_index.c.rowid, ids)
    )
    answers = select(answer_index.c.rowid).where(literal_column(answer_index.name).op("MATCH")(query))
    return union(prompts, select(Candidate.item_id).where(Candidate.id.in_(answers), *_within(Candidate.item_id, ids)))


def text_condition(
    dialect: str, project_id: int, text: str, match: str, ids: tuple[int, int] | None = None
) -> ColumnElement[bool]:
    """``item.id IN (…)``: the items whose prompt or any answer holds ``text`` (item ids within ``ids``)."""
    found = (_postgres if dialect == "postgresql" else _sqlite)(project_id, text, match, ids)
    return Item.id.in_(found)
