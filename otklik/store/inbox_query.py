"""The inbox query: filters, built-in views, sort orders and keyset pagination.

Every filter and sort key is a column of ``conversations`` (see ``otklik.store.projections``), and
pages are cut with a keyset cursor (the sort values of the last row), never OFFSET, so a deep
page costs what the first one does.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, and_, false, func, or_, select
from sqlalchemy.orm import Session, selectinload

from otklik.store.models import Conversation, ConversationTag, Mention, Status

PAGE_SIZE = 50
MAX_ID = 2**63 - 1  # the largest id a BIGINT (SQLite INTEGER, PostgreSQL bigint) holds
MAX_CURSOR = 512  # characters; our cursors are under 100
OPEN_STATUSES = (Status.NEW, Status.OPEN, Status.PENDING)
STATUS_CHOICES = ("open", "new", "pending", "resolved", "all")  # "open": anything not resolved
SENTIMENTS = ("negative", "neutral", "positive")
# Days a filter may name: the day before and the day after must exist (date_to filters before
# the next midnight; a day in a time zone spills into its neighbours).
FIRST_DAY, LAST_DAY = date.min + timedelta(days=1), date.max - timedelta(days=1)
BANDS = {"high": (60, None), "normal": (30, 59), "low": (None, 29)}

# (column, descending?) per sort; the id keeps the order total, so the keyset is exact.
SORTS: dict[str, tuple[tuple[Any, bool], ...]] = {
    "priority": (
        (Conversation.priority, True),
        (Conversation.last_customer_at, False),  # equal priority: the longest waiting first
        (Conversation.id, False),
    ),
    "sla": ((Conversation.sla_due_at, False), (Conversation.id, False)),
    "newest": ((Conversation.last_customer_at, True), (Conversation.id, True)),
    "waiting": ((Conversation.last_customer_at, False), (Conversation.id, False)),
}


@dataclass(frozen=True, slots=True)
class InboxFilter:
    """What the inbox shows; every field None means "any"."""

    status: str = "open"
    platform: str | None = None
    brand_id: int | None = None
    assignee: str | None = None  # "me", "none" or a user id
    sentiment: str | None = None
    complaint: bool | None = None
    question: bool | None = None
    language: str | None = None
    band: str | None = None
    date_from: date | None = None  # opened on or after (UTC day)
    date_to: date | None = None  # opened on or before (UTC day)
    tag: str | None = None
    breaching: bool = False  # the SLA clock is at risk or breached
    sort: str = "priority"


VIEWS: dict[str, InboxFilter] = {
    "mine": InboxFilter(assignee="me"),
    "unassigned-complaints": InboxFilter(assignee="none", complaint=True),
    "breaching": InboxFilter(breaching=True, sort="sla"),
}


class BadFilter(ValueError):
    """A filter value of the right form that no row can match: an id or a day out of range."""


def parse_id(raw: str) -> int | None:
    """``raw`` as a row id: ASCII digits up to MAX_ID, else None.

    ``str.isdigit`` is not enough: it accepts '²' and '١', which ``int`` then refuses or reads.
    """
    digits = raw.lstrip("0") or "0"
    if not (raw.isascii() and raw.isdigit()) or len(digits) > len(str(MAX_ID)):
        return None
    value = int(digits)
    return value if value <= MAX_ID else None


def parse_filter(args: Mapping[str, str]) -> InboxFilter:
    """An InboxFilter from query-string arguments.

    Values that make no sense are ignored (an old bookmark still opens the inbox); an id or a day
    of the right form but beyond what the database holds raises BadFilter.
    """
    base = VIEWS.get(args.get("view", ""), InboxFilter())
    found: dict[str, Any] = {}
    for name, convert in _CONVERTERS.items():
        raw = (args.get(name) or "").strip()
        if raw:
            value = convert(raw)
            if value is not None:
                found[name] = value
    return replace(base, **found)


def _choice(options: tuple[str, ...] | Mapping[str, Any]) -> Callable[[str], str | None]:
    return lambda raw: raw if raw in options else None


def _int(raw: str) -> int | None:
    value = parse_id(raw)
    if value is None and raw.isascii() and raw.isdigit():
        raise BadFilter(f"{raw[:30]} is not an id")
    return value


def _text(limit: int) -> Callable[[str], str | None]:
    """Free text cut to ``limit``; control characters (NUL breaks PostgreSQL) match nothing."""
    return lambda raw: raw[:limit] if raw.isprintable() else None


def _flag(raw: str) -> bool | None:
    return {"1": True, "yes": True, "0": False, "no": False}.get(raw)


def _date(raw: str) -> date | None:
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        return None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise BadFilter(f"{day} is outside {FIRST_DAY} to {LAST_DAY}")
    return day


def _assignee(raw: str) -> str | None:
    if raw in ("me", "none"):
        return raw
    value = _int(raw)
    return None if value is None else str(value)


_CONVERTERS = {
    "status": _choice(STATUS_CHOICES),
    "platform": _text(32),
    "brand_id": _int,
    "assignee": _assignee,
    "sentiment": _choice(SENTIMENTS),
    "complaint": _flag,
    "question": _flag,
    "language": _text(8),
    "band": _choice(BANDS),
    "date_from": _date,
    "date_to": _date,
    "tag": _text(40),
    "breaching": _flag,
    "sort": _choice(SORTS),
}


def query_args(inbox_filter: InboxFilter) -> dict[str, str]:
    """The query-string arguments that reproduce ``inbox_filter`` (defaults left out)."""
    default = InboxFilter()
    args: dict[str, str] = {}
    for fld in fields(InboxFilter):
        value = getattr(inbox_filter, fld.name)
        if value == getattr(default, fld.name):
            continue
        args[fld.name] = ("1" if value else "0") if isinstance(value, bool) else str(value)
    return args


def conditions(f: InboxFilter, user_id: int, now: datetime) -> list[ColumnElement[bool]]:
    """The WHERE clauses of ``f`` for the user ``user_id``."""
    c = Conversation
    where: list[ColumnElement[bool]] = []
    if f.status == "open":
        where.append(c.status.in_(OPEN_STATUSES))
    elif f.status != "all":
        where.append(c.status == f.status)
    simple = {c.platform: f.platform, c.brand_id: f.brand_id, c.sentiment: f.sentiment}
    simple |= {c.has_complaint: f.complaint, c.has_question: f.question, c.language: f.language}
    where.extend(column == value for column, value in simple.items() if value is not None)
    if f.assignee == "me":
        where.append(c.assignee_id == user_id)
    elif f.assignee == "none":
        where.append(c.assignee_id.is_(None))
    elif f.assignee is not None:
        where.append(c.assignee_id == int(f.assignee))
    if f.band is not None:
        low, high = BANDS[f.band]
        where.extend(x for x in (_ge(c.priority, low), _le(c.priority, high)) if x is not None)
    if f.date_from is not None:
        where.append(c.opened_at >= datetime.combine(f.date_from, time(), tzinfo=UTC))
    if f.date_to is not None:
        end = datetime.combine(f.date_to + timedelta(days=1), time(), tzinfo=UTC)
        where.append(c.opened_at < end)
    if f.tag:
        tagged = select(ConversationTag.conversation_id).where(ConversationTag.tag == f.tag)
        where.append(c.id.in_(tagged))
    if f.breaching:
        where.append(c.sla_risk_at <= now)
    if f.sort == "sla":
        where.append(c.sla_due_at.is_not(None))
    return where


def _ge(column: Any, value: int | None) -> ColumnElement[bool] | None:
    return None if value is None else column >= value


def _le(column: Any, value: int | None) -> ColumnElement[bool] | None:
    return None if value is None else column <= value


@dataclass(frozen=True, slots=True)
class InboxPage:
    """One page of conversations and the cursor of the next page (None on the last)."""

    conversations: list[Conversation]
    next_cursor: str | None


def fetch_page(
    session: Session,
    f: InboxFilter,
    user_id: int,
    now: datetime,
    cursor: str | None = None,
    size: int = PAGE_SIZE,
) -> InboxPage:
    """The page of conversations after ``cursor`` in ``f.sort`` order."""
    keys = SORTS[f.sort]
    where = conditions(f, user_id, now)
    if cursor:
        where.append(_after(keys, decode_cursor(cursor, keys)))
    order = [column.desc() if desc else column.asc() for column, desc in keys]
    rows = session.scalars(
        select(Conversation)
        .where(*where)
        .order_by(*order)
        .limit(size + 1)
        .options(selectinload(Conversation.assignee))
    ).all()
    more = len(rows) > size
    rows = list(rows[:size])
    next_cursor = encode_cursor([getattr(rows[-1], col.key) for col, _ in keys]) if more else None
    return InboxPage(rows, next_cursor)


def _after(keys: tuple[tuple[Any, bool], ...], values: list[Any]) -> ColumnElement[bool]:
    """Rows strictly after ``values`` in the order of ``keys``: the keyset condition."""
    if any(v is None for v in values):
        return false()
    alternatives = []
    for i, (column, desc) in enumerate(keys):
        equal = [keys[j][0] == values[j] for j in range(i)]
        beyond = column < values[i] if desc else column > values[i]
        alternatives.append(and_(*equal, beyond))
    return or_(*alternatives)


def encode_cursor(values: list[Any]) -> str:
    """An opaque, URL-safe cursor for the sort values of a row."""
    plain = [v.isoformat() if isinstance(v, datetime) else v for v in values]
    return base64.urlsafe_b64encode(json.dumps(plain).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, keys: tuple[tuple[Any, bool], ...]) -> list[Any]:
    """The sort values in ``cursor``, typed for ``keys``; ValueError if it is not one of ours.

    A cursor comes from the URL, so anything may arrive: deep nesting, ``Infinity`` / ``NaN``,
    numbers or times the database cannot hold. Each is refused here with a ValueError.
    """
    if len(cursor) > MAX_CURSOR:
        raise ValueError("bad cursor: too long")
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()), parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(f"bad cursor: {type(exc).__name__}") from None
    if not isinstance(values, list) or len(values) != len(keys):
        raise ValueError("bad cursor: wrong shape")
    return [_typed(column, value) for (column, _desc), value in zip(keys, values, strict=True)]


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a sort value")


def _typed(column: Any, value: Any) -> Any:
    """One cursor value as ``column``'s Python type, within what the database holds."""
    python_type = getattr(column.type, "impl", column.type).python_type
    if value is None:
        return None
    if python_type is datetime and isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
            if moment.tzinfo is None:
                raise ValueError("naive time")
            return moment.astimezone(UTC)
        except (ValueError, OverflowError) as exc:
            raise ValueError(f"bad cursor: {exc} for {column.key}") from None
    if python_type is int and type(value) is int and -MAX_ID - 1 <= value <= MAX_ID:
        return value
    if python_type is float and type(value) in (int, float) and math.isfinite(value):
        return float(value)
    raise ValueError(f"bad cursor: {str(value)[:40]!r} for {column.key}")


