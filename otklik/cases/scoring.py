"""Scores of newly stored customer posts, and what they change on their conversations."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from otklik.domain.triage import priority
from otklik.store import projections
from otklik.store.models import Conversation, Mention, Score

if TYPE_CHECKING:
    from nlp.types import TextScore


def pending_mentions(session: Session, limit: int) -> list[Mention]:
    """Up to ``limit`` customer posts without a score, oldest first."""
    return list(
        session.scalars(
            select(Mention)
            .outerjoin(Score, Score.mention_id == Mention.id)
            .where(Score.id.is_(None), Mention.is_ours.is_(False))
            .order_by(Mention.id)
            .limit(limit)
        )
    )


def store_scores(
    session: Session, mentions: Sequence[Mention], results: Sequence[TextScore]
) -> None:
    """Store one score per mention; refresh priority, flags and due times of their cases."""
    touched: dict[int, Conversation] = {}
    for mention, result in zip(mentions, results, strict=True):
        _store_score(session, mention, result)
        if mention.conversation is not None:
            touched[mention.conversation.id] = mention.conversation
    for conversation in touched.values():
        projections.refresh_flags(session, conversation)
        projections.refresh_due(session, conversation)


def _store_score(session: Session, mention: Mention, result: TextScore) -> None:
    probs = result.sentiment_probs
    session.add(
        Score(
            mention_id=mention.id,
            sentiment=result.sentiment,
            prob_negative=float(probs["negative"]),
            prob_neutral=float(probs["neutral"]),
            prob_positive=float(probs["positive"]),
            complaint_prob=float(result.complaint_prob),
            is_complaint=bool(result.is_complaint),
            complaint_type=result.complaint_type,
            is_question=bool(result.is_question),
            lang=result.lang,
            model_version=result.model_version,
        )
    )
    mention.language = result.lang
    conversation: Conversation | None = mention.conversation
    if conversation is None:
        return
    urgency = priority(
        complaint_prob=float(result.complaint_prob),
        is_complaint=bool(result.is_complaint),
        is_question=bool(result.is_question),
        p_negative=float(probs["negative"]),
        followers=mention.author.followers,
    )
    conversation.priority = max(conversation.priority, urgency)
    conversation.peak_negative = max(conversation.peak_negative or 0.0, float(probs["negative"]))
