"""The adjudication review stream in Chromium: a case opens with the majority pre-filled, one key accepts it and
the next case comes up; one key per changed dimension plus the reason overrides it; the Decided tab lists the
decision (who, when, reason) and re-opens it with its stored values."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select

from app.annotation.dimensions import dimension_keys
from app.db import Database
from app.models import Adjudication, Candidate
from tests.factories import make_item, make_judgment, make_project, make_user


def _split_items(db: Database, n: int = 2) -> tuple[list[int], list[str]]:
    """``n`` items that u1 and u2 judge A over B on every dimension and u3 B over A (a 2-1 majority for A)."""
    with db.session() as s:
        users = [make_user(s, name) for name in ("u1", "u2", "u3")]
        make_user(s, "boss", role="admin")
        project = make_project(s, "rev", k=2, overlap=3, members=users)
        dims = dimension_keys(project)
        items = [make_item(s, project, f"Question number {i}?") for i in range(n)]
        for item in items:
            for user, best in zip(users, (0, 0, 1), strict=True):
                make_judgment(s, item, user, dict.fromkeys(dims, ("preference", best, 1 - best)), reason=user.username)
        s.commit()
        return [i.id for i in items], dims


def _form_values(page: Any, dims: list[str]) -> dict[str, str]:
    return {d: page.input_value(f"#d-{d}") for d in dims}


def _stored(db: Database, item_id: int) -> tuple[dict[str, tuple[str, int | None]], str]:
    """The item's newest decision as {dimension: (kind, position of the chosen candidate)} and its reason."""
    with db.session(write=False) as s:
        position = dict(
            s.execute(select(Candidate.id, Candidate.position).where(Candidate.item_id == item_id)).tuples().all()
        )
        decision = s.scalar(
            select(Adjudication).where(Adjudication.item_id == item_id).order_by(Adjudication.id.desc()).limit(1)
        )
        assert decision is not None, "no decision was stored"
        verdicts = {d: (v["kind"], position.get(v.get("chosen"))) for d, v in decision.verdicts.items()}
        return verdicts, decision.reason


def test_the_majority_is_pre_filled_and_one_key_accepts_it_and_opens_the_next_case(
    page: Any, signed_in: Any, db: Database, shots: Any
) -> None:
    (first, second), dims = _split_items(db)
    base = signed_in(page, "boss")
    page.goto(f"{base}/projects/rev/adjudication/{first}")
    assert _form_values(page, dims) == dict.fromkeys(dims, "A>B")  # the majority, not a blank form
    shots(page, "review-case-majority")
    keys = ["y"]  # accept the majority & next
    for key in keys:
        page.keyboard.press(key)
    page.wait_for_url(re.compile(rf"/adjudication/{second}\b"))
    assert len(keys) <= 2
    assert _stored(db, first)[0] == dict.fromkeys(dims, ("preference", 0))
    assert f"#{second}" in page.inner_text("h1")
    assert _form_values(page, dims) == dict.fromkeys(dims, "A>B")
    shots(page, "review-case-next")
    page.keyboard.press("Enter")  # Enter on the untouched pre-filled form decides too; the queue is then empty
    page.wait_for_url(re.compile(r"/adjudication\?decided="))
    assert _stored(db, second)[0] == dict.fromkeys(dims, ("preference", 0))
    assert page.is_visible("#queue-empty a[href$='/adjudication/decided']")
    shots(page, "review-queue-empty")


def test_an_override_takes_one_key_per_changed_dimension_plus_the_reason(
    page: Any, signed_in: Any, db: Database, shots: Any
) -> None:
    (first, _), dims = _split_items(db)
    base = signed_in(page, "boss")
    page.goto(f"{base}/projects/rev/adjudication/{first}")
    page.keyboard.press("b")  # overall (the active row): B best, and on to the next row
    page.keyboard.press("j")  # skip helpful
    page.keyboard.press("t")  # harmless: tie
    assert page.input_value("#d-overall") == "B>A" and page.input_value("#d-harmless") == "tie"
    page.keyboard.press("Enter")  # a departure from the majority without a reason is refused, the edits stay
    page.wait_for_selector("#toasts .toast")
    assert "reason" not in page.url and page.url.endswith(f"/adjudication/{first}")
    assert page.input_value("#d-overall") == "B>A"
    page.keyboard.press("r")
    page.keyboard.type("u3 read the question right")
    shots(page, "review-case-override")
    page.keyboard.press("Control+Enter")
    page.wait_for_url(re.compile(rf"/adjudication/\d+\?decided={first}"))
    verdicts, reason = _stored(db, first)
    assert verdicts["overall"] == ("preference", 1) and verdicts["harmless"] == ("tie", None)
    assert all(verdicts[d] == ("preference", 0) for d in dims if d not in ("overall", "harmless"))
    assert reason == "u3 read the question right"


