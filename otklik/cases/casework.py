"""What people do to a conversation: status, assignment, notes, tags, score corrections.

Each action appends to the conversation's journal and writes the audit entry of who did it
(with the request's address, ``ip``), in the caller's transaction: the web views only call
these functions.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from otklik import audit
from otklik.cases import journal
from otklik.domain.events import EventKind
from otklik.store import db, projections
from otklik.store.models import (
    Conversation,
    ConversationTag,
    Mention,
    Note,
    ScoreCorrection,
    Status,
    User,
)

SETTABLE_STATUSES = (Status.OPEN, Status.PENDING, Status.RESOLVED)
CORRECTABLE = {
    "sentiment": ("negative", "neutral", "positive"),
    "is_complaint": ("true", "false"),
    "is_question": ("true", "false"),
}
_TAG = re.compile(r"^[\w][\w\- ]{0,39}$")


class CaseError(ValueError):
    """The action does not apply to this conversation."""


def change_status(
    session: Session,
    conversation: Conversation,
    status: str,
    user: User,
    now: datetime,
    ip: str = "",
) -> bool:
    """Move to ``status`` (open, pending, resolved); False when it already is there.

    Reopening a resolved conversation starts a new SLA cycle now (the journal's rule).
    """
    if status not in SETTABLE_STATUSES:
        raise CaseError(f"status must be one of: {', '.join(SETTABLE_STATUSES)}")
    old = conversation.status
    if old == status:
        return False
    change: dict[str, Any] = {"from": str(old), "to": str(status)}
    journal.append(session, conversation, EventKind.STATUS_CHANGED, now, user=user, **change)
    conversation.resolved_at = now if status == Status.RESOLVED else None
    conversation.status = status
    audit.record(session, user, "status", f"conversation:{conversation.id}", change, ip=ip)
    return True


def assign(
    session: Session,
    conversation: Conversation,
    assignee: User | None,
    user: User,
    now: datetime,
    ip: str = "",
) -> bool:
    """Assign to ``assignee`` (None: unassign); False when nothing changes."""
    if assignee is not None and not assignee.active:
        raise CaseError(f"{assignee.username} is not an active user")
    new_id = assignee.id if assignee else None
    if conversation.assignee_id == new_id:
        return False
    old = conversation.assignee.username if conversation.assignee else None
    new = assignee.username if assignee else None
    moved: dict[str, Any] = {"from": old, "to": new}
    journal.append(session, conversation, EventKind.ASSIGNED, now, user=user, **moved)
    conversation.assignee_id = new_id
    conversation.assignee = assignee
    audit.record(
        session, user, "assign", f"conversation:{conversation.id}", {"from": old, "to": new}, ip=ip
    )
    return True


def add_note(
    session: Session, conversation: Conversation, body: str, user: User, now: datetime
) -> Note:
    """An internal note (never posted to the platform)."""
    body = body.strip()
    if not body:
        raise CaseError("the note is empty")
    if "\x00" in body:  # PostgreSQL refuses NUL in text; no real note holds one
        raise CaseError("the note contains a NUL character")
    note = Note(conversation_id=conversation.id, user_id=user.id, body=body[:5000], created_at=now)
    session.add(note)
    session.flush()
    journal.append(session, conversation, EventKind.NOTE_ADDED, now, user=user, note_id=note.id)
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
    journal.append(session, conversation, EventKind.TAGGED, now, user=user, tag=tag)
    return True


def remove_tag(
    session: Session, conversation: Conversation, tag: str, user: User, now: datetime
) -> bool:
    """Remove a tag; False when the conversation did not have it."""
    removed = session.execute(
        delete(ConversationTag).where(
            ConversationTag.conversation_id == conversation.id, ConversationTag.tag == tag
        )
    )
    if not db.rows_changed(removed):
        return False
    journal.append(session, conversation, EventKind.UNTAGGED, now, user=user, tag=tag)
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
        journal.append(
            session,
            conversation,
            EventKind.SCORE_CORRECTED,
            now,
            user=user,
            mention_id=mention.id,
            field=field,
            old=old,
            new=value,
        )
        projections.refresh_flags(session, conversation)
    return correction


def effective_scores(session: Session, mentions: list[Mention]) -> dict[int, dict[str, str]]:
    """The newest correction per mention and field: {mention_id: {field: value}}."""
    return projections.effective_scores(session, [m.id for m in mentions])
