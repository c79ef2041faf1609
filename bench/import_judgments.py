"""Import rate of judgments: 100k JSONL lines (3 annotators on each of 33,334 items, k = 2, overall and the five
default dimensions) into a project whose items are already there.

python bench/import_judgments.py                       # a temporary SQLite file
PREFSTUDIO_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/bench python bench/import_judgments.py
BENCH_LINES=10000 python bench/import_judgments.py     # a smaller run
"""

from __future__ import annotations

import io
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.cli import upgrade_database  # noqa: E402
from app.config import Settings  # noqa: E402
from app.db import make_database  # noqa: E402
from app.items.importer import import_items  # noqa: E402
from app.items.judgments import import_judgments  # noqa: E402
from app.models import DEFAULT_DIMENSIONS, Project  # noqa: E402
from app.projects.schemas import ProjectIn  # noqa: E402
from app.projects.service import create_project  # noqa: E402

LINES = int(os.environ.get("BENCH_LINES", "100000"))
PER_ITEM = 3
ANNOTATORS = 30


def _items(n: int) -> bytes:
    return "".join(
        json.dumps({"id": f"x{i}", "prompt": f"Benchmark prompt {i}", "candidates": [f"one {i}", f"two {i}"]}) + "\n"
        for i in range(n)
    ).encode()


def _judgments(n: int, rng: random.Random) -> bytes:
    dims = ["overall", *(d["key"] for d in DEFAULT_DIMENSIONS)]
    lines = []
    for i in range(n):
        item, slot = divmod(i, PER_ITEM)
        chosen = rng.randrange(2)
        verdicts: dict[str, object] = {d: {"chosen": chosen, "rejected": 1 - chosen} for d in dims}
        verdicts["refusal"] = "na"
        lines.append(
            {
                "item": f"x{item}",
                "annotator": f"old-annotator-{(item + slot * 7) % ANNOTATORS}",
                "verdicts": verdicts,
                "reason": "from the first round",
                "seconds": round(rng.uniform(5, 60), 1),
                "created_at": "2025-05-01T12:00:00Z",
            }
        )
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def main() -> None:
    url = os.environ.get("PREFSTUDIO_DATABASE_URL") or f"sqlite:///{tempfile.mkdtemp()}/import.db"
    upgrade_database(url)
    db = make_database(Settings(environment="dev", database_url=url))
    items = -(-LINES // PER_ITEM)
    with db.session() as s:
        project_id = create_project(s, data=ProjectIn(name=f"judgment import bench {time.time()}", k=2)).id
    with db.session() as s:
        project = s.get(Project, project_id)
        assert project is not None
        import_items(s, project=project, stream=io.BytesIO(_items(items)), filename="items.jsonl")
    body = _judgments(LINES, random.Random(0))
    for dry_run in (True, False):
        started = time.perf_counter()
        with db.session() as s:
            project = s.get(Project, project_id)
            assert project is not None
            result = import_judgments(s, project=project, stream=io.BytesIO(body), dry_run=dry_run)
        elapsed = time.perf_counter() - started
        print(
            f"backend={url.split(':', 1)[0]} {'dry run' if dry_run else 'import'}: lines={LINES} "
            f"judgments={result.judgments} items={result.items} ({len(body) / 1e6:.1f} MB) in {elapsed:.2f} s "
            f"= {LINES / elapsed:,.0f} judgments/s (commit included)"
        )
    started = time.perf_counter()
    with db.session() as s:
        project = s.get(Project, project_id)
        assert project is not None
        again = import_judgments(s, project=project, stream=io.BytesIO(body))
    print(f"the same file again: already_imported={again.already_imported} in {time.perf_counter() - started:.2f} s")


if __name__ == "__main__":
    main()
