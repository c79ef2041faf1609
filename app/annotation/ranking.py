"""The annotation page's typed rankings: "C>>A=BD" orders every candidate by its letter, best first — letters in
a row (or ">") go down a tier, "=" ties two letters, ">>" marks the gap "much better" — and the shapes a ranking
and a strength are shown in ("C ≫ A = B > D", "A ≫ B")."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

TOKEN = re.compile(r">>|≫|>|=|[A-Za-z]|\s+|.", re.DOTALL)
STRENGTH_SIGN = {1: "≳", 2: ">", 3: "≫"}  # slightly, better, much better


def parse_order(text: str, letters: str) -> tuple[list[list[str]], list[int]]:
    """The tiers of letters (best first) and the "much better" gaps (0: after the first tier) that ``text``
    types; a ValueError saying what is wrong unless it names each of ``letters`` exactly once."""
    tiers: list[list[str]] = []
    much: list[int] = []
    link: str | None = "start"  # what joins the next letter to the ones before: ">", ">>" or "="; None: nothing yet
    for token in TOKEN.findall(text):
        if token.isspace():
            continue
        if token in (">", ">>", "≫", "="):
            if link is not None:
                raise ValueError(f"“{token}” must stand between two letters")
            link = ">>" if token == "≫" else token
            continue
        letter = token.upper()
        if letter not in letters:
            raise ValueError(f"“{token}” is not a candidate letter (use {', '.join(letters)})")
        if any(letter in tier for tier in tiers):
            raise ValueError(f"{letter} is named twice")
        if link == "=" and tiers:
            tiers[-1].append(letter)
        else:
            if link == ">>" and tiers:
                much.append(len(tiers) - 1)
            tiers.append([letter])
        link = None
    if link is not None and link != "start":
        raise ValueError(f"“{link}” must stand between two letters")
    missing = [letter for letter in letters if not any(letter in tier for tier in tiers)]
    if missing:
        raise ValueError(f"missing: {', '.join(missing)}")
    return [sorted(tier) for tier in tiers], much


def order_text(tiers: Sequence[Sequence[str]], much: Sequence[int]) -> str:
    """A ranking as the page types it: "C>>A=B>D"."""
    out = ""
    for t, tier in enumerate(tiers):
        if t:
            out += ">>" if t - 1 in much else ">"
        out += "=".join(tier)
    return out


def shown_order(tiers: Sequence[Sequence[str]], much: Sequence[int]) -> str:
    """A ranking as the pages show it: "C ≫ A = B > D"."""
    out = ""
    for t, tier in enumerate(tiers):
        if t:
            out += " ≫ " if t - 1 in much else " > "
        out += " = ".join(tier)
    return out


def ranking_letters(ranking: Sequence[Sequence[int]], names: Mapping[int, str]) -> list[list[str]]:
    """A ranking's tiers of candidate ids as the names (letters or numbers) a page shows them by."""
    return [sorted(names.get(cid, "?") for cid in tier) for tier in ranking]


def shown_strength(chosen: str, rejected: str, strength: int | None) -> str:
    """A k = 2 preference with its strength: "A ≫ B" (much better), "A > B" (better), "A ≳ B" (slightly)."""
    return f"{chosen} {STRENGTH_SIGN.get(strength or 0, '>')} {rejected}"


def verdict_text(
    kind: str | None,
    chosen: int | None,
    rejected: int | None,
    names: Mapping[int, str],
    *,
    strength: int | None = None,
    ranking: Sequence[Sequence[int]] | None = None,
    much: Sequence[int] | None = None,
) -> str | None:
    """A preference or a ranking in the names a page shows candidates by: "A ≻ B" (best ≻ worst), "A ≫ B" (with a
    strength), "C ≫ A = B > D" (a ranking); None for a tie or n.a., which the caller words."""
    if kind == "ranking" and ranking:
        return shown_order(ranking_letters(ranking, names), much or [])
    if kind != "preference" or chosen is None or rejected is None:
        return None
    if strength is not None:
        return shown_strength(names.get(chosen, "?"), names.get(rejected, "?"), strength)
    return f"{names.get(chosen, '?')} ≻ {names.get(rejected, '?')}"


def top_and_bottom(ranking: Sequence[Sequence[int]] | None) -> tuple[int | None, int | None]:
    """A ranking's best and worst candidate, each None where several share the tier (or nothing is ranked below)."""
    tiers = list(ranking or [])
    if len(tiers) < 2:
        return None, None
    return (tiers[0][0] if len(tiers[0]) == 1 else None), (tiers[-1][0] if len(tiers[-1]) == 1 else None)
