"""Keeping the catalogs in step with the code: extract, update, check, compile (``python -m app.i18n``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

from app.config import ROOT
from app.i18n import CATALOG_LOCALES, DEFAULT_LANGUAGE, DOMAIN, TRANSLATIONS_DIR, catalog_path

CONFIG = ROOT / "babel.cfg"
SOURCE_DIRS = ("app", "templates")
TEMPLATE_PATH = TRANSLATIONS_DIR / f"{DOMAIN}.pot"
PROJECT = "prefstudio"
VERSION = "0.1.0"
HEADER = """\
# prefstudio: the messages of the web interface.
# Refresh with `python -m app.i18n update`, then fill in the empty msgstr entries;
# `python -m app.i18n check` lists what is missing.
#"""


def new_catalog(locale: str | None = None) -> Catalog:
    return Catalog(
        locale=locale,
        header_comment=HEADER,
        project=PROJECT,
        version=VERSION,
        domain=DOMAIN,
        fuzzy=False,
        charset="utf-8",
    )


def extract() -> Catalog:
    """Every message marked in the Python code and the templates, as a catalog template (no translations)."""
    with CONFIG.open(encoding="utf-8") as config:
        method_map, options_map = parse_mapping_cfg(config, filename=str(CONFIG))  # type: ignore[no-untyped-call]
    template = new_catalog()
    for dirname in SOURCE_DIRS:
        results = extract_from_dir(
            ROOT / dirname, method_map, options_map, comment_tags=("Translators:",), strip_comment_tags=True
        )
        for filename, lineno, message, comments, context in results:
            path = f"{dirname}/{Path(filename).as_posix()}"
            template.add(message, None, [(path, lineno)], auto_comments=comments, context=context)
    return template


def load(language: str) -> Catalog:
    with catalog_path(language).open("rb") as po:
        return read_po(po, locale=CATALOG_LOCALES[language], domain=DOMAIN)


def save(catalog: Catalog, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # No line numbers: a change elsewhere in a template does not rewrite every catalog.
    with path.open("wb") as po:
        write_po(po, catalog, width=100, ignore_obsolete=True, include_lineno=False)


def update() -> dict[str, int]:
    """Merge the extracted messages into every catalog (new ones empty, gone ones dropped); untranslated counts."""
    template = extract()
    save(template, TEMPLATE_PATH)
    left: dict[str, int] = {}
    for language, locale in CATALOG_LOCALES.items():
        path = catalog_path(language)
        if path.exists():
            catalog = load(language)
        else:
            catalog = new_catalog(locale)
        catalog.update(template, update_creation_date=False)
        save(catalog, path)
        left[language] = len(check(language, template=template).untranslated)
    return left


@dataclass
class Report:
    untranslated: list[str] = field(default_factory=list)  # extracted, but no (non-fuzzy) translation
    errors: list[str] = field(default_factory=list)  # placeholders that do not match, bad plural forms

    @property
    def ok(self) -> bool:
        return not self.untranslated and not self.errors


def _msgid(message_id: str | tuple[str, ...] | list[str]) -> str:
    return message_id if isinstance(message_id, str) else message_id[0]


def check(language: str, *, template: Catalog | None = None) -> Report:
    """What is missing from ``language``'s catalog against the code (the source language needs no strings)."""
    template = template if template is not None else extract()
    catalog = load(language)
    report = Report()
    if language != DEFAULT_LANGUAGE:
        for message in template:
            if not message.id:
                continue
            found = catalog.get(message.id, context=message.context)
            strings = [] if found is None else ([found.string] if isinstance(found.string, str) else found.string)
            if found is None or found.fuzzy or not strings or not all(s.strip() for s in strings):
                report.untranslated.append(_msgid(message.id))
    for message, errors in catalog.check():
        report.errors.extend(f"{_msgid(message.id)!r}: {error}" for error in errors)
    return report


def compile_catalogs() -> list[Path]:
    """Write ``.mo`` files beside the catalogs, for tools that want them; the app compiles in memory."""
    written = []
    for language in CATALOG_LOCALES:
        path = catalog_path(language)
        mo_path = path.with_suffix(".mo")
        with mo_path.open("wb") as mo:
            write_mo(mo, load(language))
        written.append(mo_path)
    return written
