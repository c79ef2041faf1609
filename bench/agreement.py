"""Agreement figures at scale: 100k items × 3 raters × 6 dimensions (k = 2: one pair per item and dimension).

Prints the time of the figures without bootstrap (Fleiss' κ, Krippendorff's α, percent agreement for every
dimension, Cohen's κ for the 3 rater pairs) — target < 2 s — and, separately, of 200 bootstrap resamples
of one dimension.

    python bench/agreement.py [--items 100000] [--resamples 200]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.agreement import stats  # noqa: E402

DIMENSIONS = 6
RATERS = 3


def planted(items: int, seed: int) -> list[np.ndarray]:
    """Per dimension a raters × items matrix: a shared truth, each rater right 80% of the time, 5% n.a."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(DIMENSIONS):
        truth = rng.integers(0, 3, items)
        data = np.where(rng.random((RATERS, items)) < 0.8, truth, rng.integers(0, 3, (RATERS, items))).astype(float)
        data[rng.random((RATERS, items)) < 0.05] = np.nan
        out.append(data)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--resamples", type=int, default=200)
    args = parser.parse_args()
    matrices = planted(args.items, seed=1)

    started = time.perf_counter()
    results = []
    for data in matrices:
        results.append((stats.fleiss(data, RATERS)[0], stats.alpha(data), stats.percent_agreement(data)))
        for a in range(RATERS):
            for b in range(a + 1, RATERS):
                stats.cohen(data[a], data[b])
    figures = time.perf_counter() - started

    data = matrices[0]
    started = time.perf_counter()
    interval = stats.bootstrap(data, lambda d: stats.fleiss(d, RATERS)[0], resamples=args.resamples, seed=2)
    boot = time.perf_counter() - started

    kappa, alpha, agree = results[0]
    print(f"items={args.items} raters={RATERS} dimensions={DIMENSIONS}")
    print(
        f"dimension 1: Fleiss κ {kappa:.3f}  α {alpha:.3f}  agreement {agree:.3f}  95% CI [{interval.low:.3f}, {interval.high:.3f}]"
    )
    print(f"all figures, no bootstrap: {figures:.2f} s (target < 2 s)")
    print(f"bootstrap, {args.resamples} resamples of one dimension (Fleiss κ): {boot:.2f} s")


if __name__ == "__main__":
    main()
