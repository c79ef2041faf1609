"""A snapshot's data card: a markdown page of what is in the file, where it came from and how far to trust it.

Written once, when the snapshot is; the agreement figures and counts are the project's at that moment.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import orjson
from sqlalchemy.orm import Session

from app.export import repository
from app.export.filters import Rules
from app.export.schemas import DROP_REASONS
from app.models import OVERALL, Project, Snapshot, utcnow

SAMPLING_KEYS = ("mode", "strategy", "model", "temperature", "temperatures", "top_p", "max_tokens", "stop", "seed")


def data_card(
    session: Session,
    *,
    project: Project,
    snapshot: Snapshot,
    rules: Rules,
    drops: Counter[str],
    sha: str,
    rows: int,
    size: int,
    parts: list[dict[str, Any]] | None = None,
    pii: dict[str, Any] | None = None,
) -> str:
    """The snapshot's data card (markdown): what is in it, where it came from, how far to trust it."""
    filters = rules.filters
    lines = [
        f"# {project.name} — snapshot {snapshot.id}" + (f" ({snapshot.name})" if snapshot.name else ""),
        "",
        f"- Created: {utcnow():%Y-%m-%d %H:%M} UTC",
        f"- Pairs: {rows:,} ({filters.format} format, dimension `{filters.dimension}`, {filters.pairs} pairs)",
        f"- File: {size:,} bytes, sha256 `{sha}`",
        f"- Split: {drops['_split_train']:,} train, {drops['_split_test']:,} test (test share {filters.test_share})",
        f"- Adjudicated pairs: {drops['_adjudicated']:,}",
        *_smoothing_line(drops, filters.label),
        *_judge_lines(rules, drops),
        "",
        "## Filter",
        "",
        "| rule | value |",
        "| --- | --- |",
    ]
    for key, value in rules.public_dump().items():
        lines.append(f"| {key} | `{orjson.dumps(value).decode()}` |")
    lines += ["", "## What the filter dropped", "", "| reason | pairs |", "| --- | --- |"]
    lines += [f"| {reason} | {drops[reason]:,} |" for reason in DROP_REASONS]
    lines += _parts_section(parts or [])
    lines += pii_section(pii)
    lines += _verdicts_section(session, project)
    lines += _agreement_section(session, project)
    lines += _pool_section(session, project, rules)
    lines += _models_section(session, project)
    return "\n".join(lines)


def _judge_lines(rules: Rules, drops: Counter[str]) -> list[str]:
    """With judge labels (source judge or both): how many rows the judge labelled, and the thresholds."""
    filters = rules.filters
    if filters.source == "human":
        return []
    if filters.source == "arena":
        return [
            '- Label source: arena — the votes of a blind evaluation (meta.label_source = "arena", with '
            "meta.chosen_model_id and meta.rejected_model_id); exported because asked"
        ]
    kappa = "undefined" if rules.judge_kappa is None else f"{rules.judge_kappa:.3f}"
    return [
        f"- Label source: {filters.source}; {drops['_judge_rows']:,} rows labelled by the judge "
        f'(meta.label_source = "judge"), {drops["_kept"] - drops["_judge_rows"]:,} by people',
        f"- Judge thresholds: κ with people on `{filters.dimension}` {kappa} (needed ≥ {filters.min_judge_kappa}), "
        f"suggestion confidence ≥ {filters.min_judge_confidence}; left out: {drops['_judge_unsure']:,} unsure, "
        f"{drops['_judge_kappa']:,} below the κ threshold, {drops['_judge_confidence']:,} below the confidence",
    ]


def label_smoothing(drops: Counter[str]) -> float | None:
    """The mean disagreement of the exported pairs (1 − meta.agreement, or 1 − meta.confidence with label=model):
    a hint for cDPO's ``label_smoothing``; None when no pair had the figure."""
    n = drops["_disagreement_n"]
    return round(drops["_disagreement_e6"] / n / 1_000_000, 4) if n else None


def _smoothing_line(drops: Counter[str], label: str) -> list[str]:
    value = label_smoothing(drops)
    if value is None:
        return []
    source = "1 − meta.confidence" if label == "model" else "1 − meta.agreement"
    return [f"- Label smoothing hint (cDPO): {value} (mean of {source} over the exported pairs)"]


def _parts_section(parts: list[dict[str, Any]]) -> list[str]:
    if not parts:
        return []
    lines = ["", "## Files beside the main one", "", "| part | kind | dimension | pairs | bytes | sha256 |"]
    lines.append("| --- | --- | --- | --- | --- | --- |")
    for p in parts:
        lines.append(
            f"| {p['name']} | {p['kind']} | {p['dimension']} | {p['rows']:,} | {p['bytes']:,} | `{p['sha256']}` |"
        )
    return lines


PII_KINDS = {
    "api_key": "API keys",
    "email": "e-mail addresses",
    "iban": "IBANs",
    "credit_card": "payment card numbers",
    "ip": "IP addresses",
    "phone": "phone numbers",
}
PII_DONE = {
    "mask": "masked: each match replaced by a placeholder of its kind ([EMAIL], [PHONE], …)",
    "drop": "dropped: the pairs of items with matches are left out",
    "accept": "accepted: exported as they are",
}


