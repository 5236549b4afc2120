"""The conversation columns the inbox filters and sorts on, kept in step explicitly.

The inbox must stay fast with a million mentions, so it filters and sorts on columns of
``conversations`` instead of joining mentions and scores: ``sla_due_at`` / ``sla_risk_at``
(the next SLA due time and when it turns at risk), ``cycle_started_at`` /
``cycle_responded_at`` (the current SLA cycle), ``sentiment`` / ``language`` of the newest
scored customer post and ``has_complaint`` / ``has_question``. They are derived values,
refreshed by explicit calls, never by flush hooks:

* :func:`apply_event` - by ``otklik.cases.journal.append`` for every event: the cycle moves by
  the one rule (``otklik.domain.sla.next_cycle``); an event older than the newest one already
  journaled (a backlog delivered out of order) or a merge replays the whole journal instead;
* :func:`refresh_flags` - by scoring, score corrections and merges: the flags from the
  customer posts' scores, a person's correction winning over the model;
* :func:`refresh_due` - whenever the priority changes (scoring).

The SLA policy comes from the session factory (``otklik.store.db.make_session_factory``);
without one there are no due times. :func:`backfill` / :func:`recompute` refill the due
times in bulk after an upgrade or a policy change.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from otklik.domain.events import EventKind
from otklik.domain.sla import Cycle, SlaPolicy, cycle_from_events, due_and_risk, next_cycle
from otklik.store.db import POLICY_KEY
from otklik.store.models import (
    CaseEvent,
    Conversation,
    Mention,
    Score,
    ScoreCorrection,
    Status,
)


def policy_of(session: Session) -> SlaPolicy | None:
    """The SLA policy the session's factory was made with (None: no SLA)."""
    policy: SlaPolicy | None = session.info.get(POLICY_KEY)
    return policy


def cycle_of(conversation: Conversation) -> Cycle:
    """The conversation's current SLA cycle, from its cached columns."""
    return Cycle(
        started_at=conversation.cycle_started_at or conversation.opened_at,
        first_response_at=conversation.cycle_responded_at,
        resolved_at=conversation.resolved_at,
    )


def apply_event(
    session: Session, conversation: Conversation, event: CaseEvent, latest: datetime | None
) -> None:
    """Move the conversation's cycle and due times by one journal event.

    ``latest`` is the time of the newest event journaled before this one: an event older than
    that (a backlog delivered out of order) or a merge replays the journal in time order
    instead, so the cached cycle is always what :func:`cycle_from_events` gives.
    """
    if event.kind == EventKind.MERGED or (latest is not None and event.at < latest):
        session.flush()
        cycle: Cycle | None = cycle_from_events(
            (e.kind, e.at, e.data or {}) for e in events_of(session, conversation.id)
        )
    else:
        before = cycle_of(conversation) if conversation.cycle_started_at is not None else None
        cycle = next_cycle(
            before, event.kind, event.at, event.data or {}, conversation.last_customer_at
        )
    if cycle is not None:
        conversation.cycle_started_at = cycle.started_at
        conversation.cycle_responded_at = cycle.first_response_at
        _set_due(conversation, cycle, policy_of(session))


def latest_event_at(session: Session, conversation_id: int) -> datetime | None:
    """When the newest journaled event of the conversation happened."""
    latest: datetime | None = session.scalar(
        select(func.max(CaseEvent.at)).where(CaseEvent.conversation_id == conversation_id)
    )
    return latest


def events_of(session: Session, conversation_id: int) -> list[CaseEvent]:
    """A conversation's journal in the order things happened (time, then id)."""
    return list(
        session.scalars(
            select(CaseEvent)
            .where(CaseEvent.conversation_id == conversation_id)
            .order_by(CaseEvent.at, CaseEvent.id)
        )
    )


def refresh_due(session: Session, conversation: Conversation) -> None:
    """Recompute the due times from the cached cycle (after a priority change)."""
    if conversation.opened_at is not None:
        _set_due(conversation, cycle_of(conversation), policy_of(session))


def due_of(
    conversation: Conversation, policy: SlaPolicy | None
) -> tuple[datetime | None, datetime | None]:
    """(due, at risk from) that the inbox sorts and filters on; Nones without a clock."""
    if policy is None or conversation.opened_at is None:
        return None, None
    priority = conversation.priority or 0  # None until the column default applies at insert
    found = due_and_risk(cycle_of(conversation), policy, conversation.platform, priority)
    return found if found is not None else (None, None)


