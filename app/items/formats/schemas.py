"""What an import answers, in any format (the items import's answer, with the judgments of a foreign file)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from app.items.importer import MAX_DUPLICATES_LISTED
from app.items.schemas import ImportOut


class FormatImportOut(ImportOut):
    format: str = Field("native", description="the format the file was read as")
    records: int = Field(0, description="records read (a foreign format; native: 0)")
    judgments: int = Field(0, description="judgments of external annotators stored (a foreign format)")
    annotators_created: list[str] = Field(default_factory=list, description="new external users (cannot log in)")
    annotators_matched: list[str] = Field(default_factory=list, description="external users of earlier imports")
    skipped: list[dict[str, Any]] = Field(
        default_factory=list,
        description=f"the first {MAX_DUPLICATES_LISTED} records that bring nothing (identical responses), with why",
    )
    skipped_count: int = 0
    unjudged: list[dict[str, Any]] = Field(
        default_factory=list,
        description=f"the first {MAX_DUPLICATES_LISTED} items stored without a judgment, with why",
    )
    unjudged_count: int = 0
