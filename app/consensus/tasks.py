"""Background work: keep every project's consensus fits fresh (run by ``prefstudio worker``)."""

from __future__ import annotations

import logging
import time

from sqlalchemy import select

from app.consensus.service import fingerprint, fit_project, is_stale, store_all
from app.db import Database
from app.models import Project

log = logging.getLogger("prefstudio.consensus")


def refresh_stale_fits(db: Database) -> list[str]:
    """Fit again every project whose judgments moved since its stored fits; returns their slugs.

    The fit reads in its own session and the result is written in a short one afterwards, so on SQLite the write
    lock is held for the upserts only, never while the model runs. The fingerprint is taken before reading: a
    judgment that lands meanwhile leaves the fit stale, and the next round fits again.
    """
    with db.session(write=False) as session:
        project_ids = list(session.scalars(select(Project.id).order_by(Project.id)))
    refreshed = []
    for project_id in project_ids:
        try:
            started = time.perf_counter()
            with db.session(write=False) as session:
                project = session.get(Project, project_id)
                if project is None:
                    continue
                source = fingerprint(session, project=project)
                if not is_stale(session, project=project, source=source):
                    continue
                slug = project.slug
                fits = fit_project(session, project=project, source=source)
            with db.session() as session:
                store_all(session, project_id=project_id, fits=fits)
        except Exception:  # one project's failure must not stop the others, nor the worker
            log.exception("consensus fits of project %s could not be refreshed", project_id)
            continue
        log.info("consensus fits of %s refreshed in %.0f ms", slug, (time.perf_counter() - started) * 1000)
        refreshed.append(slug)
    return refreshed