def _set_due(conversation: Conversation, cycle: Cycle, policy: SlaPolicy | None) -> None:
    found = None
    if policy is not None:
        found = due_and_risk(cycle, policy, conversation.platform, conversation.priority or 0)
    conversation.sla_due_at, conversation.sla_risk_at = found if found is not None else (None, None)


def effective_scores(session: Session, mention_ids: list[int]) -> dict[int, dict[str, str]]:
    """The newest correction per mention and field: {mention_id: {field: value}}."""
    found: dict[int, dict[str, str]] = {i: {} for i in mention_ids}
    if mention_ids:
        rows = session.scalars(
            select(ScoreCorrection)
            .where(ScoreCorrection.mention_id.in_(mention_ids))
            .order_by(ScoreCorrection.created_at, ScoreCorrection.id)
        )
        for row in rows:
            found[row.mention_id][row.field] = row.new_value
    return found


def refresh_flags(session: Session, conversation: Conversation) -> None:
    """Complaint, question, sentiment and language from the customer posts' scores.

    A person's correction of a post wins over the model's score of it; the sentiment and
    language are those of the newest scored customer post.
    """
    session.flush()
    rows = session.execute(
        select(Mention.id, Score.sentiment, Score.is_complaint, Score.is_question, Score.lang)
        .join(Score, Score.mention_id == Mention.id)
        .where(Mention.conversation_id == conversation.id, Mention.is_ours.is_(False))
        .order_by(Mention.created_at, Mention.id)
    ).all()
    corrected = effective_scores(session, [row.id for row in rows])
    complaint = question = False
    sentiment = language = None
    for row in rows:
        fix = corrected[row.id]
        complaint |= fix.get("is_complaint", str(row.is_complaint).lower()) == "true"
        question |= fix.get("is_question", str(row.is_question).lower()) == "true"
        sentiment, language = fix.get("sentiment", row.sentiment), row.lang
    conversation.has_complaint, conversation.has_question = complaint, question
    if rows:
        conversation.sentiment, conversation.language = sentiment, language


def backfill(session: Session, policy: SlaPolicy | None, batch: int = 5000) -> int:
    """Fill the SLA times of open conversations that have none (after an upgrade)."""
    return recompute(session, policy, only_missing=True, batch=batch)


def recompute(
    session: Session, policy: SlaPolicy | None, only_missing: bool = False, batch: int = 5000
) -> int:
    """Recompute the SLA times of open conversations (all, or only those without one).

    Bulk updates by primary key, in id order, so a changed policy reaches 100,000 open
    conversations in a few seconds without loading them as objects.
    """
    if policy is None and only_missing:
        return 0
    c = Conversation
    query = (
        select(c.id, c.platform, c.priority, c.opened_at, c.cycle_started_at, c.cycle_responded_at)
        .where(c.status != Status.RESOLVED)
        .order_by(c.id)
        .limit(batch)
    )
    if only_missing:
        query = query.where(c.sla_risk_at.is_(None))
    done, last = 0, 0
    while rows := session.execute(query.where(c.id > last)).all():
        session.execute(update(Conversation), [_due_row(row, policy) for row in rows])
        done, last = done + len(rows), rows[-1].id
    return done


def _due_row(row: Any, policy: SlaPolicy | None) -> dict[str, Any]:
    started = row.cycle_started_at or row.opened_at
    found: tuple[datetime, datetime] | None = None
    if policy is not None:
        cycle = Cycle(started, row.cycle_responded_at, None)
        found = due_and_risk(cycle, policy, row.platform, row.priority or 0)
    due, risk = found if found is not None else (None, None)
    return {"id": row.id, "cycle_started_at": started, "sla_due_at": due, "sla_risk_at": risk}


def sync_policy(session: Session, policy: SlaPolicy | None, marker: Path) -> int:
    """Recompute every open conversation's SLA times when the policy differs from last time.

    ``marker`` keeps a fingerprint of the policy the stored times were computed with; without
    this, changed targets or business hours would reach a conversation only when it changes.
    Otherwise only conversations without times are filled. Returns how many were updated.
    """
    fingerprint = hashlib.sha256(repr(policy).encode()).hexdigest()
    previous = marker.read_text().strip() if marker.exists() else None
    if previous == fingerprint:
        return backfill(session, policy)
    updated = recompute(session, policy)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(fingerprint + "\n")
    return updated
