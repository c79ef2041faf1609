"""Import rate: 100k JSONL lines (text prompts with 2 candidates each) into a fresh project.

python bench/import_rate.py                       # a temporary SQLite file
PREFSTUDIO_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/bench python bench/import_rate.py
"""

from __future__ import annotations

import io
import json
import os
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
from app.projects.schemas import ProjectIn  # noqa: E402
from app.projects.service import create_project  # noqa: E402

LINES = int(os.environ.get("BENCH_LINES", "100000"))


def main() -> None:
    url = os.environ.get("PREFSTUDIO_DATABASE_URL") or f"sqlite:///{tempfile.mkdtemp()}/import.db"
    upgrade_database(url)
    db = make_database(Settings(environment="dev", database_url=url))
    body = "".join(
        json.dumps(
            {
                "id": f"x{i}",
                "prompt": f"Benchmark prompt number {i}: explain item {i * 7}.",
                "candidates": [f"first answer {i}", f"second answer {i}"],
                "meta": {"n": i},
            }
        )
        + "\n"
        for i in range(LINES)
    ).encode()
    with db.session() as s:
        project = create_project(s, data=ProjectIn(name=f"import bench {time.time()}", k=2))
    started = time.perf_counter()
    with db.session() as s:
        from app.models import Project

        project = s.get(Project, project.id)
        result = import_items(s, project=project, stream=io.BytesIO(body), filename="bench.jsonl")  # type: ignore[arg-type]
    elapsed = time.perf_counter() - started
    print(
        f"backend={url.split(':', 1)[0]} lines={LINES} created={result.created} "
        f"({len(body) / 1e6:.1f} MB) in {elapsed:.2f} s = {LINES / elapsed:,.0f} lines/s"
    )


if __name__ == "__main__":
    main()
