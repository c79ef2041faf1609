"""The generation page with every model server down: the health panel says in plain words what is wrong and what
to check, Start is disabled (and looks it), and a job started anyway ends failed with the reason, not done."""

from __future__ import annotations

from typing import Any

from app.db import Database
from app.generation import service
from app.generation.schemas import JobIn
from app.models import Project
from tests.factories import make_item, make_project, make_user
from tests.generation.test_unreachable import closed_port


def _down_project(db: Database, port: int) -> None:
    with db.session() as s:
        make_user(s, "boss", role="admin")
        project = make_project(
            s,
            "gen",
            k=2,
            overlap=1,
            generation={
                "base_urls": [f"http://127.0.0.1:{port}"],
                "model": "tiny-sft",
                "max_retries": 2,
                "backoff_base_s": 0.05,
                "backoff_cap_s": 0.2,
            },
        )
        for i in range(2):
            make_item(s, project, f"prompt {i}", candidates=[])
        s.commit()


def test_every_server_down_is_said_plainly_and_start_is_disabled(
    page: Any, signed_in: Any, db: Database, shots: Any
) -> None:
    port = closed_port()
    _down_project(db, port)
    base = signed_in(page, "boss")
    page.goto(f"{base}/projects/gen/generation")
    problem = page.locator("#health .gen-problem")
    problem.wait_for()
    text = problem.inner_text()
    assert f"No server answers at http://127.0.0.1:{port}" in text and "is vLLM running?" in text
    assert f"vllm serve tiny-sft --port {port}" in text
    assert "Errno" not in text and "ConnectError" not in text
    assert "Errno" not in page.locator("#health").inner_text()  # the detail stays folded away

    start = page.locator("#start-gate button[type=submit]")
    page.wait_for_selector("#start-gate button[type=submit]:disabled")  # swapped in with the health answer
    assert start.is_disabled()
    look = start.evaluate("b => [getComputedStyle(b).opacity, getComputedStyle(b).cursor]")
    assert float(look[0]) < 1 and look[1] == "not-allowed"
    assert "No server answers" in page.locator("#start-blocked").inner_text()
    shots(page, "generation-all-servers-down")


def test_a_job_that_reaches_no_server_ends_failed_with_the_reason(
    page: Any, signed_in: Any, db: Database, shots: Any
) -> None:
    port = closed_port()
    _down_project(db, port)
    with db.session() as s:  # started anyway (the API's force), as a worker that cannot reach the server would
        project = s.query(Project).filter_by(slug="gen").one()
        service.start_job(s, project=project, request=JobIn(selection="missing"), user_id=None)
        s.commit()
    base = signed_in(page, "boss")
    page.goto(f"{base}/projects/gen/generation")
    page.locator("#jobs tr.job").first.wait_for()
    page.wait_for_selector("#jobs tr.job-failed", timeout=60_000)
    row = page.locator("#jobs tr.job-failed")
    assert row.locator(".badge").inner_text() == "failed"
    error = page.locator("#jobs td.error").inner_text()
    assert "Nothing was generated" in error and f"No server answers at http://127.0.0.1:{port}" in error
    assert page.locator("#jobs tr.job-done").count() == 0
    shots(page, "generation-job-failed-no-server")
