"""An export filter resolved against a project: the dimensions to read, the annotators to leave out, and the
pseudonyms annotators go by in the export.

Annotators are named by pseudonym; admins may name them by username or user id too. The thresholds (mean κ,
gold accuracy) leave out whoever falls below them, worked out once per export by the agreement figures.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from app.export import pseudonyms
from app.export.fate import Posterior
from app.export.judged import dimension_kappa
from app.export.pairs import Pair
from app.export.repository import project_annotators
from app.export.schemas import JUDGE_FIELDS, ExportFilter
from app.kit.errors import Invalid
from app.models import OVERALL, Project


@dataclass
class Rules:
    """A filter resolved against a project: dimensions to read, annotators to ignore, the pseudonym key."""

    filters: ExportFilter
    project: Project
    key: bytes
    dims: list[str]
    excluded: set[int]  # by the filter's list or its thresholds
    named: set[int] = field(default_factory=set)  # those the filter's list names
    slug: str = ""
    # The consensus model's posterior of a pair of an item (label=model or min_confidence; else None).
    posterior: Callable[[int, Pair], Posterior | None] | None = None
    ties: bool = False  # make the rows of the pairs whose consensus is a tie instead (a snapshot's ties file)
    judge_kappa: float | None = None  # source ≠ human: the primary judge's κ with people on the dimension

    @property
    def with_strength(self) -> bool:
        """Whether rows carry strength (the project asks for strength, or for rankings that mark "much better")."""
        return bool(self.project.strength) or self.project.ranking_mode == "rank"

    _pseudonyms: dict[int, str] = field(default_factory=dict)

    def pseudonym(self, user_id: int) -> str:
        """A stable id for an annotator in this project's exports that does not reveal who it is."""
        name = self._pseudonyms.get(user_id)
        if name is None:
            name = self._pseudonyms[user_id] = pseudonyms.pseudonym(self.key, self.project.id, user_id)
        return name

    @property
    def excluded_pseudonyms(self) -> list[str]:
        return sorted(self.pseudonym(u) for u in self.excluded)

    def public_filter(self) -> ExportFilter:
        """The filter as it may be shown to export-token holders: annotators named by pseudonym only."""
        named = sorted(self.pseudonym(u) for u in self.named)
        return self.filters.model_copy(update={"exclude_annotators": named})

    def public_dump(self) -> dict[str, Any]:
        """``public_filter`` as JSON values; a human-only filter without the judge's fields, and one of every round
        without ``rounds`` (as before them)."""
        source = self.filters.source
        exclude = set(JUDGE_FIELDS) if source == "human" else JUDGE_FIELDS - {"source"} if source == "arena" else set()
        if not self.filters.rounds:
            exclude.add("rounds")
        return self.public_filter().model_dump(mode="json", exclude=exclude)

    @property
    def by_judge(self) -> bool:
        """Whether the rows may carry the judge's labels (source judge or both)."""
        return self.filters.source in ("judge", "both")


def resolve(
    session: Session,
    *,
    project: Project,
    filters: ExportFilter,
    key: bytes,
    by_admin: bool = False,
    excluded: set[int] | None = None,
) -> Rules:
    """Check the filter against the project and work out which annotators it leaves out. Annotators are named by
    pseudonym; ``by_admin`` callers may name them by username or user id too. ``excluded``: as worked out
    before, for the same filter (neither the names nor the thresholds are evaluated again)."""
    _check_source(project, filters)
    known = [OVERALL, *project.dimension_keys]
    for dim in [filters.dimension, *filters.veto]:
        if dim not in known:
            raise Invalid(f"Unknown dimension {dim!r}; this project has: {', '.join(known)}")
    rules = Rules(
        filters=filters,
        project=project,
        key=key,
        dims=list(dict.fromkeys([filters.dimension, *filters.veto])),
        excluded=set(excluded or ()),
        slug=project.slug,
    )
    if filters.label == "model" or filters.min_confidence is not None:
        rules.posterior = model_posteriors(session, project=project, dimension=filters.dimension)
    if rules.by_judge:
        rules.judge_kappa = dimension_kappa(session, project=project, dimension=filters.dimension)
    if excluded is not None:
        return rules
    annotators: dict[int, str] = {}
    if filters.exclude_annotators or filters.min_annotator_kappa is not None:
        annotators = project_annotators(session, project=project)
    if filters.exclude_annotators:
        rules.named = _named(rules, annotators, by_admin=by_admin)
    rules.excluded = set(rules.named)
    if filters.min_annotator_kappa is not None or filters.min_gold_accuracy is not None:
        ids = {name: user_id for user_id, name in annotators.items()}
        rules.excluded |= _below_thresholds(session, project=project, filters=filters, ids=ids)
    return rules


