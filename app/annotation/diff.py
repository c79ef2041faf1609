"""Word-level differences between candidates that are nearly the same, so an annotator sees what changed.

Text is split into words and whitespace (Latin and other space-separated scripts) and single characters
(Chinese, Japanese, Korean, full-width forms), then compared with :class:`difflib.SequenceMatcher`.
Pairs below the similarity threshold, or too long to compare cheaply, get no diff.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from difflib import SequenceMatcher
from itertools import combinations
from typing import Literal

SIMILAR = 0.75  # the share of matching tokens from which two candidates count as nearly the same
MAX_CHARS = 20_000  # longer candidates are not compared (the matcher is quadratic in the worst case)

_CJK = "\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef"
_TOKEN = re.compile(rf"\s+|[{_CJK}]|[^\s{_CJK}]+")

Op = Literal["same", "del", "ins"]


@dataclass(frozen=True)
class Segment:
    op: Op  # "del": only in the first candidate; "ins": only in the second
    text: str


@dataclass(frozen=True)
class PairDiff:
    first: int  # positions in the list given (the order the annotator sees)
    second: int
    similarity: float
    segments: list[Segment]

    @property
    def identical(self) -> bool:
        return all(segment.op == "same" for segment in self.segments)


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def _segments(a: list[str], b: list[str], matcher: SequenceMatcher[str]) -> list[Segment]:
    out: list[Segment] = []

    def add(op: Op, parts: list[str]) -> None:
        if not parts:
            return
        text = "".join(parts)
        if out and out[-1].op == op:
            out[-1] = Segment(op, out[-1].text + text)
        else:
            out.append(Segment(op, text))

    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            add("same", a[i1:i2])
        else:  # replace, delete, insert: what the first had, then what the second has instead
            add("del", a[i1:i2])
            add("ins", b[j1:j2])
    return out


def near_duplicates(texts: list[str], *, threshold: float = SIMILAR) -> list[PairDiff]:
    """Every pair of ``texts`` at least ``threshold`` similar, most similar first, with its differences."""
    found: list[PairDiff] = []
    split = [tokens(text) if len(text) <= MAX_CHARS else None for text in texts]
    for i, j in combinations(range(len(texts)), 2):
        a, b = split[i], split[j]
        if a is None or b is None or not (a or b):
            continue
        matcher = SequenceMatcher(None, a, b, autojunk=False)
        if matcher.real_quick_ratio() < threshold or matcher.quick_ratio() < threshold:
            continue
        similarity = matcher.ratio()
        if similarity >= threshold:
            found.append(PairDiff(i, j, similarity, _segments(a, b, matcher)))
    found.sort(key=lambda pair: -pair.similarity)
    return found