def tags_for(session: Session, conversation_ids: list[int]) -> dict[int, list[str]]:
    """The tags of each listed conversation."""
    found: dict[int, list[str]] = {i: [] for i in conversation_ids}
    if conversation_ids:
        rows = session.execute(
            select(ConversationTag.conversation_id, ConversationTag.tag)
            .where(ConversationTag.conversation_id.in_(conversation_ids))
            .order_by(ConversationTag.tag)
        )
        for conversation_id, tag in rows:
            found[conversation_id].append(tag)
    return found


def latest_posts(session: Session, conversation_ids: list[int]) -> dict[int, tuple[Mention, int]]:
    """The newest customer post of each conversation and how many customer posts it has.

    Two bounded queries per page, however long a thread grows (a viral thread can hold
    thousands of posts; the inbox shows one).
    """
    if not conversation_ids:
        return {}
    customer = Mention.is_ours.is_(False), Mention.conversation_id.in_(conversation_ids)
    ranked = (
        select(
            Mention.id,
            func.row_number()
            .over(
                partition_by=Mention.conversation_id,
                order_by=(Mention.created_at.desc(), Mention.id.desc()),
            )
            .label("rank"),
        )
        .where(*customer)
        .subquery()
    )
    newest = session.scalars(
        select(Mention)
        .where(Mention.id.in_(select(ranked.c.id).where(ranked.c.rank == 1)))
        .options(selectinload(Mention.score), selectinload(Mention.author))
    )
    counts = dict(
        session.execute(
            select(Mention.conversation_id, func.count())
            .where(*customer)
            .group_by(Mention.conversation_id)
        ).all()
    )
    # Every row matched ``conversation_id IN (...)``, so none has a null conversation.
    return {cast(int, m.conversation_id): (m, counts.get(m.conversation_id, 1)) for m in newest}