def test_the_decided_tab_lists_decisions_and_reopens_one_with_its_stored_values(
    page: Any, signed_in: Any, db: Database, shots: Any
) -> None:
    (first, _), dims = _split_items(db)
    base = signed_in(page, "boss")
    page.goto(f"{base}/projects/rev/adjudication/{first}")
    page.select_option("#d-overall", "B>A")
    page.select_option("#d-polite", "tie")
    page.fill("#reason", "B is the honest one")
    page.click("#decide-next")
    page.wait_for_url(re.compile(r"decided="))
    page.locator("main a[href$='/adjudication/decided']").first.click()
    page.wait_for_url(re.compile(r"/adjudication/decided$"))
    row = page.locator(f"tr[data-item='{first}']")
    assert row.locator(".decided-by").inner_text() == "boss"
    assert "B is the honest one" in row.locator(".decided-reason").inner_text()
    stamp = row.locator("time").get_attribute("datetime")
    assert stamp and re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|\+00:00)$", stamp)  # UTC ISO
    assert "B ≻ A" in row.locator(".decided-outcome").inner_text()
    shots(page, "review-decided")
    row.locator(f"a[href$='/adjudication/{first}']").click()
    page.wait_for_url(re.compile(rf"/adjudication/{first}$"))
    expected = dict.fromkeys(dims, "A>B") | {"overall": "B>A", "polite": "tie"}
    assert _form_values(page, dims) == expected  # the stored decision, not blank and not the majority
    assert page.input_value("#reason") == "B is the honest one"
    assert page.get_attribute("#review-source", "data-source") == "decision"
    shots(page, "review-case-reopened")


def test_k3_keys_set_best_and_worst_and_enter_on_a_link_follows_the_link(
    page: Any, signed_in: Any, db: Database, shots: Any
) -> None:
    with db.session() as s:
        users = [make_user(s, name) for name in ("v1", "v2", "v3")]
        make_user(s, "boss", role="admin")
        project = make_project(s, "three", k=3, overlap=3, members=users)
        dims = dimension_keys(project)
        item = make_item(s, project, "Pick the best of three")
        for user, (best, worst) in zip(users, ((0, 2), (0, 2), (1, 0)), strict=True):
            make_judgment(s, item, user, dict.fromkeys(dims, ("preference", best, worst)))
        s.commit()
        item_id = item.id
    base = signed_in(page, "boss")
    page.goto(f"{base}/projects/three/adjudication/{item_id}")
    assert _form_values(page, dims) == dict.fromkeys(dims, "A>C")  # best A by 2-1, then worst C by 2-0
    page.keyboard.press("c")  # overall: C best, the old best A becomes the worst (one key), on to helpful
    page.keyboard.press("Shift+A")  # helpful: A worst (stays on the row) ...
    page.keyboard.press("b")  # ... and B best: B > A
    assert page.input_value("#d-overall") == "C>A" and page.input_value("#d-helpful") == "B>A"
    assert page.input_value("#d-harmless") == "A>C"
    shots(page, "review-case-k3")
    page.focus("main a[href='/projects/three/adjudication']")
    page.keyboard.press("Enter")  # the focused link does its own action; nothing is decided
    page.wait_for_url(re.compile(r"/projects/three/adjudication$"))
    with db.session(write=False) as s:
        assert s.scalar(select(Adjudication.id)) is None


def test_a_case_opens_at_its_prompt_on_a_phone_too(phone: Any, signed_in: Any, db: Database, shots: Any) -> None:
    (first, _), dims = _split_items(db)
    base = signed_in(phone, "boss")
    phone.goto(f"{base}/projects/rev/adjudication/{first}")
    assert phone.evaluate("window.scrollY") == 0  # the keyboard's row is ready, the prompt is on screen
    assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert _form_values(phone, dims) == dict.fromkeys(dims, "A>B")
    shots(phone, "review-case-phone")
