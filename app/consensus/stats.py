"""Dawid–Skene on pair labels — pure glue around crowd-kit, no database.

A task is one pair (i < j) of one item on one dimension; a label is FIRST (i ≻ j), SECOND (j ≻ i) or TIE, as
``app.export.pairs`` implies them. The "worker" is an annotator in one orientation (whether the pair's first
candidate was shown before the second): each annotator gets one confusion matrix per orientation, so one who
always picks what is shown first has two constant matrices — uninformative — instead of one that looks reliable
whenever the truth happens to sit on the left.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from app.export.pairs import FIRST, SECOND, TIE

LABELS = (FIRST, SECOND, TIE)
# crowd-kit's defaults: EM stops when the evidence lower bound (per label) moves less than this. A looser 1e-4
# changed up to 4 % of the k = 4 labels of a simulated project: not worth the one iteration it saves on 1M labels.
TOLERANCE = 1e-5
MAX_ITERATIONS = 100
# An annotator is flagged below this reliability, once it rests on enough labels. Chance is 0.5 on a strict pair;
# on the simulator (docs/consensus.md) spammers sat at 0.33–0.63, the always-first clicker at 0.32–0.56 and
# accurate annotators (75–90 %) at 0.67–0.99.
FLAG_BELOW = 0.65
MIN_LABELS = 20


@dataclass
class Fit:
    """One Dawid–Skene fit: the posterior of each task and each annotator's reliability."""

    posterior: NDArray[np.float64]  # tasks × (FIRST, SECOND, TIE), rows sum to 1; one row per task code
    annotators: NDArray[np.int64]  # annotator ids, sorted
    reliability: NDArray[np.float64]  # per annotator: chance of reporting the true class (0..1)
    labels: NDArray[np.int64]  # per annotator: how many labels the reliability rests on


def flagged(reliability: float, labels: int) -> bool:
    """Whether an annotator's reliability is low enough, on enough labels, to look into."""
    return labels >= MIN_LABELS and reliability < FLAG_BELOW


def worker_codes(annotator: NDArray[np.int64], shown_first: NDArray[np.bool_]) -> NDArray[np.int64]:
    """The DS worker of each label: the annotator in one orientation (shown_first: i was shown before j)."""
    return annotator.astype(np.int64) * 2 + shown_first.astype(np.int64)


def dawid_skene(task: NDArray[np.int64], worker: NDArray[np.int64], label: NDArray[np.int64], n_tasks: int) -> Fit:
    """Fit DS on (task, worker, label) rows; tasks are codes 0..n_tasks-1 (a task without labels keeps a row of zeros).

    Workers come from ``worker_codes``; the reliability is per annotator (both orientations, weighted by their
    label counts): the mean posterior of the class they reported, i.e. their expected accuracy under the fit.
    """
    posterior = np.zeros((n_tasks, len(LABELS)))
    if not len(task):
        return Fit(posterior, np.empty(0, np.int64), np.empty(0), np.empty(0, np.int64))
    # Local: pandas and crowd-kit (with the SciPy they bring) are loaded only where a fit runs — the worker and
    # the export processes that fit — never by the web server, which reads stored fits.
    import pandas as pd
    from crowdkit.aggregation import DawidSkene

    frame = pd.DataFrame({"task": task, "worker": worker, "label": label})
    with warnings.catch_warnings():
        # crowd-kit 1.4 calls pandas with keywords pandas 3 deprecates (``copy=``, ``inplace=``): noise, not news.
        warnings.simplefilter("ignore", DeprecationWarning)
        model = DawidSkene(n_iter=MAX_ITERATIONS, tol=TOLERANCE).fit(frame)
    probas = model.probas_
    assert probas is not None
    seen = probas.index.to_numpy(dtype=np.int64)
    for column in probas.columns:  # only the labels that occur are columns
        posterior[seen, int(column)] = probas[column].to_numpy()
    return Fit(posterior, *annotator_reliability(posterior[task, label], worker // 2))


def annotator_reliability(
    right: NDArray[np.float64], annotator: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.int64]]:
    """Per annotator (sorted ids): the mean of ``right`` (the posterior of each label they gave) and the count."""
    ids, at = np.unique(annotator, return_inverse=True)
    counts = np.bincount(at, minlength=len(ids))
    sums = np.bincount(at, weights=right, minlength=len(ids))
    return ids, sums / np.maximum(counts, 1), counts


def majority(label: NDArray[np.int64], task: NDArray[np.int64], n_tasks: int) -> NDArray[np.int64]:
    """The export's rule per task: FIRST or SECOND by more votes, -1 when level (ties do not count)."""
    first = np.bincount(task[label == FIRST], minlength=n_tasks)
    second = np.bincount(task[label == SECOND], minlength=n_tasks)
    return np.where(first > second, FIRST, np.where(second > first, SECOND, -1))


def decided(posterior: NDArray[np.float64]) -> NDArray[np.int64]:
    """The model's label per task: FIRST or SECOND by the larger posterior; -1 when TIE is the most probable or
    the task has no labels (an all-zero row)."""
    best = posterior.argmax(axis=1)
    return np.where((best == TIE) | (posterior.sum(axis=1) == 0), -1, best)
