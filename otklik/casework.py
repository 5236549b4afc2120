"""What people do to a conversation: status, assignment, notes, tags, score corrections.

Each action writes a case event (the conversation's log) and, where the issue asks for it,
an audit entry, in the caller's transaction.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from otklik import audit
from otklik.models import (
    CaseEvent,
    Conversation,
    ConversationTag,
    EventKind,
    Mention,
    Note,
    ScoreCorrection,
    Status,
    User,
)

NOTE_ADDED = "note_added"
TAGGED = "tagged"
UNTAGGED = "untagged"
SCORE_CORRECTED = "score_corrected"
REPLY_RETRIED = "reply_retried"
SETTABLE_STATUSES = (Status.OPEN, Status.PENDING, Status.RESOLVED)
CORRECTABLE = {
    "sentiment": ("negative", "neutral", "positive"),
    "is_complaint": ("true", "false"),
    "is_question": ("true", "false"),
}
_TAG = re.compile(r"^[\w][\w\- ]{0,39}$")


class CaseError(ValueError):
    """The action does not apply to this conversation."""


def log_event(
    session: Session,
    conversation: Conversation,
    kind: str,
    user: User | None,
    now: datetime,
    **data: Any,
) -> CaseEvent:
    """Append an event to the conversation's log."""
    event = CaseEvent(
        conversation_id=conversation.id,
        kind=kind,
        at=now,
        actor_id=user.id if user else None,
        actor=user.username if user else "system",
        data=data,
    )
    session.add(event)
    return event


def change_status(
    session: Session, conversation: Conversation, status: str, user: User, now: datetime
) -> bool:
    """Move to ``status`` (open, pending, resolved); False when it already is there."""
    if status not in SETTABLE_STATUSES:
        raise CaseError(f"status must be one of: {', '.join(SETTABLE_STATUSES)}")
    old = conversation.status
    if old == status:
        return False
    log_event(
        session, conversation, EventKind.STATUS_CHANGED, user, now, **{"from": old, "to": status}
    )
    if status == Status.RESOLVED:
        conversation.resolved_at = now
    elif old == Status.RESOLVED:  # reopened by a person: a new SLA cycle starts now
        conversation.resolved_at = None
        conversation.cycle_started_at, conversation.cycle_responded_at = now, None
    conversation.status = status
    audit.record(
        session, user, "status", f"conversation:{conversation.id}", {"from": old, "to": status}
    )
    return True


def assign(
    session: Session,
    conversation: Conversation,
    assignee: User | None,
    user: User,
    now: datetime,
) -> bool:
    """Assign to ``assignee`` (None: unassign); False when nothing changes."""
    if assignee is not None and not assignee.active:
        raise CaseError(f"{assignee.username} is not an active user")
    new_id = assignee.id if assignee else None
    if conversation.assignee_id == new_id:
        return False
    old = conversation.assignee.username if conversation.assignee else None
    new = assignee.username if assignee else None
    log_event(session, conversation, EventKind.ASSIGNED, user, now, **{"from": old, "to": new})
    conversation.assignee_id = new_id
    conversation.assignee = assignee
    audit.record(
        session, user, "assign", f"conversation:{conversation.id}", {"from": old, "to": new}
    )
    return True


def add_note(
    session: Session, conversation: Conversation, body: str, user: User, now: datetime
) -> Note:
    """An internal note (never posted to the platform)."""
    body = body.strip()
    if not body:
        raise CaseError("the note is empty")
    note = Note(conversation_id=conversation.id, user_id=user.id, body=body[:5000], created_at=now)
    session.add(note)
    session.flush()
    log_event(session, conversation, NOTE_ADDED, user, now, note_id=note.id)
    return note


def normalise_tag(tag: str) -> str:
    """Lower-case, trimmed; CaseError unless 1-40 letters, digits, spaces, '-' or '_'."""
    tag = " ".join(tag.strip().lower().split())
    if not _TAG.match(tag):
        raise CaseError("a tag is 1-40 letters, digits, spaces, '-' or '_'")
    return tag


def add_tag(
    session: Session, conversation: Conversation, tag: str, user: User, now: datetime
) -> bool:
    """Tag the conversation; False when it already has the tag."""
    tag = normalise_tag(tag)
    exists = session.scalar(
        select(ConversationTag).where(
            ConversationTag.conversation_id == conversation.id, ConversationTag.tag == tag
        )
    )
    if exists is not None:
        return False
    session.add(ConversationTag(conversation_id=conversation.id, tag=tag))
    log_event(session, conversation, TAGGED, user, now, tag=tag)
    return True


def remove_tag(
    session: Session, conversation: Conversation, tag: str, user: User, now: datetime
) -> bool:
    """Remove a tag; False when the conversation did not have it."""
    result = session.execute(
        delete(ConversationTag).where(
            ConversationTag.conversation_id == conversation.id, ConversationTag.tag == tag
        )
    )
    if not result.rowcount:
        return False
    log_event(session, conversation, UNTAGGED, user, now, tag=tag)
    return True


def correct_score(
    session: Session, mention: Mention, field: str, value: str, user: User, now: datetime
) -> ScoreCorrection:
    """Record a person's correction of a model score and apply it to the inbox columns."""
    if field not in CORRECTABLE or value not in CORRECTABLE[field]:
        raise CaseError(f"cannot set {field!r} to {value!r}")
    score = mention.score
    old = None if score is None else str(getattr(score, field)).lower()
    correction = ScoreCorrection(
        mention_id=mention.id,
        user_id=user.id,
        field=field,
        old_value=old,
        new_value=value,
        model_version=score.model_version if score else None,
        created_at=now,
    )
    session.add(correction)
    session.flush()
    conversation = mention.conversation
    if conversation is not None:
        log_event(
            session,
            conversation,
            SCORE_CORRECTED,
            user,
            now,
            mention_id=mention.id,
            field=field,
            old=old,
            new=value,
        )
        _apply_corrections(session, conversation)
    return correction


def effective_scores(session: Session, mentions: list[Mention]) -> dict[int, dict[str, str]]:
    """The newest correction per mention and field: {mention_id: {field: value}}."""
    ids = [m.id for m in mentions]
    found: dict[int, dict[str, str]] = {i: {} for i in ids}
    if ids:
        rows = session.scalars(
            select(ScoreCorrection)
            .where(ScoreCorrection.mention_id.in_(ids))
            .order_by(ScoreCorrection.created_at, ScoreCorrection.id)
        )
        for row in rows:
            found[row.mention_id][row.field] = row.new_value
    return found


def _apply_corrections(session: Session, conversation: Conversation) -> None:
    customer = [m for m in conversation.mentions if not m.is_ours]
    corrected = effective_scores(session, customer)

    def value(mention: Mention, field: str) -> str | None:
        if field in corrected[mention.id]:
            return corrected[mention.id][field]
        return None if mention.score is None else str(getattr(mention.score, field)).lower()

    conversation.has_complaint = any(value(m, "is_complaint") == "true" for m in customer)
    conversation.has_question = any(value(m, "is_question") == "true" for m in customer)
    scored = [m for m in customer if value(m, "sentiment") is not None]
    if scored:
        conversation.sentiment = value(scored[-1], "sentiment")