def pii_section(pii: dict[str, Any] | None) -> list[str]:
    """What the personal-data gate scanned, found and did."""
    if pii is None:
        return []
    hits = pii.get("hits") or {}
    found = ", ".join(f"{PII_KINDS.get(kind, kind)} {n:,}" for kind, n in hits.items() if n) or "none"
    lines = [
        "",
        "## Personal data",
        "",
        "- Scanned: the prompts, candidates and reasons of the exported pairs, for " + ", ".join(PII_KINDS.values()),
        f"- Items scanned: {pii.get('items_scanned', 0):,}; with matches: {pii.get('items_with_hits', 0):,}",
        f"- Matches by kind: {found}",
    ]
    decision = pii.get("decision")
    if decision in PII_DONE:
        lines.append(f"- Decision: {decision} — matches are {PII_DONE[decision]}")
    elif pii.get("items_with_hits"):
        lines.append("- Decision: per item (see the overrides)")
    else:
        lines.append("- Decision: none needed (no matches)")
    if pii.get("masked_items"):
        lines.append(f"- Masked: {pii['masked_matches']:,} matches in {pii['masked_items']:,} items")
    if pii.get("dropped_items"):
        lines.append(f"- Dropped: {pii['dropped_items']:,} items ({pii['dropped_pairs']:,} pairs)")
    if pii.get("accepted_items"):
        lines.append(f"- Accepted as they are: {pii['accepted_items']:,} items")
    overrides = pii.get("overrides") or {}
    if overrides:
        shown = ", ".join(f"#{item} {choice}" for item, choice in list(overrides.items())[:50])
        more = f" and {len(overrides) - 50:,} more (in the snapshot's filters)" if len(overrides) > 50 else ""
        lines.append(f"- Per-item overrides: {shown}{more}")
    return lines


def _verdicts_section(session: Session, project: Project) -> list[str]:
    per_dim: dict[str, Counter[str]] = defaultdict(Counter)
    for dim, kind, n in repository.verdict_counts(session, project=project):
        per_dim[dim][kind] = n
    lines = [
        "",
        "## Verdicts per dimension",
        "",
        "| dimension | preference | tie | n.a. |",
        "| --- | --- | --- | --- |",
    ]
    for dim in [OVERALL, *project.dimension_keys]:
        kinds = per_dim.get(dim, Counter())
        lines.append(f"| {dim} | {kinds['preference']:,} | {kinds['tie']:,} | {kinds['na']:,} |")
    return lines


def _agreement_section(session: Session, project: Project) -> list[str]:
    # Local: the agreement code brings numpy (12 MB), which only writing a card needs; `prefstudio export
    # --out` imports this module (through snapshots.py) and never writes one.
    from app.agreement import service as agreement

    figures = agreement.compute(session, project=project, resamples=0)
    lines = [
        "",
        "## Agreement (over preference pairs, whole project)",
        "",
        "| dimension | Fleiss' κ | Krippendorff's α | % agreement | units |",
        "| --- | --- | --- | --- | --- |",
    ]
    for d in figures.dimensions:
        lines.append(
            f"| {d.dimension} | {_fmt(d.fleiss_kappa)} | {_fmt(d.alpha)} | {_fmt(d.percent_agreement)} | {d.units:,} |"
        )
    return lines


def _pool_section(session: Session, project: Project, rules: Rules) -> list[str]:
    pool = repository.judgments_per_annotator(session, project=project)
    lines = [
        "",
        "## Annotator pool (pseudonymous)",
        "",
        "| annotator | judgments | in this export |",
        "| --- | --- | --- |",
    ]
    for user_id, n in sorted(pool, key=lambda row: -row[1]):
        lines.append(f"| {rules.pseudonym(user_id)} | {n:,} | {'no' if user_id in rules.excluded else 'yes'} |")
    return lines


def _models_section(session: Session, project: Project) -> list[str]:
    models = repository.candidates_per_model(session, project=project)
    lines = ["", "## Models", "", "| model | candidates |", "| --- | --- |"]
    lines += [f"| {m or '(imported, unknown)'} | {n:,} |" for m, n in models]
    lines += ["", "Sampling settings of the project's generation:", ""]
    lines += ["```json", sampling_settings(project), "```", ""]
    return lines


def sampling_settings(project: Project) -> str:
    """The project's generation settings as a data card may show them: model names and sampling parameters,
    never where the models are served or how (base URLs, keys, headers, timeouts)."""
    generation = project.generation or {}
    shown: dict[str, Any] = {k: generation[k] for k in SAMPLING_KEYS if k in generation}
    models = generation.get("models")
    if isinstance(models, list) and models:
        shown["models"] = [m.get("model") for m in models if isinstance(m, dict)]
    return orjson.dumps(shown).decode()


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"
