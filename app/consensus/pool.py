"""Fitting a project's dimensions at the same time, one process each, when the fits are big enough to pay for it.

crowd-kit's EM is pandas work that holds the interpreter lock (two fits on two threads took longer than one after
the other), so the dimensions go to processes. The pool is made on first use and kept (a worker refits every few
seconds); its processes come from a fork server that has imported the model already, so they start in
milliseconds and never inherit the parent's database connections or threads.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from numpy.typing import NDArray

from app.consensus import stats

# Below this many labels in all a project's dimensions together, fit one after the other: handing the arrays to
# the processes and back costs more than it saves (a fit of 200k labels takes about 0.3 s).
PARALLEL_MIN_LABELS = 200_000

Job = tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], int]  # task, worker, label, tasks

_pool: ProcessPoolExecutor | None = None
_lock = threading.Lock()


def _fit(job: Job) -> stats.Fit:
    return stats.dawid_skene(*job)


def _shared_pool() -> ProcessPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["app.consensus.stats"])
            _pool = ProcessPoolExecutor(max_workers=os.cpu_count() or 1, mp_context=context)
        return _pool


def fit_all(jobs: list[Job], *, parallel: bool | None = None) -> list[stats.Fit]:
    """``stats.dawid_skene`` of each job, in order; in processes when there are enough labels and CPUs (or
    ``parallel`` says so)."""
    if parallel is None:
        labels = sum(len(job[0]) for job in jobs)
        parallel = len(jobs) > 1 and (os.cpu_count() or 1) > 1 and labels >= PARALLEL_MIN_LABELS
    if not parallel:
        return [_fit(job) for job in jobs]
    return list(_shared_pool().map(_fit, jobs))
