"""Presentation helpers shared by the console's pages: SLA clocks, times, platform limits, ids."""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import Flask, abort, current_app
from flask_babel import gettext as _
from werkzeug.routing import IntegerConverter, Map

from otklik.domain.events import EventKind
from otklik.domain.sla import SlaClock, cycle_from_events, sla_clock
from otklik.store.inbox_query import MAX_ID, parse_id
from otklik.store.models import CaseEvent, Conversation, utcnow
from otklik.store.projections import cycle_of


class IdConverter(IntegerConverter):
    """``<int:...>`` in the console's routes: ASCII digits up to MAX_ID, anything else a 404.

    Werkzeug's own converter matches ``\\d`` (any Unicode digit, '١٢' reads as 12) and has no
    upper bound, so an id above 2^63 reached the database and failed there with a 500.
    """

    regex = r"[0-9]{1,19}"  # 19 digits: len(str(MAX_ID))

    def __init__(
        self,
        map: Map,
        fixed_digits: int = 0,
        min: int | None = None,
        max: int | None = None,
        signed: bool = False,
    ) -> None:
        super().__init__(map, fixed_digits, min, MAX_ID if max is None else max, signed)


def register_converters(app: Flask) -> None:
    """Bound every ``<int:...>`` route of ``app``; call it before registering the blueprints."""
    bound = [rule.rule for rule in app.url_map.iter_rules() if "<int" in rule.rule]
    if bound:
        raise RuntimeError(f"register_converters after the routes were added: {bound[0]}")
    app.url_map.converters["int"] = IdConverter


def form_id(raw: str | None, what: str) -> int:
    """A form field holding a row id, or 400: '²', '١', 'x' and 2^64 are not ids."""
    value = parse_id(raw or "")
    if value is None:
        abort(400, f"{what} is not an id")
    return value


def reply_limit(platform: str) -> int | None:
    """The platform's reply length limit, a fact of its replier (``otklik.connectors``)."""
    limit: int | None = current_app.extensions["otklik"].registry.reply_limit(platform)
    return limit


def can_reply(platform: str) -> bool:
    """True when Otklik can answer on ``platform``."""
    able: bool = current_app.extensions["otklik"].registry.can_reply(platform)
    return able


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
    cycle = cycle_from_events((e.kind, e.at, e.data or {}) for e in events)  # (at, id) order
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
    """An event kind of the conversation's journal in the user's language."""
    labels: dict[str, str] = {
        EventKind.OPENED: _("opened"),
        EventKind.CUSTOMER_POSTED: _("customer posted"),
        EventKind.ASSIGNED: _("assigned"),
        EventKind.REPLY_QUEUED: _("reply queued"),
        EventKind.REPLIED: _("replied on the platform"),
        EventKind.REPLY_FAILED: _("reply failed"),
        EventKind.REPLY_RETRIED: _("reply retried"),
        EventKind.STATUS_CHANGED: _("status changed"),
        EventKind.REOPENED: _("reopened"),
        EventKind.ESCALATED: _("escalated"),
        EventKind.MERGED: _("merged"),
        EventKind.NOTE_ADDED: _("note added"),
        EventKind.TAGGED: _("tagged"),
        EventKind.UNTAGGED: _("tag removed"),
        EventKind.SCORE_CORRECTED: _("score corrected"),
    }
    return labels.get(kind, kind)


def register_filters(app: Flask) -> None:
    """Install the Jinja filters and globals the templates use."""
    app.jinja_env.filters.update(
        ago=ago, duration=duration, sla_state=state_label, event_label=event_label
    )
    from web.auth import can

    app.jinja_env.globals.update(reply_limit=reply_limit, can_reply=can_reply, can=can)
