"""The import formats by name: ``native`` (prefstudio's own, app.items.importer), ``auto`` (told from the first
record) and the foreign ones, each a converter of one record."""

from __future__ import annotations

from typing import Literal, get_args

from app.items.formats import argilla, hh_rlhf, label_studio, trl, ultrafeedback
from app.items.formats.base import Converter

ImportFormat = Literal["native", "auto", "hh-rlhf", "ultrafeedback", "trl", "argilla", "label-studio"]
FORMATS: tuple[str, ...] = get_args(ImportFormat)
NATIVE: Literal["native"] = "native"
AUTO = "auto"  # told from the file's first record (app.items.formats.detect)

CONVERTERS: dict[str, Converter] = {
    "hh-rlhf": hh_rlhf.convert,
    "ultrafeedback": ultrafeedback.convert,
    "trl": trl.convert,
    "argilla": argilla.convert,
    "label-studio": label_studio.convert,
}
# Formats whose every record is a pair: a project with another k cannot take them.
PAIRS_ONLY = frozenset({"hh-rlhf", "trl"})
# Whose judgments they are, unless the import names someone (argilla and label-studio: the prefix of each user).
DEFAULT_ANNOTATOR = {
    "hh-rlhf": hh_rlhf.ANNOTATOR,
    "ultrafeedback": ultrafeedback.ANNOTATOR,
    "trl": trl.ANNOTATOR,
    "argilla": argilla.PREFIX,
    "label-studio": label_studio.PREFIX,
}
