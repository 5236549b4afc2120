"""A community manager's first minutes, in real Chromium."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import func, select

from collectors.demo import read_outbox
from otklik.collect import run_source
from otklik.models import Reply
from otklik.scoring import score_pending
from responder import send_due
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser


@pytest.fixture
def app(runtime, users):
    from web import create_app

    return create_app(runtime, {"TESTING": True})  # CSRF on, as in production


def _log_in(page: Page, base: str) -> None:
    page.goto(base + "/")
    expect(page).to_have_url(f"{base}/login?next=/")
    page.fill("input[name=username]", "agent")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Inbox")


def test_log_in_read_the_inbox_and_reply_once_despite_a_double_click(
    page: Page, live_server: str, runtime, artifacts
) -> None:
    run_source(runtime, "demo")
    score_pending(runtime)
    _log_in(page, live_server)
    rows = page.locator("tr.conversation-row")
    expect(rows).to_have_count(6)
    top = rows.first
    expect(top.locator(".badge.complaint")).to_be_visible()
    page.screenshot(path=str(artifacts / "inbox.png"), full_page=True)

    top.locator("td.text a").click()
    expect(page.locator("article.post").first).to_be_visible()
    page.fill("textarea[name=body]", "We're sorry about the delay, a refund is on its way.")
    page.locator("button.send").dblclick()
    expect(page.locator(".flash")).to_contain_text("queued")
    expect(page.locator("li.reply")).to_have_count(1)

    assert send_due(runtime) == 1
    page.reload()
    expect(page.locator("li.reply .badge")).to_have_text("sent")
    expect(page.locator("article.post.ours")).to_have_count(1)
    outbox = read_outbox(runtime.settings.var_path / "demo-outbox.jsonl")
    assert [r["text"] for r in outbox] == ["We're sorry about the delay, a refund is on its way."]
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Reply)) == 1


def test_hostile_text_stays_text_in_the_browser(page: Page, live_server: str, runtime) -> None:
    run_source(runtime, "demo")
    run_source(runtime, "demo")
    run_source(runtime, "demo")
    run_source(runtime, "demo")
    run_source(runtime, "demo")
    run_source(runtime, "demo")  # sample 030 carries <script>, 031 an <img onerror> author
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    _log_in(page, live_server)
    page.goto(live_server + "/?sort=newest")
    expect(page.get_by_text("<script>alert('x')</script>", exact=False)).to_be_visible()
    expect(page.get_by_text("<img src=x onerror=alert(1)>", exact=False)).to_be_visible()
    assert dialogs == []