def _check_source(project: Project, filters: ExportFilter) -> None:
    """An arena's votes are evaluation, not training data: they are exported only when asked (source=arena), and
    source=arena means an arena project."""
    if project.kind == "arena" and filters.source != "arena":
        raise Invalid(
            f"{project.slug!r} is an arena (an evaluation): its votes are exported only when asked with "
            "source=arena, so that they do not become training pairs by mistake"
        )
    if project.kind != "arena" and filters.source == "arena":
        raise Invalid(f"source=arena is for arena projects; {project.slug!r} is a preference project")


def model_posteriors(session: Session, *, project: Project, dimension: str) -> Callable[[int, Pair], Posterior | None]:
    """The consensus model's posterior of each pair on ``dimension``: the stored fit if it saw the judgments there
    are now, else a fit made here and not stored (an export only reads, on its own consistent view of the data)."""
    # Local: the model brings numpy and crowd-kit, which the export processes need only for these filters.
    from app.consensus import service as consensus

    fit = consensus.posteriors(session, project=project, dimension=dimension, fit=False)
    source = consensus.fingerprint(session, project=project)
    if fit is None or fit.source != source:
        fit = consensus.fit_project(session, project=project, source=source).get(dimension)
    if fit is None:
        raise Invalid(f"The consensus model has no fit on {dimension!r} for this project")
    return fit.of


def names_of(session: Session, *, project: Project, key: bytes, of: list[str]) -> list[str]:
    """The usernames behind pseudonyms of this project (for admins' pages), in the order given."""
    annotators = project_annotators(session, project=project)
    names = {pseudonyms.pseudonym(key, project.id, u): n for u, n in annotators.items()}
    return [names.get(p, p) for p in of]


def _named(rules: Rules, annotators: dict[int, str], *, by_admin: bool) -> set[int]:
    """The annotators the filter's list names. Anything else is refused with one answer, whether such a user
    exists or not (an export token learns nothing about users)."""
    by_pseudonym = {rules.pseudonym(user_id): user_id for user_id in annotators}
    by_name = {name: user_id for user_id, name in annotators.items()} if by_admin else {}
    named: set[int] = set()
    unknown: list[str] = []
    for who in rules.filters.exclude_annotators:
        if pseudonyms.looks_like_pseudonym(who) and who in by_pseudonym:
            named.add(by_pseudonym[who])
        elif who in by_name:
            named.add(by_name[who])
        elif by_admin and who.isascii() and who.isdigit() and int(who) in annotators:
            named.add(int(who))
        else:
            unknown.append(who[:100])
    if unknown:
        how = "by pseudonym (a_…, as in meta.annotators)" + (", username or user id" if by_admin else "")
        raise Invalid(f"Not an annotator of this project: {', '.join(unknown)}. Name annotators {how}.")
    return named


def _below_thresholds(session: Session, *, project: Project, filters: ExportFilter, ids: dict[str, int]) -> set[int]:
    """The annotators whose mean κ with their peers, or whose gold accuracy, is below the filter's threshold."""
    # Local: the agreement code brings numpy. The export processes (app.export.stream) preload this module but
    # never evaluate thresholds (their parent did), so they need not carry it.
    from app.agreement import service as agreement

    out: set[int] = set()
    if filters.min_annotator_kappa is not None:
        figures = agreement.compute(session, project=project, resamples=0)
        kappas: dict[str, list[float]] = defaultdict(list)
        for pair in figures.pairs:
            if pair.kappa is not None:
                kappas[pair.a].append(pair.kappa)
                kappas[pair.b].append(pair.kappa)
        for person in figures.annotators:
            values = kappas.get(person.annotator)
            if values and sum(values) / len(values) < filters.min_annotator_kappa and person.annotator in ids:
                out.add(ids[person.annotator])
    if filters.min_gold_accuracy is not None:
        for user_id, (_, accuracy) in agreement.gold_accuracy(session, project=project).items():
            if accuracy is not None and accuracy < filters.min_gold_accuracy:
                out.add(user_id)
    return out
