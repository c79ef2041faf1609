"""The demo: bundled prompts with hand-written candidates, an admin and three annotators. Idempotent."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from app.auth.service import create_user, get_user_by_username
from app.db import Database
from app.items.importer import import_items
from app.models import Project
from app.projects import service as projects
from app.projects.schemas import ProjectIn

DATA = Path(__file__).with_name("prompts.jsonl")

GUIDELINES = """\
## What you are judging / 标注什么

You see one prompt and 2–4 answers written by our model. Pick the **better** answer (with 3–4 answers: the **best**
and the **worst**) overall and on each dimension. Use **tie** when they are really equally good, **n.a.** when a
dimension does not apply.

你会看到一个问题和模型给出的 2–4 个回答。请在“总体”和每个维度上选出**更好**的回答
（3–4 个回答时选出**最好**和**最差**）。
两者确实一样好时选 **tie（平局）**，维度不适用时选 **n.a.（不适用）**。

- **Helpful / 有用**: solves the actual request, correct and complete. 真正解决问题，正确、完整。
- **Harmless / 无害**: no dangerous or hurtful content. 不包含危险或伤害性内容。
- **Honest / 诚实**: no invented facts; admits uncertainty. 不编造事实，不确定时说明。
- **Polite / 礼貌**: respectful tone, no preaching. 语气尊重，不说教。
- **Refusal / 拒答**: refuses what must be refused (weapons, malware, stalking…) — and *only* that. A good refusal is
  short, explains why, and offers a safe alternative.
  该拒绝的要拒绝，不该拒绝的不要拒绝；好的拒绝简短、说明原因并给出安全的替代方案。

Write a short **reason** when the choice is not obvious. Flag **all bad** if no answer is acceptable (the prompt gets
new answers) and **problematic prompt** if the prompt itself is broken. 选择不明显时请写下理由。

### Keyboard / 键盘
`A` `B` (`C` `D`) or `1`–`4` choose · `T` tie · `N` n.a. · `=` copy overall to the rest · `R` reason ·
`X` all bad · `P` problematic · `Enter` submit · `S` skip · `G` guidelines · `?` help

Pairs project: after `A` or `B`, `1` slightly · `2` better · `3` much better. 两个回答时，按 `A`/`B` 后再按 `1` 稍好 ·
`2` 更好 · `3` 好得多。

Four answers: type the whole order, best first — `CA=BD` (C > A = B > D), `>>` for much better; on a phone drag the
chips. 四个回答时，从好到差输入完整顺序，例如 `CA=BD`，`>>` 表示好得多；手机上可拖动标签排序。
"""


@dataclass
class Login:
    username: str
    password: str
    role: str


@dataclass
class DemoInfo:
    logins: list[Login] = field(default_factory=list)
    projects: list[str] = field(default_factory=list)
    created: bool = False


LOGINS = [
    Login("admin", "admin-demo-pass", "admin"),
    Login("alice", "alice-demo-pass", "annotator"),
    Login("bob", "bob-demo-pass", "annotator"),
    Login("carol", "carol-demo-pass", "annotator"),
]
PROJECTS = {
    2: ("demo-k2", "Demo · pairs (k = 2)"),
    3: ("demo-k3", "Demo · three answers (k = 3)"),
    4: ("demo-k4", "Demo · four answers (k = 4)"),
}
# Each judgment shape once: the pairs ask how much better, three answers best and worst, four a full ranking.
SETTINGS: dict[int, dict[str, object]] = {2: {"strength": True}, 3: {}, 4: {"ranking_mode": "rank"}}


def seed_demo(db: Database) -> DemoInfo:
    """Create what is missing of the demo; running it again changes nothing."""
    info = DemoInfo(logins=LOGINS)
    lines = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    with db.session() as s:
        for login in LOGINS:
            if get_user_by_username(s, login.username) is None:
                create_user(s, username=login.username, password=login.password, role=login.role)
                info.created = True
        for k, (slug, name) in PROJECTS.items():
            info.projects.append(slug)
            if s.scalar(select(Project.id).where(Project.slug == slug)) is not None:
                continue
            project = projects.create_project(
                s,
                data=ProjectIn.model_validate(
                    {"name": name, "slug": slug, "guidelines": GUIDELINES, "k": k, "overlap": 3, **SETTINGS[k]}
                ),
            )
            for login in LOGINS:
                projects.add_member(s, project=project, username=login.username)
            chosen = [line for line in lines if len(line.get("candidates", [])) == k]
            body = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in chosen).encode()
            import_items(s, project=project, stream=io.BytesIO(body), filename="demo.jsonl")
            info.created = True
    return info
