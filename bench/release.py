"""Release and verify at scale: a 100k-pair conversational snapshot file (synthetic rows shaped like the export's,
~1.3 KB each, meta included) made into a Hugging Face dataset directory, then verified.

No database: the snapshot's record is built in memory around the file, as `release_source` would read it. Prints
pairs per second for `build_release` (read + hash + parquet + card + manifest) and for `verify_release`, and the
bytes of JSONL against parquet.

    python bench/release.py            # 100k pairs
    python bench/release.py --rows 20000
"""

from __future__ import annotations

import argparse
import hashlib
import random
import tempfile
import time
from pathlib import Path

import orjson

from app.release.schemas import ReleaseSource, SourceFile
from app.release.service import build_release
from app.release.verify import verify_release

WORDS = "the model answers every question with care and a short explanation of why it is right".split()


def _text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def _write_snapshot(path: Path, rows: int) -> tuple[str, int]:
    rng = random.Random(0)
    digest = hashlib.sha256()
    size = 0
    with path.open("wb") as f:
        for i in range(rows):
            meta = {
                "project": "bench",
                "item_id": i,
                "dimension": "overall",
                "chosen_model": "sft-v1",
                "rejected_model": "sft-v1",
                "chosen_params": {"temperature": 0.7, "top_p": 0.95, "seed": i},
                "votes": {"chosen": 3, "rejected": 0, "tie": 0},
                "margin": 3,
                "agreement": 1.0,
                "annotators": ["a1b2c3", "d4e5f6", "0718ab"],
                "split": "test" if i % 10 == 0 else "train",
            }
            row = {
                "prompt": [{"role": "user", "content": _text(rng, 30)}],
                "chosen": [{"role": "assistant", "content": _text(rng, 80)}],
                "rejected": [{"role": "assistant", "content": _text(rng, 80)}],
                "reason": "clearer and shorter",
                "meta": meta,
            }
            line = orjson.dumps(row) + b"\n"
            f.write(line)
            digest.update(line)
            size += len(line)
    return digest.hexdigest(), size


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        snapshot = Path(tmp) / "snapshot.jsonl"
        sha, size = _write_snapshot(snapshot, args.rows)
        source = ReleaseSource(
            snapshot_id=1,
            name="bench",
            project_slug="bench",
            project_name="Bench",
            conversational=True,
            dimension="overall",
            sha256=sha,
            rows=args.rows,
            size=size,
            card="# Bench — snapshot 1\n\n- Pairs: synthetic",
            files=[SourceFile("default", snapshot, sha, args.rows, size)],
        )
        out = Path(tmp) / "release"
        started = time.perf_counter()
        files = build_release(source, out=out, license="other", languages=["en"])
        built = time.perf_counter() - started
        started = time.perf_counter()
        report = verify_release(out)
        verified = time.perf_counter() - started
        assert report.ok, report.problems
        parquet = sum(f.size for f in files if f.rows is not None)
        print(f"{args.rows:,} pairs, JSONL {size / 1e6:.1f} MB → parquet {parquet / 1e6:.1f} MB")
        print(f"release: {built:.2f} s ({args.rows / built:,.0f} pairs/s)")
        print(f"verify:  {verified:.2f} s ({args.rows / verified:,.0f} pairs/s)")


if __name__ == "__main__":
    main()
