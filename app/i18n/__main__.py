"""``python -m app.i18n extract|update|check|compile``: keep the translation catalogs in step with the code."""

from __future__ import annotations

import argparse
import sys

from app.i18n import CATALOG_LOCALES, catalog_path, catalogs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.i18n", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("extract", help=f"write the catalog template {catalogs.TEMPLATE_PATH.name} from app/ and templates/")
    sub.add_parser("update", help="extract, then merge into every language's messages.po (translate the empty ones)")
    sub.add_parser("check", help="list untranslated or fuzzy messages and placeholder errors; exit 1 if any")
    sub.add_parser("compile", help="write .mo files beside the catalogs (the app itself reads the .po files)")
    args = parser.parse_args(argv)

    out = sys.stdout
    if args.command == "extract":
        template = catalogs.extract()
        catalogs.save(template, catalogs.TEMPLATE_PATH)
        out.write(f"{len(template)} messages → {catalogs.TEMPLATE_PATH}\n")
    elif args.command == "update":
        for language, left in catalogs.update().items():
            out.write(f"{catalog_path(language)}: {left} untranslated\n")
    elif args.command == "check":
        template = catalogs.extract()
        failed = False
        for language in CATALOG_LOCALES:
            report = catalogs.check(language, template=template)
            for msgid in report.untranslated:
                out.write(f"{language}: untranslated: {msgid!r}\n")
            for error in report.errors:
                out.write(f"{language}: {error}\n")
            failed = failed or not report.ok
        out.write("catalogs incomplete\n" if failed else "catalogs complete\n")
        return 1 if failed else 0
    elif args.command == "compile":
        for path in catalogs.compile_catalogs():
            out.write(f"{path}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
