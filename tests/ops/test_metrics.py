"""/metrics after real work: requests by route template, a judgment, an export, a snapshot, a generation job with
retries; the database's figures equal what the database says."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from app.db import Database
from app.generation import service as generation
from app.generation.schemas import JobIn
from app.jobs.runner import run_one
from app.models import Item, Job, Project, Snapshot
from tests.factories import make_item, make_project
from tests.ops.conftest import METRICS_TOKEN, bearer, samples, value
from tests.support.fake_openai import FakeOpenAI

HISTOGRAM = "prefstudio_http_request_duration_seconds"


def scrape(client: TestClient) -> str:
    response = client.get("/metrics", headers=bearer(METRICS_TOKEN))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def counted(name: str, **labels: str) -> float:
    """A process counter's value now, read from the registry (to measure how much a test moved it)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def submit_one(client: TestClient, token: str) -> dict[str, Any]:
    nxt = client.post("/api/v1/projects/pa/next", headers=bearer(token))
    assert nxt.status_code == 200, nxt.text
    assignment = nxt.json()["assignment"]
    first, last = assignment["candidates"][0]["id"], assignment["candidates"][-1]["id"]
    verdicts = {d["key"]: {"kind": "preference", "chosen": first, "rejected": last} for d in assignment["dimensions"]}
    body = {"assignment_id": assignment["assignment_id"], "submit_key": "ops-key-0001", "verdicts": verdicts}
    submitted = client.post("/api/v1/projects/pa/judgments", json=body, headers=bearer(token))
    assert submitted.status_code == 201, submitted.text
    return submitted.json()  # type: ignore[no-any-return]


def queue_depth_in_db(db: Database, slug: str) -> int:
    """Ready items with fewer judgments than the project's overlap (no adaptive overlap here), counted in Python."""
    with db.session(write=False) as s:
        project = s.scalars(select(Project).where(Project.slug == slug)).one()
        items = s.scalars(select(Item).where(Item.project_id == project.id)).all()
        return sum(1 for item in items if item.status == "ready" and item.judgment_count < project.overlap)


def test_requests_a_judgment_and_an_export_move_the_metrics(
    client: TestClient, world: dict[str, Any], db: Database
) -> None:
    before_live = counted("prefstudio_export_bytes_total", kind="live")
    before_posts = counted(
        f"{HISTOGRAM}_count", route="/api/v1/projects/{project}/judgments", method="POST", status="2xx"
    )
    submit_one(client, world["tokens"]["alice"])
    export = client.get("/api/v1/projects/pa/export.jsonl", headers=bearer(world["tokens"]["export"]))
    assert export.status_code == 200 and export.content.count(b"\n") == 1
    assert client.get("/no/such/page-4711").status_code == 404

    text = scrape(client)
    families = {family.name for family in text_string_to_metric_families(text)}
    assert {
        HISTOGRAM,
        "prefstudio_model_request_retries",
        "prefstudio_export_bytes",
        "prefstudio_queue_depth",
        "prefstudio_judgments_per_minute",
        "prefstudio_jobs",
        "prefstudio_job_progress_done",
        "prefstudio_job_progress_total",
        "prefstudio_job_retries",
    } <= families
    posts = value(text, f"{HISTOGRAM}_count", route="/api/v1/projects/{project}/judgments", method="POST", status="2xx")
    assert posts == before_posts + 1
    assert (
        value(text, f"{HISTOGRAM}_count", route="/api/v1/projects/{project}/export.jsonl", method="GET", status="2xx")
        is not None
    )
    assert value(text, f"{HISTOGRAM}_count", route="<unmatched>", method="GET", status="4xx")
    # The labels are route templates: no project slug, item id or unknown path of a real request.
    routes = {s.labels["route"] for s in samples(text) if s.name.startswith(HISTOGRAM)}
    assert not [route for route in routes if "/pa/" in route or "4711" in route]

    live = value(text, "prefstudio_export_bytes_total", kind="live")
    assert live is not None and live - before_live == len(export.content) > 0
    assert value(text, "prefstudio_queue_depth", project="pa") == queue_depth_in_db(db, "pa") == 2
    assert value(text, "prefstudio_judgments_per_minute", project="pa") == 1


