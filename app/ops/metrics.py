"""The process's own metrics (Prometheus), and the exposition that ``/metrics`` answers with.

Two kinds of figures, kept apart on purpose:

- **Counted in the process** (here): request latency, model-server retries, export bytes. Each process counts its
  own; several app processes and the worker add up only in prometheus_client's multiprocess mode
  (``PROMETHEUS_MULTIPROC_DIR`` set for every process of the machine: each writes its values to files there and
  ``/metrics`` sums the files). Without it ``/metrics`` shows the answering process's counts, and Prometheus
  sees a reset whenever a different process answers.
- **Read from the database at scrape time** (``app.ops.collector``): queue depth, judgments per minute, jobs and
  their progress. They are right whatever the number of processes.

This module imports nothing of the app, so the generation client and the export stream can count cheaply.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.registry import Collector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST
# Labels of requests no route matched: one series for every unknown URL (the raw path would be unbounded).
UNMATCHED = "<unmatched>"

REQUEST_SECONDS = Histogram(
    "prefstudio_http_request_duration_seconds",
    "Time from a request's arrival to the end of its response, by route template, method and status class.",
    ("route", "method", "status"),
    # Annotators' requests take milliseconds; exports and imports take minutes.
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, float("inf")),
)
MODEL_RETRIES = Counter(
    "prefstudio_model_request_retries",
    "Requests to model servers sent again after a connection error, a timeout or a 408/429/5xx answer.",
    ("kind",),  # "generation" | "judge"
)
EXPORT_BYTES = Counter(
    "prefstudio_export_bytes",
    "Bytes of JSONL made by exports: streamed to clients (live) or written to snapshot files (snapshot).",
    ("kind",),  # "live" | "snapshot"
)

# Known label values, so that each series shows from the first scrape (at 0) rather than from its first event.
for _kind in ("generation", "judge"):
    MODEL_RETRIES.labels(kind=_kind)
for _kind in ("live", "snapshot"):
    EXPORT_BYTES.labels(kind=_kind)


def count_retry(kind: str) -> None:
    """One request to a model server sent again (``kind``: "generation" or "judge")."""
    MODEL_RETRIES.labels(kind=kind).inc()


def count_export_bytes(kind: str, size: int) -> None:
    """``size`` bytes of export made (``kind``: "live" or "snapshot")."""
    EXPORT_BYTES.labels(kind=kind).inc(size)


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    """One finished request: its route template (never the raw URL), method and status class ("2xx")."""
    REQUEST_SECONDS.labels(route=route, method=method, status=f"{status // 100}xx").observe(seconds)


def multiprocess_dir() -> str | None:
    """The multiprocess directory, when this installation runs in prometheus_client's multiprocess mode."""
    return os.environ.get(MULTIPROC_ENV) or None


def exposition(*extra: Collector) -> bytes:
    """The text format: the process's metrics (or, in multiprocess mode, those of every process of the
    machine, summed from the directory), then the ``extra`` collectors'."""
    parts = []
    directory = multiprocess_dir()
    if directory is not None:
        from prometheus_client import multiprocess

        summed = CollectorRegistry(auto_describe=False)
        multiprocess.MultiProcessCollector(summed, path=directory)  # type: ignore[no-untyped-call]
        parts.append(generate_latest(summed))
    else:
        parts.append(generate_latest(REGISTRY))
    if extra:
        registry = CollectorRegistry(auto_describe=False)
        for collector in extra:
            registry.register(collector)
        parts.append(generate_latest(registry))
    return b"".join(parts)
