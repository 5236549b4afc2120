"""Presentation helpers shared by the console's pages: SLA clocks, times, platform limits."""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import Flask, current_app
from flask_babel import gettext as _

from otklik.inbox_index import cycle_of
from otklik.models import CaseEvent, Conversation, utcnow
from otklik.sla import SlaClock, cycle_from_events, sla_clock

# Longest reply each platform accepts (characters); None: no practical limit.
REPLY_LIMITS: dict[str, int | None] = {
    "twitter": 280,
    "vk": 4096,
    "reddit": 10000,
    "discourse": 32000,
    "rss": None,
    "demo": 280,
}


def reply_limit(platform: str) -> int | None:
    """The platform's reply length limit."""
    return REPLY_LIMITS.get(platform)


def clock_for_row(conversation: Conversation, now: datetime) -> SlaClock | None:
    """The SLA clock from the conversation's cached cycle columns (inbox rows)."""
    policy = current_app.extensions["otklik.sla_policy"]
    if policy is None:
        return None
    return sla_clock(
        cycle_of(conversation), policy, conversation.platform, conversation.priority, now
    )


def clock_from_events(
    conversation: Conversation, events: list[CaseEvent], now: datetime
) -> SlaClock | None:
    """The SLA clock recomputed from the event log (the conversation page)."""
    policy = current_app.extensions["otklik.sla_policy"]
    if policy is None or not any(e.kind == "opened" for e in events):
        return None
    cycle = cycle_from_events((e.kind, e.at, e.data or {}) for e in events)
    return sla_clock(cycle, policy, conversation.platform, conversation.priority, now)


def duration(value: timedelta | None) -> str:
    """'45 min', '3 h 05 min', '2 d 4 h'; negative values read 'overdue ...'."""
    if value is None:
        return ""
    seconds = int(value.total_seconds())
    text = _short(abs(seconds))
    return _("overdue %(time)s", time=text) if seconds < 0 else text


def _short(seconds: int) -> str:
    if seconds < 3600:
        return _("%(n)d min", n=seconds // 60)
    if seconds < 86400:
        return _("%(h)d h %(m)02d min", h=seconds // 3600, m=seconds % 3600 // 60)
    return _("%(d)d d %(h)d h", d=seconds // 86400, h=seconds % 86400 // 3600)


def ago(value: datetime | None) -> str:
    """How long ago ``value`` was."""
    if value is None:
        return ""
    return _short(max(0, int((utcnow() - value).total_seconds())))


def state_label(state: str) -> str:
    """The SLA state in the user's language."""
    labels = {
        "ok": _("on track"),
        "at_risk": _("at risk"),
        "breached": _("breached"),
        "met": _("met"),
    }
    return labels.get(state, state)


def event_label(kind: str) -> str:
    """An event kind of the conversation log in the user's language."""
    labels = {
        "opened": _("opened"),
        "customer_posted": _("customer posted"),
        "assigned": _("assigned"),
        "reply_queued": _("reply queued"),
        "replied": _("replied on the platform"),
        "reply_failed": _("reply failed"),
        "reply_retried": _("reply retried"),
        "status_changed": _("status changed"),
        "reopened": _("reopened"),
        "escalated": _("escalated"),
        "merged": _("merged"),
        "note_added": _("note added"),
        "tagged": _("tagged"),
        "untagged": _("tag removed"),
        "score_corrected": _("score corrected"),
    }
    return labels.get(kind, kind)


def register_filters(app: Flask) -> None:
    """Install the Jinja filters and globals the templates use."""
    app.jinja_env.filters.update(
        ago=ago, duration=duration, sla_state=state_label, event_label=event_label
    )
    from web.auth import can

    app.jinja_env.globals.update(reply_limit=reply_limit, can=can)
