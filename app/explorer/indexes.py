"""The text search indexes the explorer reads, as migration 0011 made them (outside the models' metadata).

SQLite keeps FTS5 tables (and their shadow tables); PostgreSQL keeps expression GIN indexes. Alembic's comparison
of the models with the database leaves them alone through ``include_object``.
"""

from __future__ import annotations

from typing import Any

FTS_TABLES = ("item_words", "item_trigrams", "candidate_words", "candidate_trigrams")
PG_INDEXES = ("ix_item_prompt_words", "ix_candidate_text_words", "ix_item_prompt_trgm", "ix_candidate_text_trgm")
_FTS_SHADOWS = ("", "_data", "_idx", "_docsize", "_config", "_content")
SEARCH_OBJECTS = frozenset({t + s for t in FTS_TABLES for s in _FTS_SHADOWS} | set(PG_INDEXES))


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Alembic's filter: the search indexes are the migrations' own, not the models'."""
    return not (reflected and compare_to is None and name in SEARCH_OBJECTS)
