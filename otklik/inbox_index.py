"""Keeps the conversation columns the inbox filters and sorts on in step with every write.

The inbox must stay fast with a million mentions, so it filters and sorts on columns of
``conversations`` instead of joining mentions and scores: ``sla_due_at`` / ``sla_risk_at``
(the next SLA due time and when it turns at risk), ``cycle_started_at`` /
``cycle_responded_at`` (the current SLA cycle, see ``otklik.sla``), ``sentiment`` /
``language`` of the newest scored post and ``has_complaint`` /
``has_question``. They are derived values: a ``before_flush`` hook on the runtime's session
factory refreshes them whenever ingestion, scoring, the outbox or the console writes, so none
of those needs to know about them. The event log stays the source of truth
(``otklik.sla.cycle_from_events``); :func:`backfill` recomputes the cache.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event, select, update
from sqlalchemy.orm import Session, attributes, sessionmaker

from otklik.models import CaseEvent, Conversation, EventKind, Mention, Score, Status
from otklik.sla import Cycle, SlaPolicy, due_and_risk

_INSTALLED_KEY = "otklik_inbox_index"


def install(sessions: sessionmaker[Session], policy: SlaPolicy | None) -> None:
    """Refresh the derived columns on every flush of sessions made by ``sessions``."""
    if sessions.kw.get("info", {}).get(_INSTALLED_KEY):
        return

    def before_flush(session: Session, _context: object, _instances: object) -> None:
        with session.no_autoflush:
            refresh_pending(session, policy)

    event.listen(sessions, "before_flush", before_flush)
    sessions.kw.setdefault("info", {})[_INSTALLED_KEY] = True


def refresh_pending(session: Session, policy: SlaPolicy | None) -> None:
    """Apply new scores and replies to their conversations, then recompute SLA due times."""
    touched: set[Conversation] = set()
    for obj in list(session.new):
        if isinstance(obj, Score):
            conversation = _apply_score(session, obj)
        elif isinstance(obj, CaseEvent) and obj.kind == EventKind.REPLIED:
            conversation = _apply_reply(session, obj)
        elif isinstance(obj, CaseEvent) and obj.kind == "merged":
            conversation = _apply_merge(session, obj)
        else:
            conversation = obj if isinstance(obj, Conversation) else None
        if conversation is not None:
            touched.add(conversation)
    touched.update(o for o in session.dirty if isinstance(o, Conversation))
    for conversation in touched:
        _refresh_cycle(conversation)
        _set_due(conversation, policy)


def _apply_score(session: Session, score: Score) -> Conversation | None:
    mention = score.mention or session.get(Mention, score.mention_id)
    conversation = mention.conversation if mention is not None else None
    if conversation is None:
        return None
    conversation.sentiment, conversation.language = score.sentiment, score.lang
    conversation.has_complaint = bool(conversation.has_complaint or score.is_complaint)
    conversation.has_question = bool(conversation.has_question or score.is_question)
    return conversation


def _apply_reply(session: Session, replied: CaseEvent) -> Conversation | None:
    conversation = session.get(Conversation, replied.conversation_id)
    if conversation is None:
        return None
    started = conversation.cycle_started_at or conversation.opened_at
    if conversation.cycle_responded_at is None and replied.at >= started:
        conversation.cycle_responded_at = replied.at
    return conversation


def _apply_merge(session: Session, merged: CaseEvent) -> Conversation | None:
    """``otklik.merge`` folded another conversation into this one: fold its flags and cycle."""
    keep = session.get(Conversation, merged.conversation_id)
    other = session.get(Conversation, (merged.data or {}).get("merged", 0))
    if keep is None or other is None:
        return keep
    keep.has_complaint = bool(keep.has_complaint or other.has_complaint)
    keep.has_question = bool(keep.has_question or other.has_question)
    if other.sentiment and (not keep.sentiment or other.last_customer_at >= keep.last_customer_at):
        keep.sentiment, keep.language = other.sentiment, other.language  # its post is newest
    starts = [t for t in (keep.cycle_started_at, other.cycle_started_at) if t is not None]
    if starts:
        keep.cycle_started_at = min(starts)
    answered = [t for t in (keep.cycle_responded_at, other.cycle_responded_at) if t is not None]
    keep.cycle_responded_at = min(answered) if answered else None
    return keep


def _refresh_cycle(conversation: Conversation) -> None:
    """A new conversation starts its first cycle; a reopened one starts a new cycle."""
    if conversation.cycle_started_at is None:
        conversation.cycle_started_at = conversation.opened_at
    opened = attributes.get_history(conversation, "opened_at")
    if opened.deleted and conversation.cycle_started_at in opened.deleted:
        conversation.cycle_started_at = conversation.opened_at  # an older post of the thread
    status = attributes.get_history(conversation, "status")
    reopened = "resolved" in (status.deleted or ()) and conversation.status != Status.RESOLVED
    if reopened and not attributes.get_history(conversation, "cycle_started_at").has_changes():
        conversation.cycle_started_at = conversation.last_customer_at
        conversation.cycle_responded_at = None


def cycle_of(conversation: Conversation) -> Cycle:
    """The conversation's current SLA cycle, from its cached columns."""
    return Cycle(
        started_at=conversation.cycle_started_at or conversation.opened_at,
        first_response_at=conversation.cycle_responded_at,
        resolved_at=conversation.resolved_at if conversation.status == Status.RESOLVED else None,
    )


def due_of(
    conversation: Conversation, policy: SlaPolicy | None
) -> tuple[datetime | None, datetime | None]:
    """(due, at risk from) that the inbox sorts and filters on; Nones without a clock."""
    if policy is None or conversation.opened_at is None:
        return None, None
    priority = conversation.priority or 0  # None until the column default applies at insert
    found = due_and_risk(cycle_of(conversation), policy, conversation.platform, priority)
    return found if found is not None else (None, None)


def _set_due(conversation: Conversation, policy: SlaPolicy | None) -> None:
    conversation.sla_due_at, conversation.sla_risk_at = due_of(conversation, policy)


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
    found = None
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
