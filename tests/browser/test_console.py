"""A community manager's first minutes, in real Chromium."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import func, select

from collectors.demo import read_outbox
from otklik.store import db
from otklik.store.models import Conversation, Reply, ReplyTemplate
from tests.conftest import PASSWORD
from tests.web_support import fast_password_hashing  # noqa: F401
from workers.jobs import run_source, score_pending, send_due

pytestmark = pytest.mark.browser


@pytest.fixture
def app(runtime, users):
    from web import create_app

    return create_app(runtime, {"TESTING": True})  # CSRF on, as in production


def _log_in(page: Page, base: str, username: str = "agent", heading: str = "Inbox") -> None:
    page.goto(base + "/")
    expect(page).to_have_url(f"{base}/login?next=/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text(heading)
    page.wait_for_load_state()


def test_log_in_read_the_inbox_and_reply_once_despite_a_double_click(
    live_server: str, page: Page, runtime, artifacts
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
    page.fill(".reply-box textarea", "We're sorry about the delay, a refund is on its way.")
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


def test_filter_open_apply_a_template_reply_once_resolve_and_watch_the_sla_clock(
    live_server: str, page: Page, runtime, artifacts
) -> None:
    run_source(runtime, "demo")
    score_pending(runtime)
    with db.transaction(runtime.sessions) as session:
        session.add(
            ReplyTemplate(name="apology", language="ru", body="{author}, простите! {brand}")
        )
        session.add(ReplyTemplate(name="apology", language="en", body="Sorry, {author}!"))
    _log_in(page, live_server)
    page.select_option("select[name=language]", "ru")
    page.select_option("select[name=complaint]", "1")
    page.click("button.apply-filters")
    expect(page).to_have_url(re.compile(r"complaint=1"))
    rows = page.locator("tr.conversation-row")
    expect(rows).to_have_count(1)
    expect(rows.first.locator("td.author")).to_contain_text("andrey.petrov")
    expect(rows.first.locator(".sla")).to_contain_text("on track")
    page.screenshot(path=str(artifacts / "inbox-filtered.png"), full_page=True)

    rows.first.locator("td.text a").click()
    expect(page.locator("h1 .sla")).to_contain_text("on track")
    page.wait_for_load_state()  # the deferred script handles the template menu
    options = page.locator(".template-select option")
    expect(options.nth(1)).to_have_text("apology (ru)")  # the conversation's language first
    page.select_option(".template-select", index=1)
    textarea = page.locator(".reply-box textarea")
    expect(textarea).to_have_value("andrey.petrov, простите! Ladoga Coffee")
    expect(page.locator(".counter .count")).to_have_text("38")
    page.locator("button.send").dblclick()
    expect(page.locator("li.reply")).to_have_count(1)
    expect(page.locator("li.reply .reply-state")).to_have_text("queued")

    assert send_due(runtime) == 1
    expect(page.locator("li.reply .reply-state")).to_have_text("sent", timeout=10_000)  # polled
    page.reload()
    expect(page.locator("h1 .sla")).to_contain_text("on track")  # resolution clock runs
    expect(page.locator(".meta")).to_contain_text("first response: met")
    page.click("button.status-resolved-button")
    expect(page.locator("h1 .status")).to_have_text("resolved")
    expect(page.locator("h1 .sla")).to_have_text("met")
    page.screenshot(path=str(artifacts / "conversation-resolved.png"), full_page=True)

    outbox = read_outbox(runtime.settings.var_path / "demo-outbox.jsonl")
    assert [r["text"] for r in outbox] == ["andrey.petrov, простите! Ladoga Coffee"]
    page.goto(live_server + "/?status=resolved")
    expect(page.locator("tr.conversation-row")).to_have_count(1)


def test_the_length_limit_is_shown_live_and_blocks_sending(
    live_server: str, page: Page, runtime
) -> None:
    run_source(runtime, "demo")
    _log_in(page, live_server)
    page.locator("tr.conversation-row td.text a").first.click()
    page.fill(".reply-box textarea", "x" * 281)
    expect(page.locator(".counter .count")).to_have_text("281")
    expect(page.locator(".reply-box")).to_have_class(re.compile("over-limit"))
    expect(page.locator("button.send")).to_be_disabled()
    page.fill(".reply-box textarea", "x" * 280)
    expect(page.locator("button.send")).to_be_enabled()


def test_keyboard_shortcuts_move_assign_and_resolve(live_server: str, page: Page, runtime) -> None:
    run_source(runtime, "demo")
    score_pending(runtime)
    _log_in(page, live_server)
    rows = page.locator("tr.conversation-row")
    expect(rows.nth(0)).to_have_class(re.compile("selected"))
    page.keyboard.press("j")
    expect(rows.nth(1)).to_have_class(re.compile("selected"))
    second_id = rows.nth(1).get_attribute("data-id")
    page.keyboard.press("o")
    expect(page).to_have_url(re.compile(rf"/conversations/{second_id}$"))
    page.wait_for_load_state()  # keys reach the deferred script only once it has run
    page.keyboard.press("a")
    expect(page.locator(".assign-form .assignee")).to_have_text("agent")
    page.wait_for_load_state()
    page.keyboard.press("e")
    expect(page.locator("h1 .status")).to_have_text("resolved")
    page.wait_for_load_state()
    page.keyboard.press("n")
    expect(page).not_to_have_url(re.compile(rf"/conversations/{second_id}$"))
    page.wait_for_load_state()
    page.keyboard.press("r")
    expect(page.locator(".reply-box textarea")).to_be_focused()
    with runtime.sessions() as session:
        resolved = session.get(Conversation, int(second_id))
        assert resolved.status == "resolved" and resolved.assignee.username == "agent"


def test_two_agents_see_each_other_viewing_and_typing(
    browser: Browser, live_server: str, runtime
) -> None:
    run_source(runtime, "demo")
    with runtime.sessions() as session:
        conversation_id = session.scalar(select(Conversation.id).order_by(Conversation.id))
    agent = browser.new_context().new_page()
    lead = browser.new_context().new_page()
    _log_in(agent, live_server, "agent")
    _log_in(lead, live_server, "lead")
    agent.goto(f"{live_server}/conversations/{conversation_id}")
    lead.goto(f"{live_server}/conversations/{conversation_id}")
    expect(agent.locator(".presence")).to_have_text("lead is viewing", timeout=10_000)
    lead.locator(".reply-box textarea").type("Hello")
    expect(agent.locator(".presence")).to_have_text("lead is typing…", timeout=10_000)
    expect(lead.locator(".presence")).to_contain_text("agent is viewing")
    agent.context.close()
    lead.context.close()


def test_hostile_text_stays_text_in_the_browser(live_server: str, page: Page, runtime) -> None:
    for _ in range(6):
        run_source(runtime, "demo")  # sample 030 carries <script>, 031 an <img onerror> author
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    _log_in(page, live_server)
    page.goto(live_server + "/?sort=newest")
    expect(page.get_by_text("<script>alert('x')</script>", exact=False)).to_be_visible()
    expect(page.get_by_text("<img src=x onerror=alert(1)>", exact=False)).to_be_visible()
    page.get_by_text("<img src=x onerror=alert(1)>", exact=False).first.click()
    row = page.locator("tr.conversation-row", has_text="<img src=x onerror=alert(1)>")
    row.locator("td.text a").click()
    expect(page.locator("article.post .author")).to_have_text("<img src=x onerror=alert(1)>")
    assert dialogs == []


def test_the_console_in_russian(live_server: str, page: Page, runtime) -> None:
    run_source(runtime, "demo")
    _log_in(page, live_server)
    page.goto(live_server + "/account/")
    page.select_option("select[name=locale]", "ru")
    page.click(".locale-form button")
    expect(page.locator(".flash")).to_have_text("Язык сохранён.")
    page.goto(live_server + "/")
    expect(page.locator("h1")).to_have_text("Входящие")
    expect(page.locator("a.view").nth(1)).to_have_text("Мои открытые")
