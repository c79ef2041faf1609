"""The interface in English and Chinese: catalogs, how the language is chosen, the switcher, formatting."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from app import i18n
from app.auth.deps import CSRF_HEADER
from app.db import Database
from app.i18n import catalogs
from app.models import User
from app.templating import env
from tests.conftest import csrf_from, login
from tests.factories import make_user

ZH = {"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}
EN = {"Accept-Language": "en-US,en;q=0.9"}
CJK = re.compile(r"[\u4e00-\u9fff]")


def _html_lang(html: str) -> str:
    match = re.search(r'<html lang="([^"]+)"', html)
    assert match, "no <html lang>"
    return match.group(1)


def _language_of(db: Database, username: str) -> str | None:
    with db.session(write=False) as s:
        user = s.query(User).filter_by(username=username).one()
        return user.language


def _set_language_of(db: Database, username: str, language: str | None) -> None:
    with db.session() as s:
        s.query(User).filter_by(username=username).one().language = language


# --- catalogs ---


@pytest.fixture(scope="module")
def extracted() -> object:
    return catalogs.extract()


def test_extraction_finds_template_and_python_messages(extracted: object) -> None:
    ids = {m.id for m in extracted if m.id}  # type: ignore[attr-defined]
    assert {"Log in", "Projects", "Language", "95%% interval"} <= ids  # templates
    assert "Wrong username or password." in ids  # Python
    assert len(ids) > 250


def test_every_message_has_a_chinese_translation(extracted: object) -> None:
    report = catalogs.check("zh", template=extracted)  # type: ignore[arg-type]
    assert report.untranslated == [], (
        "untranslated in app/translations/zh_Hans: run `python -m app.i18n update` and fill in the empty msgstr"
    )
    assert report.errors == []


def test_english_catalog_is_consistent(extracted: object) -> None:
    report = catalogs.check("en", template=extracted)  # type: ignore[arg-type]
    assert report.ok, report.errors


def test_catalogs_are_loaded_from_the_po_files() -> None:
    token = i18n.set_language("zh")
    try:
        assert i18n.gettext("Log in") == "登录"
        assert i18n.gettext("a message nobody wrote") == "a message nobody wrote"
    finally:
        i18n.reset_language(token)
    assert i18n.gettext("Log in") == "Log in"  # outside the request: English


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("zh-CN,zh;q=0.9", "zh"),
        ("zh-TW", "zh"),
        ("zh-Hans-CN", "zh"),
        ("zh_HK", "zh"),
        ("en-US,en;q=0.9,zh-CN;q=0.8", "en"),
        ("fr-FR, zh;q=0.5", "zh"),
        ("en;q=0.2, zh;q=0.9", "zh"),
        ("zh;q=0, en", "en"),
        ("fr, de", None),
        ("", None),
        (None, None),
        ("zh;q=abc, en;q=0.1", "en"),
    ],
)
def test_accept_language(header: str | None, expected: str | None) -> None:
    assert i18n.from_accept_language(header) == expected


def test_choice_order_user_then_cookie_then_browser() -> None:
    assert i18n.choose_language(user="en", cookie="zh", accept_language="zh") == "en"
    assert i18n.choose_language(user=None, cookie="zh", accept_language="en") == "zh"
    assert i18n.choose_language(user=None, cookie="klingon", accept_language="zh-TW") == "zh"
    assert i18n.choose_language() == "en"


@pytest.mark.parametrize(("language", "expected"), [("en", "95% interval · 50%"), ("zh", "95% 置信区间 · 50%")])
def test_percent_signs_are_escaped_in_both_languages(language: str, expected: str) -> None:
    template = env.from_string('{{ _("95%% interval") }} · {{ _("%(n)s%%", n=50) }}')
    token = i18n.set_language(language)
    try:
        assert template.render() == expected
    finally:
        i18n.reset_language(token)


# --- pages ---


def test_login_page_follows_the_browser(client: TestClient) -> None:
    zh = client.get("/login", headers=ZH)
    assert zh.status_code == 200
    assert _html_lang(zh.text) == "zh"
    assert "<h1>登录</h1>" in zh.text and ">用户名</label>" in zh.text and ">密码</label>" in zh.text
    assert "Log in" not in zh.text
    en = client.get("/login", headers=EN)
    assert _html_lang(en.text) == "en"
    assert "<h1>Log in</h1>" in en.text and not CJK.search(en.text.replace("中文", ""))


def test_wrong_password_message_in_chinese(client: TestClient, db: Database) -> None:
    with db.session() as s:
        make_user(s, "ann")
    page = client.get("/login", headers=ZH)
    r = client.post(
        "/login",
        data={"username": "ann", "password": "nope-nope-nope", "csrf_token": csrf_from(page.text)},
        headers=ZH,
    )
    assert r.status_code == 401
    assert "用户名或密码错误。" in r.text


def test_logged_in_pages_follow_the_browser_until_the_user_chooses(
    client: TestClient, db: Database, login_as: Callable[[User], str]
) -> None:
    with db.session() as s:
        user = make_user(s, "ann")
    login_as(user)
    zh = client.get("/projects", headers=ZH)
    assert _html_lang(zh.text) == "zh" and '<h1 class="grow">项目</h1>' in zh.text and "退出登录" in zh.text
    en = client.get("/projects", headers=EN)
    assert _html_lang(en.text) == "en" and "Log out" in en.text

    _set_language_of(db, "ann", "en")
    overridden = client.get("/projects", headers=ZH)
    assert _html_lang(overridden.text) == "en" and "Log out" in overridden.text and "退出登录" not in overridden.text
    _set_language_of(db, "ann", "zh")
    overridden = client.get("/projects", headers=EN)
    assert _html_lang(overridden.text) == "zh" and "退出登录" in overridden.text


def test_the_cookie_beats_the_browser(client: TestClient) -> None:
    client.cookies.set(i18n.COOKIE, "zh")
    r = client.get("/login", headers=EN)
    assert _html_lang(r.text) == "zh" and "<h1>登录</h1>" in r.text


def test_error_pages_are_translated_but_json_details_stay_english(
    client: TestClient, db: Database, login_as: Callable[[User], str]
) -> None:
    with db.session() as s:
        admin = make_user(s, "root", role="admin")
    login_as(admin)
    page = client.get("/projects/nope", headers=ZH)
    assert page.status_code == 404 and "返回首页" in page.text
    api = client.get("/api/v1/projects/nope", headers=ZH)
    assert api.status_code == 404
    assert not CJK.search(str(api.json()["detail"]))


def test_percent_in_a_page_renders_once(client: TestClient, db: Database, login_as: Callable[[User], str]) -> None:
    with db.session() as s:
        admin = make_user(s, "root", role="admin")
    login_as(admin)
    en = client.get("/projects/new", headers=EN).text
    zh = client.get("/projects/new", headers=ZH).text
    assert "Gold share of each queue (%)" in en
    assert "金标在每个队列中的占比（%）" in zh
    assert "%%" not in en and "%%" not in zh


# --- the switcher ---


def test_switcher_in_the_header_marks_the_current_language(
    client: TestClient, db: Database, login_as: Callable[[User], str]
) -> None:
    with db.session() as s:
        user = make_user(s, "ann")
    login_as(user)
    html = client.get("/projects?x=1", headers=ZH).text
    form = re.search(r'<form method="post" action="/settings/language".*?</form>', html, re.S)
    assert form, "no language switcher in the header"
    assert 'name="next" value="/projects?x=1"' in form.group(0)
    assert re.search(r'value="zh"[^>]*aria-current="true"', form.group(0))
    assert not re.search(r'value="en"[^>]*aria-current', form.group(0))


def test_logged_in_switch_needs_csrf_and_is_kept_on_the_user(
    client: TestClient, db: Database, login_as: Callable[[User], str]
) -> None:
    with db.session() as s:
        user = make_user(s, "ann")
    token = login_as(user)
    del client.headers[CSRF_HEADER]
    refused = client.post("/settings/language", data={"language": "zh", "next": "/projects"}, follow_redirects=False)
    assert refused.status_code == 403
    assert _language_of(db, "ann") is None

    r = client.post(
        "/settings/language",
        data={"language": "zh", "next": "/projects?x=1", "csrf_token": token},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/projects?x=1"
    assert _language_of(db, "ann") == "zh"
    assert client.cookies.get(i18n.COOKIE) == "zh"
    client.cookies.delete(i18n.COOKIE)  # the user's setting alone is enough, on any browser
    assert _html_lang(client.get("/projects", headers=EN).text) == "zh"


def test_anonymous_switch_needs_the_login_form_token_and_sets_a_cookie(client: TestClient) -> None:
    page = client.get("/login", headers=EN)
    assert 'action="/settings/language"' in page.text
    refused = client.post("/settings/language", data={"language": "zh"}, follow_redirects=False)
    assert refused.status_code == 403
    assert client.cookies.get(i18n.COOKIE) is None
    forged = client.post("/settings/language", data={"language": "zh", "csrf_token": "guess"}, follow_redirects=False)
    assert forged.status_code == 403

    r = client.post(
        "/settings/language",
        data={"language": "zh", "next": "/login", "csrf_token": csrf_from(page.text)},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert "HttpOnly" in r.headers["set-cookie"] or "httponly" in r.headers["set-cookie"].lower()
    assert "<h1>登录</h1>" in client.get("/login", headers=EN).text


def test_switch_refuses_unknown_languages_and_foreign_redirects(
    client: TestClient, db: Database, login_as: Callable[[User], str]
) -> None:
    with db.session() as s:
        user = make_user(s, "ann")
    login_as(user)
    bad = client.post("/settings/language", data={"language": "fr"}, follow_redirects=False)
    assert bad.status_code == 422
    assert _language_of(db, "ann") is None
    r = client.post("/settings/language", data={"language": "en", "next": "//evil.example/x"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"
    r = client.post(
        "/settings/language",
        data={"language": "en"},
        headers={"Referer": "http://testserver/projects?page=2"},
        follow_redirects=False,
    )
    assert r.headers["location"] == "/projects?page=2"


def test_login_brings_the_users_language_to_the_browser(client: TestClient, db: Database) -> None:
    with db.session() as s:
        make_user(s, "ann").language = "zh"
    csrf = login(client, "ann")
    assert client.cookies.get(i18n.COOKIE) == "zh"
    client.post("/logout", data={"csrf_token": csrf})
    assert "<h1>登录</h1>" in client.get("/login", headers=EN).text  # still Chinese after logging out


def test_htmx_switch_redirects_with_a_header(client: TestClient, db: Database, login_as: Callable[[User], str]) -> None:
    with db.session() as s:
        user = make_user(s, "ann")
    login_as(user)
    r = client.post("/settings/language", data={"language": "zh", "next": "/projects"}, headers={"HX-Request": "true"})
    assert r.status_code == 200 and r.headers["HX-Redirect"] == "/projects"
    assert _language_of(db, "ann") == "zh"
