"""The judge page in Chromium: an admin opens it from the project, saves a judge and its key, sees a mistake
explained with what was typed kept, and starts a judge job that shows up in the jobs table."""

from __future__ import annotations

from typing import Any

from app.db import Database
from app.models import Job, Project
from tests.factories import make_item, make_project, make_user

SERVER = "http://127.0.0.1:8011"
RUBRIC = "Judge {dimension} strictly.\n{prompt}\n{candidates}"


def test_admin_saves_settings_and_starts_a_job(page: Any, signed_in: Any, db: Database, shots: Any) -> None:
    with db.session() as s:
        make_user(s, "boss", role="admin")
        project = make_project(s, "jp", k=2, overlap=1)
        for i in range(2):
            make_item(s, project, f"prompt {i}")
        s.commit()
    base = signed_in(page, "boss")
    page.goto(f"{base}/projects/jp")
    page.click("#judge-link")
    page.wait_for_url(f"{base}/projects/jp/judge")

    page.fill("#judges", "judge-a@ftp://example.org")
    page.fill("#rubric", RUBRIC)
    page.click("#judge-settings button[type=submit]")
    page.locator("#settings-error").wait_for()
    assert "base_url" in page.locator("#settings-error").inner_text()
    assert page.input_value("#rubric") == RUBRIC  # what was typed stays

    page.fill("#judges", f"judge-a@{SERVER}")
    page.fill("#api_key", "sk-page")
    page.fill("#concurrency", "4")
    page.check("#rationale")
    page.click("#judge-settings button[type=submit]")
    page.wait_for_selector("input[name=clear_api_key]")  # a key is stored now
    assert page.locator("#settings-error").count() == 0
    assert page.input_value("#judges") == f"judge-a@{SERVER}" and page.input_value("#api_key") == ""
    assert page.get_attribute("#api_key", "placeholder") == "••••" and page.is_checked("#rationale")
    with db.session() as s:
        judge = s.query(Project).filter_by(slug="jp").one().judge
        assert judge["judges"][0]["api_key"] == "sk-page" and judge["concurrency"] == 4

    page.click("#judge-start")
    page.locator("#jobs tr.job").first.wait_for()
    # A worker of the test run may take the job at once: queued or running, it is listed.
    assert page.locator("#jobs tr.job .badge").first.inner_text() in ("queued", "running")
    with db.session() as s:
        job = s.query(Job).one()
        assert job.kind == "judge" and job.progress_total == 2
    shots(page, "judge-page-job-queued")

    page.click("#judge-start")  # a second one while the first is queued: said on the page
    page.locator("#start-error").wait_for()
    assert "still running" in page.locator("#start-error").inner_text()
