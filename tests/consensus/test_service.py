"""The stored fit: posteriors and reliabilities from real judgments, staleness, and what readers get."""

from __future__ import annotations

from app.consensus import service
from app.db import Database
from app.models import Project
from tests.factories import make_items, make_judgment, make_project, make_user


def _world(db: Database) -> int:
    """Three annotators on 10 items (k = 2): the better candidate alternates; a and b name it, c the other."""
    with db.session() as s:
        users = [make_user(s, name) for name in ("a", "b", "c")]
        project = make_project(s, "cons", k=2, dimensions=[], members=users)
        for n, item in enumerate(make_items(s, project, 10)):
            for user in users:
                first = (n % 2 == 0) == (user.username != "c")
                make_judgment(s, item, user, {"overall": ("preference", 0, 1) if first else ("preference", 1, 0)})
        return project.id


def test_posteriors_fit_on_demand_and_are_cached(db: Database) -> None:
    project_id = _world(db)
    with db.session() as s:
        project = s.get(Project, project_id)
        assert project is not None
        assert service.posteriors(s, project=project, dimension="overall", fit=False) is None
        assert service.annotator_reliability(s, project=project) is None
        fit = service.posteriors(s, project=project, dimension="overall")
        assert fit is not None
        item_ids = sorted(fit.items.tolist())
    with db.session(write=False) as s:
        project = s.get(Project, project_id)
        assert project is not None
        cached = service.posteriors(s, project=project, dimension="overall", fit=False)
        assert cached is not None and cached.source == fit.source
        p = cached.of(item_ids[0], (0, 1))
        assert p is not None and p[0] > 0.9
        assert cached.of(item_ids[0], (1, 0)) is None
        reliability = service.annotator_reliability(s, project=project)
        assert reliability is not None and len(reliability) == 3
