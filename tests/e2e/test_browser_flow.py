"""The whole loop in a real browser: an admin sets up a project and generates candidates on the real vLLM server,
three annotators judge with the keyboard only, the admin reads κ, adjudicates, freezes a snapshot and
downloads it. Screenshots of every main page go to test-artifacts/screenshots/.

The annotation page is also measured in the browser (time from submit to the next item, layout shift) and checked
at 1280 px and 390 px widths; the figures go to test-artifacts/annotation-metrics.json (no timing assertions).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from app.config import ROOT
from app.db import Database
from tests.factories import PASSWORD, make_user
from tests.support.vllm import MODEL_NAME

PROMPTS = [
    "Explain what a hash function is.",
    "Write a haiku about autumn.",
    "How do I boil an egg?",
    "用一句话解释什么是机器学习。",
    "Give three tips for a job interview.",
    "What is the capital of France?",
]
ANNOTATORS = ("ann-one", "ann-two", "ann-three")

# Layout shifts (the CLS entries) and the time from pressing Enter to the next item being on screen.
OBSERVE = """
window.__shifts = 0;
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) { if (!e.hadRecentInput) window.__shifts += e.value; }
}).observe({type: "layout-shift", buffered: true});
"""


def _login(page: Any, base: str, username: str, password: str) -> None:
    page.goto(f"{base}/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"^(?!.*/login).*$"))


def _admin_sets_up(page: Any, base: str, vllm_base_url: str, tmp_path: Path, shots: Any) -> str:
    page.goto(f"{base}/projects/new")
    page.fill("#name", "Browser flow")
    page.fill("#slug", "flow")
    page.fill("#k", "2")
    page.fill("#overlap", "3")
    page.fill("#gold_share", "0")
    shots(page, "project-form")
    page.click("form.card button[type=submit]")
    page.wait_for_url(f"{base}/projects/flow")

    data = tmp_path / "prompts.jsonl"
    data.write_text("".join(json.dumps({"prompt": p}, ensure_ascii=False) + "\n" for p in PROMPTS), encoding="utf-8")
    page.set_input_files("input[name=file]", str(data))
    page.click("form[action='/projects/flow/import'] button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert "6" in page.inner_text("body")

    page.goto(f"{base}/admin/users")
    for name in ANNOTATORS:
        page.fill("#nu", name)
        page.fill("#np", PASSWORD)
        page.select_option("#nr", "annotator")
        page.click("form:has(#nu) button[type=submit]")
        page.wait_for_load_state("networkidle")
    shots(page, "users")
    page.goto(f"{base}/projects/flow")
    page.fill("#member-names", "\n".join(ANNOTATORS))  # several at once
    page.click("#members button[type=submit]:text('Add members')")
    page.wait_for_selector("#members .flash.ok")
    for name in ANNOTATORS:
        assert name in page.inner_text("body")
    shots(page, "project")

    page.goto(f"{base}/projects/flow/generation")
    page.fill("#base_urls", vllm_base_url)
    page.fill("#model", MODEL_NAME)
    page.select_option("#mode", "chat")
    page.fill("#max_tokens", "24")
    page.click("form[action='/projects/flow/generation/settings'] button[type=submit]")
    page.wait_for_load_state("networkidle")
    page.click("form[action='/projects/flow/generation/start'] button[type=submit]")
    page.wait_for_selector("#jobs .badge.good", timeout=180_000)  # the page polls until the job is done
    assert "6 / 6" in page.inner_text("#jobs")
    shots(page, "generation")
    return "flow"


def _judge_with_keyboard(page: Any, base: str, slug: str, *, choice: str, flag_first: bool, shots: Any) -> list[float]:
    """Judge every item offered with keys only; returns ms from Enter to the next item on screen."""
    page.add_init_script(OBSERVE)
    page.goto(f"{base}/projects/{slug}/annotate")
    page.wait_for_selector("#annotate-panel[data-item]")
    timings: list[float] = []
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url) if frame == page.main_frame else None)
    first = True
    while True:
        panel = page.locator("#annotate-panel")
        item = panel.get_attribute("data-item")
        if item is None:
            break
        page.keyboard.press(choice)  # overall: A or B
        page.keyboard.press("=")  # the same on every dimension
        if flag_first and first:
            page.keyboard.press("p")  # "problematic prompt": sends the item to adjudication
        if first:
            shots(page, f"annotate-{choice}")
        first = False
        page.evaluate("window.__t0 = performance.now()")
        navigations.clear()
        page.keyboard.press("Enter")
        try:
            page.wait_for_function(
                "prev => { const p = document.getElementById('annotate-panel');"
                " return p && p.getAttribute('data-item') !== prev && !p.querySelector('.card.empty[hx-trigger]'); }",
                arg=item,
            )
        except Exception:
            shots(page, f"stuck-{choice}-{len(timings)}")
            raise
        assert not navigations, f"the keyboard submit left the page (a full navigation to {navigations})"
        timings.append(page.evaluate("performance.now() - window.__t0"))
    assert "Nothing left for you to judge" in page.inner_text("#annotate-panel")
    return timings


def test_the_whole_loop_in_chromium(
    playwright_browser: Any, live_url: str, vllm_base_url: str, db: Database, tmp_path: Path, shots: Any
) -> None:
    with db.session() as s:
        make_user(s, "boss", role="admin")
    admin_ctx = playwright_browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    admin = admin_ctx.new_page()
    _login(admin, live_url, "boss", PASSWORD)
    slug = _admin_sets_up(admin, live_url, vllm_base_url, tmp_path, shots)

    metrics: dict[str, Any] = {}
    for name, choice in zip(ANNOTATORS, ("a", "a", "b"), strict=True):
        ctx = playwright_browser.new_context(viewport={"width": 1280, "height": 900})
        page = ctx.new_page()
        _login(page, live_url, name, PASSWORD)
        timings = _judge_with_keyboard(page, live_url, slug, choice=choice, flag_first=name == "ann-three", shots=shots)
        assert len(timings) == len(PROMPTS)
        metrics[name] = {
            "submit_to_next_ms": [round(t, 1) for t in timings],
            "layout_shift": page.evaluate("window.__shifts"),
        }
        assert metrics[name]["layout_shift"] < 0.1, "the annotation page must not jump around"
        ctx.close()

    # Agreement: three judgments on every item, κ on the page.
    admin.goto(f"{live_url}/projects/{slug}/agreement")
    admin.wait_for_selector("table.agreement")
    row = admin.locator("table.agreement tbody tr").first
    kappa = row.locator("td").nth(1).inner_text()
    assert re.fullmatch(r"-?\d\.\d{3}", kappa.strip()), f"no Fleiss' κ shown: {kappa!r}"
    shots(admin, "agreement")

    # Adjudication: the flagged item is in the queue; decide it.
    admin.goto(f"{live_url}/projects/{slug}/adjudication")
    shots(admin, "adjudication-queue")
    admin.click("table a[href*='/adjudication/']")
    admin.wait_for_selector("form[action*='/adjudication/'] select")
    for select in admin.locator("form[action*='/adjudication/'] select").all():
        select.select_option(index=1)
    admin.fill("form[action*='/adjudication/'] #reason", "A answers; B rambles.")
    shots(admin, "adjudication-case")
    admin.click("form[action*='/adjudication/'] button[type=submit]")
    # htmx posts the decision and then navigates (HX-Redirect): wait for that page, or it would abort the next goto.
    admin.wait_for_url(re.compile(r".*[?&]decided=\d+"))

    # Export: freeze a snapshot (the worker writes it), then download it.
    admin.goto(f"{live_url}/projects/{slug}/export")
    admin.uncheck("input[name=drop_problematic]")
    admin.wait_for_function("() => document.querySelector('#preview input[name=drop_problematic]') === null")
    admin.fill("#preview input[name=name]", "from the browser")
    admin.click("#preview button.primary")
    admin.wait_for_selector("#snapshot-list .badge.good", timeout=60_000)
    shots(admin, "export")
    with admin.expect_download() as download_info:
        admin.click("#snapshot-list a[download]")
    path = download_info.value.path()
    rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]
    assert rows, "the snapshot has pairs"
    assert all({"prompt", "chosen", "rejected", "reason", "meta"} <= set(r) for r in rows)
    assert any(r["meta"]["adjudicated"] for r in rows), "the decision reached the export"
    assert all(r["chosen"] != r["rejected"] for r in rows)
    admin.click("#snapshot-list a:has-text('Data card')")
    admin.wait_for_selector(".md h2")
    shots(admin, "snapshot")

    out = ROOT / "test-artifacts" / "annotation-metrics.json"
    out.write_text(json.dumps(metrics, indent=2))
    admin_ctx.close()


def test_annotation_page_at_phone_and_desktop_widths(
    playwright_browser: Any, live_url: str, db: Database, shots: Any
) -> None:
    from tests.factories import make_item, make_project

    long_line = "x" * 600
    with db.session() as s:
        user = make_user(s, "narrow")
        project = make_project(s, "widths", k=2, overlap=1, members=[user])
        make_item(
            s,
            project,
            "A prompt with a very long unbroken token: " + long_line,
            candidates=["混合文字 mixed scripts " + long_line, "## Heading\n\n" + "A long answer. " * 200],
        )
    # 1280 px starts in English and switches to Chinese; the user keeps that setting, so 390 px starts in Chinese
    # and switches back.
    for width, height, first, other in ((1280, 900, "en", "zh"), (390, 844, "zh", "en")):
        ctx = playwright_browser.new_context(viewport={"width": width, "height": height})
        page = ctx.new_page()
        _login(page, live_url, "narrow", PASSWORD)
        page.goto(f"{live_url}/projects/widths/annotate")
        for language in (first, other):
            if language != first:
                page.click(f"form.lang-switch button[value={language}]")
            page.wait_for_selector(f"html[lang={language}] #annotate-panel[data-item]")
            assert ("总体" if language == "zh" else "Overall") in page.inner_text("#annotate-panel")
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{width}px, {language}: the page scrolls sideways by {overflow}px"
            shots(page, f"annotate-{width}px-{language}")
        ctx.close()


def test_server_unreachable_while_submitting(playwright_browser: Any, live_url: str, db: Database, shots: Any) -> None:
    """The network drops on submit: a toast says so, the answers stay on the page, and the next try goes through."""
    from tests.factories import make_item, make_project

    with db.session() as s:
        user = make_user(s, "offline")
        project = make_project(s, "offline", k=2, overlap=1, members=[user])
        for i in range(2):
            make_item(s, project, f"Prompt {i}", candidates=[f"First answer {i}", f"Second, different answer {i}"])
    ctx = playwright_browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    _login(page, live_url, "offline", PASSWORD)
    page.goto(f"{live_url}/projects/offline/annotate")
    page.wait_for_selector("#annotate-panel[data-item]")
    item = page.get_attribute("#annotate-panel", "data-item")
    page.keyboard.press("b")
    page.keyboard.press("=")

    page.route("**/annotate/*", lambda route: route.abort("connectionrefused"))
    with page.expect_event("requestfailed"):
        page.keyboard.press("Enter")
    toast = page.wait_for_selector("#toasts .toast-error")
    assert "cannot be reached" in toast.inner_text()
    shots(page, "annotate-offline")
    assert page.get_attribute("#annotate-panel", "data-item") == item, "the item stays on screen"
    assert page.locator("#judge-form input[name=overall]:checked").get_attribute("value") == "B"
    assert page.locator("#judge-form input[type=radio]:checked").count() == 6, "every answer is still picked"

    page.unroute("**/annotate/*")
    page.wait_for_selector("#submit-btn:not([disabled])")
    page.keyboard.press("Enter")
    page.wait_for_function(
        "prev => { const p = document.getElementById('annotate-panel'); return p && p.dataset.item !== prev; }",
        arg=item,
    )
    with db.session(write=False) as s:
        from sqlalchemy import func, select

        from app.models import Judgment

        assert s.scalar(select(func.count()).select_from(Judgment)) == 1, "stored once, after the network came back"
    ctx.close()