def test_queue_depth_follows_adaptive_overlap(client: TestClient, world: dict[str, Any], db: Database) -> None:
    with db.session() as s:
        project = make_project(s, "adaptive", k=2, overlap=3, overlap_min=1)
        done, reopened, fresh = (make_item(s, project) for _ in range(3))
        done.judgment_count = done.claims = 1  # reached r_min = 1: complete
        reopened.judgment_count = reopened.claims = 1
        reopened.target = 2  # its votes disagreed: wants one more
        make_item(s, project, candidates=[])  # pending: waits for candidates, not for judgments
    text = scrape(client)
    assert value(text, "prefstudio_queue_depth", project="adaptive") == 2  # reopened and fresh
    assert value(text, "prefstudio_judgments_per_minute", project="adaptive") == 0


def test_jobs_progress_and_retries_come_from_the_job_rows(
    client: TestClient, world: dict[str, Any], db: Database
) -> None:
    with db.session() as s:
        pid = world["project_id"]
        s.add_all(
            [
                Job(
                    kind="generation",
                    project_id=pid,
                    state="running",
                    progress_done=3,
                    progress_total=10,
                    result={"retries": 2},
                ),
                Job(
                    kind="generation",
                    project_id=pid,
                    state="running",
                    progress_done=1,
                    progress_total=5,
                    result={"retries": 1},
                ),
                Job(kind="generation", project_id=pid, state="queued"),
                Job(kind="snapshot", project_id=pid, state="done", progress_done=4, progress_total=4),
            ]
        )
    text = scrape(client)
    assert value(text, "prefstudio_jobs", kind="generation", state="running") == 2
    assert value(text, "prefstudio_jobs", kind="generation", state="queued") == 1
    assert value(text, "prefstudio_job_progress_done", kind="generation") == 4
    assert value(text, "prefstudio_job_progress_total", kind="generation") == 15
    assert value(text, "prefstudio_job_retries", kind="generation") == 3
    assert value(text, "prefstudio_jobs", kind="snapshot", state="running") is None  # finished jobs are not shown


def test_generation_retries_are_counted(db: Database, model_server: FakeOpenAI, client: TestClient) -> None:
    settings = {"base_urls": [model_server.base_url], "model": "fake", "backoff_base_s": 0.01, "backoff_cap_s": 0.05}
    with db.session() as s:
        project = make_project(s, "gen", k=2, overlap=1, generation=settings)
        make_item(s, project, "a prompt", candidates=[])
        job = generation.start_job(s, project=project, request=JobIn(selection="missing"), user_id=None)
        job_id = job.id
    before = counted("prefstudio_model_request_retries_total", kind="generation")
    model_server.script.extend(["503", "429"])
    assert run_one(db, worker_id="w1") == (job_id, "done")
    with db.session(write=False) as s:
        assert s.get(Job, job_id).result["retries"] == 2  # type: ignore[union-attr]
    after = value(scrape(client), "prefstudio_model_request_retries_total", kind="generation")
    assert after == before + 2


def test_snapshot_bytes_are_counted(client: TestClient, world: dict[str, Any], db: Database) -> None:
    submit_one(client, world["tokens"]["alice"])
    before = counted("prefstudio_export_bytes_total", kind="snapshot")
    created = client.post("/api/v1/projects/pa/snapshots", json={}, headers=bearer(world["tokens"]["root"]))
    assert created.status_code == 202, created.text
    run_one(db, worker_id="w")
    with db.session(write=False) as s:
        snapshot = s.get(Snapshot, created.json()["id"])
        assert snapshot is not None and snapshot.state == "ready" and snapshot.size_bytes
        size = snapshot.size_bytes
    assert value(scrape(client), "prefstudio_export_bytes_total", kind="snapshot") == before + size


def test_projects_beyond_the_limit_are_counted_not_listed(
    client: TestClient, world: dict[str, Any], db: Database, app: Any
) -> None:
    with db.session() as s:
        for n in range(3):
            make_project(s, f"extra{n}")
    app.state.settings.metrics_max_projects = 2
    text = scrape(client)
    shown = {s.labels["project"] for s in samples(text) if s.name == "prefstudio_queue_depth"}
    assert shown == {"extra2", "extra1"}  # the newest two
    assert value(text, "prefstudio_metrics_projects_omitted") == 2  # "pa" and "extra0"
