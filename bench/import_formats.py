"""Import rate of foreign files: an HH-RLHF file (one judgment a record) and a Label Studio export (three
annotators a task), items and judgments in one transaction, into a fresh project (k = 2, the five default
dimensions: four "na" and an optional one left out per judgment).

python bench/import_formats.py                       # a temporary SQLite file
PREFSTUDIO_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/bench python bench/import_formats.py
BENCH_RECORDS=5000 python bench/import_formats.py    # a smaller run
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
from app.items.formats.service import import_in_format  # noqa: E402
from app.models import Project  # noqa: E402
from app.projects.schemas import ProjectIn  # noqa: E402
from app.projects.service import create_project  # noqa: E402

RECORDS = int(os.environ.get("BENCH_RECORDS", "20000"))


def _hh(n: int) -> bytes:
    lines = []
    for i in range(n):
        context = f"\n\nHuman: Benchmark question {i}?\n\nAssistant: An earlier answer.\n\nHuman: And then {i}?"
        lines.append(
            {"chosen": f"{context}\n\nAssistant: A helpful answer {i}.", "rejected": f"{context}\n\nAssistant: No."}
        )
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def _label_studio(n: int) -> bytes:
    tasks = [
        {
            "id": i,
            "data": {"prompt": f"Benchmark task {i}", "answer1": f"left {i}", "answer2": f"right {i}"},
            "annotations": [
                {
                    "completed_by": user,
                    "result": [{"type": "pairwise", "value": {"selected": "left" if (i + user) % 3 else "right"}}],
                    "created_at": "2025-05-01T12:00:00Z",
                }
                for user in (1, 2, 3)
            ],
        }
        for i in range(n)
    ]
    return json.dumps(tasks, indent=1).encode()


def main() -> None:
    url = os.environ.get("PREFSTUDIO_DATABASE_URL") or f"sqlite:///{tempfile.mkdtemp()}/formats.db"
    upgrade_database(url)
    db = make_database(Settings(environment="dev", database_url=url))
    for fmt, body in (("hh-rlhf", _hh(RECORDS)), ("label-studio", _label_studio(RECORDS // 3))):
        with db.session() as s:
            project_id = create_project(s, data=ProjectIn(name=f"{fmt} bench {time.time()}", k=2)).id
        started = time.perf_counter()
        with db.session() as s:
            project = s.get(Project, project_id)
            assert project is not None
            result = import_in_format(s, project=project, stream=io.BytesIO(body), fmt=fmt, filename="bench")
        elapsed = time.perf_counter() - started
        print(
            f"backend={url.split(':', 1)[0]} {fmt}: records={result.records} items={result.created} "
            f"judgments={result.judgments} ({len(body) / 1e6:.1f} MB) in {elapsed:.2f} s "
            f"= {result.records / elapsed:,.0f} records/s, {result.judgments / elapsed:,.0f} judgments/s (commit included)"
        )


if __name__ == "__main__":
    main()
