"""The export page's forms (kept out of ``schemas``: the export processes import those, and the form kit brings
FastAPI, about 7 MB in each of them)."""

from __future__ import annotations

from pydantic import ConfigDict, Field, ValidationError

from app.export.schemas import PartsWanted
from app.kit.errors import Invalid
from app.kit.forms import FormModel
from app.pii.schemas import PiiDecision

PII_ITEM = "pii_item_"  # + an item id: that item's choice, over the form's ``pii``


class SnapshotForm(FormModel):
    """The export page's snapshot form: a name, and the filter as the page's fields carry it (read by
    ``app.export.router.filter_from``, as the page's query is)."""

    model_config = ConfigDict(extra="allow")

    name: str = ""
    pii: str = ""
    ties: str = ""
    per_dimension: str = ""
    veto: list[str] = Field(default_factory=list)
    exclude_annotators: list[str] = Field(default_factory=list)

    def filter_items(self) -> list[tuple[str, str]]:
        """The posted fields as (name, value) pairs, the list fields once per value."""
        items = list(self.fields().items())
        items += [("veto", value) for value in self.veto]
        items += [("exclude_annotators", value) for value in self.exclude_annotators]
        return items

    def parts_wanted(self) -> PartsWanted:
        """The files the snapshot writes beside the main one (ticked boxes)."""
        ticked = ("1", "on", "true")
        return PartsWanted(ties=self.ties in ticked, per_dimension=self.per_dimension in ticked)

    def pii_decision(self) -> PiiDecision:
        """What the snapshot does with personal data: the form's choice and the per-item choices (empty: none)."""
        overrides = {
            key[len(PII_ITEM) :]: value for key, value in self.fields().items() if key.startswith(PII_ITEM) and value
        }
        try:
            return PiiDecision.model_validate({"choice": self.pii or None, "overrides": overrides})
        except ValidationError as exc:
            raise Invalid("Personal data: choose mask, drop or accept (per item too)") from exc


class TokenForm(FormModel):
    """The export page's new-token form (a longer label is cut to 200 characters, not refused)."""

    name: str = ""
