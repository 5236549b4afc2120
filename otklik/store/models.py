"""SQLAlchemy 2.0 typed models: the whole stored state of Otklik.

Times are stored as UTC and always come back timezone-aware (see
:class:`UTCDateTime`), on SQLite as on PostgreSQL.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from otklik.domain.outbox import OutboxState


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC; refuses naive input."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} cannot be stored; use UTC-aware times")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    """Declarative base for every Otklik table."""

    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[str]: JSON}


class Role(enum.StrEnum):
    ADMIN = "admin"
    LEAD = "lead"
    AGENT = "agent"


class Status(enum.StrEnum):
    NEW = "new"
    OPEN = "open"
    PENDING = "pending"
    RESOLVED = "resolved"


ReplyState = OutboxState  # a reply is an outbox item


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default=Role.AGENT)
    locale: Mapped[str] = mapped_column(String(8), default="en")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ConsoleSession(Base):
    """A console login: the cookie carries a random token, this row its SHA-256 (revision 0005).

    A request is let in only while the row is neither revoked nor idle nor too old
    (``otklik.accounts.session_user``); logout, deactivation, a role or password change and an
    admin's "sign out everywhere" set ``revoked_at``.
    """

    __tablename__ = "console_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 hex of the token
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(index=True)
    last_seen_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    ip: Mapped[str] = mapped_column(String(64), default="")


class Brand(Base):
    __tablename__ = "brands"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    keywords: Mapped[list[str]] = mapped_column(default=list)
    handles: Mapped[list[str]] = mapped_column(default=list)
    languages: Mapped[list[str]] = mapped_column(default=list)


class Source(Base):
    """A configured collector and its persisted cursor and health."""

    __tablename__ = "sources"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    platform: Mapped[str] = mapped_column(String(32))
    query: Mapped[str] = mapped_column(Text, default="")
    brand_id: Mapped[int | None] = mapped_column(ForeignKey("brands.id"))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    cursor: Mapped[str | None] = mapped_column(Text)
    last_run_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    last_error_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    next_run_at: Mapped[datetime | None]
    newest_mention_at: Mapped[datetime | None]


class Author(Base):
    __tablename__ = "authors"
    __table_args__ = (UniqueConstraint("platform", "external_id", name="uq_author_platform_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    platform: Mapped[str] = mapped_column(String(32))
    external_id: Mapped[str] = mapped_column(String(200))
    handle: Mapped[str] = mapped_column(String(200))
    followers: Mapped[int | None] = mapped_column(BigInteger)


class Conversation(Base):
    """A case: one thread with a customer, from first post to resolution."""

    __tablename__ = "conversations"
    __table_args__ = (
        Index("ix_conversation_inbox", "status", "priority", "last_customer_at"),
        Index("ix_conversation_priority_order", "priority", "last_customer_at", "id"),
        Index("ix_conversation_waiting_order", "last_customer_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    brand_id: Mapped[int | None] = mapped_column(ForeignKey("brands.id"))
    platform: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default=Status.NEW)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    first_response_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    last_customer_at: Mapped[datetime] = mapped_column(default=utcnow)
    peak_negative: Mapped[float] = mapped_column(Float, default=0.0)  # highest P(negative) seen
    # Console columns (revision 0002): derived values the inbox filters and sorts on, kept in
    # step explicitly by otklik.store.projections (called by the journal and the use cases);
    # the journal stays the source of truth.
    sla_due_at: Mapped[datetime | None] = mapped_column(index=True)
    sla_risk_at: Mapped[datetime | None] = mapped_column(index=True)  # "at risk" from (0003)
    cycle_started_at: Mapped[datetime | None]  # opened, or reopened after a resolution
    cycle_responded_at: Mapped[datetime | None]  # first reply sent on the platform this cycle
    sentiment: Mapped[str | None] = mapped_column(String(16))  # of the newest scored post
    has_complaint: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    has_question: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    language: Mapped[str | None] = mapped_column(String(8))

    mentions: Mapped[list[Mention]] = relationship(
        back_populates="conversation", order_by="Mention.created_at"
    )
    assignee: Mapped[User | None] = relationship()


class Mention(Base):
    __tablename__ = "mentions"
    __table_args__ = (
        UniqueConstraint("platform", "external_id", name="uq_mention_platform_id"),
        Index("ix_mention_parent", "platform", "parent_external_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    platform: Mapped[str] = mapped_column(String(32))
    external_id: Mapped[str] = mapped_column(String(200))
    source_id: Mapped[int | None] = mapped_column(ForeignKey("sources.id"))
    url: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text, default="")
    language: Mapped[str | None] = mapped_column(String(8))
    created_at: Mapped[datetime]
    fetched_at: Mapped[datetime] = mapped_column(default=utcnow)
    edited_at: Mapped[datetime | None]
    deleted_at: Mapped[datetime | None]  # when the platform said it was deleted (revision 0006)
    author_id: Mapped[int] = mapped_column(ForeignKey("authors.id"))
    parent_external_id: Mapped[str | None] = mapped_column(String(200))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("mentions.id"))
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id"), index=True)
    is_ours: Mapped[bool] = mapped_column(Boolean, default=False)
    raw: Mapped[dict[str, Any]] = mapped_column(default=dict)

    author: Mapped[Author] = relationship()
    source: Mapped[Source | None] = relationship()
    parent: Mapped[Mention | None] = relationship(remote_side="Mention.id")
    conversation: Mapped[Conversation | None] = relationship(back_populates="mentions")
    score: Mapped[Score | None] = relationship(back_populates="mention", uselist=False)


class Score(Base):
    __tablename__ = "scores"

    id: Mapped[int] = mapped_column(primary_key=True)
    mention_id: Mapped[int] = mapped_column(ForeignKey("mentions.id"), unique=True)
    sentiment: Mapped[str] = mapped_column(String(16))
    prob_negative: Mapped[float] = mapped_column(Float)
    prob_neutral: Mapped[float] = mapped_column(Float)
    prob_positive: Mapped[float] = mapped_column(Float)
    complaint_prob: Mapped[float] = mapped_column(Float)
    is_complaint: Mapped[bool] = mapped_column(Boolean)
    complaint_type: Mapped[str | None] = mapped_column(String(32))
    is_question: Mapped[bool] = mapped_column(Boolean)
    lang: Mapped[str] = mapped_column(String(8))
    model_version: Mapped[str] = mapped_column(String(64))
    scored_at: Mapped[datetime] = mapped_column(default=utcnow)

    mention: Mapped[Mention] = relationship(back_populates="score")


class CaseEvent(Base):
    """Append-only journal of what happened to a conversation; the source of every metric.

    Written only by ``otklik.cases.journal.append``; kinds are ``otklik.domain.events``."""

    __tablename__ = "case_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor: Mapped[str] = mapped_column(String(80), default="system")
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # when the row was written (``at`` is when it happened); readers let id gaps settle by it
    recorded_at: Mapped[datetime | None] = mapped_column(default=utcnow)


class JournalReader(Base):
    """How far one reader of the case journal has got (see ``otklik.cases.journal.read``)."""

    __tablename__ = "journal_readers"

    name: Mapped[str] = mapped_column(String(80), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Reply(Base):
    """Outbox row: written before the platform is called, so a retry never posts twice."""

    __tablename__ = "replies"

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"), index=True)
    in_reply_to_id: Mapped[int] = mapped_column(ForeignKey("mentions.id"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    body: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default=ReplyState.QUEUED, index=True)
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    external_id: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    next_attempt_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]

    in_reply_to: Mapped[Mention] = relationship()
    user: Mapped[User | None] = relationship()


# --- Console tables (revision 0002) ---------------------------------------------------------


class ConversationTag(Base):
    """A label on a conversation (bulk action "tag")."""

    __tablename__ = "conversation_tags"
    __table_args__ = (UniqueConstraint("conversation_id", "tag", name="uq_conversation_tag"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"), index=True)
    tag: Mapped[str] = mapped_column(String(40), index=True)


class Note(Base):
    """An internal note on a conversation; never sent to the platform."""

    __tablename__ = "notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    user: Mapped[User | None] = relationship()


class ScoreCorrection(Base):
    """A person's correction of a model score (training data for the NLP heads)."""

    __tablename__ = "score_corrections"

    id: Mapped[int] = mapped_column(primary_key=True)
    mention_id: Mapped[int] = mapped_column(ForeignKey("mentions.id"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    field: Mapped[str] = mapped_column(String(32))  # sentiment | is_complaint | is_question | ...
    old_value: Mapped[str | None] = mapped_column(String(64))
    new_value: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReplyTemplate(Base):
    """A canned answer with {variables}, per language; managed by leads and admins."""

    __tablename__ = "reply_templates"
    __table_args__ = (UniqueConstraint("name", "language", name="uq_template_name_language"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    language: Mapped[str] = mapped_column(String(8))
    body: Mapped[str] = mapped_column(Text)
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class SavedView(Base):
    """A user's named inbox filter (the query string of the inbox URL)."""

    __tablename__ = "saved_views"
    __table_args__ = (UniqueConstraint("user_id", "name", name="uq_saved_view_user_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    name: Mapped[str] = mapped_column(String(80))
    query: Mapped[str] = mapped_column(Text)


class AuditEntry(Base):
    """Who did what in the console: logins, replies, assignments, status and settings changes."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor: Mapped[str] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(40), index=True)
    target: Mapped[str] = mapped_column(String(80), default="")
    ip: Mapped[str] = mapped_column(String(64), default="")
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)


# --- Leases (revision 0007) -------------------------------------------------------------------


class JobLock(Base):
    """A named lease: who may do one piece of work now, until when (``otklik.store.locks``)."""

    __tablename__ = "job_locks"

    name: Mapped[str] = mapped_column(String(120), primary_key=True)  # "scheduler", "source:x"
    owner: Mapped[str] = mapped_column(String(200))
    acquired_at: Mapped[datetime]
    expires_at: Mapped[datetime]
