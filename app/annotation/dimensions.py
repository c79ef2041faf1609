"""What a judgment answers: a verdict on "overall" and on each of the project's dimensions, over candidates that
the page names by letter in each annotator's own display order."""

from __future__ import annotations

from app.models import OVERALL, Project

LETTERS = "ABCD"


def dimension_keys(project: Project) -> list[str]:
    """The dimensions a judgment of this project must answer, "overall" first."""
    return [OVERALL, *project.dimension_keys]
