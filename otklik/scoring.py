"""Scoring newly stored mentions in batches and refreshing case priority."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from otklik import db
from otklik.models import Conversation, Mention, Score
from otklik.runtime import Runtime
from otklik.triage import priority


def score_pending(runtime: Runtime, limit: int | None = None) -> int:
    """Score up to ``limit`` customer mentions that have no score yet; return how many."""
    limit = limit or runtime.settings.nlp.score_batch_limit
    with db.transaction(runtime.sessions) as session:
        pending = list(
            session.scalars(
                select(Mention)
                .outerjoin(Score, Score.mention_id == Mention.id)
                .where(Score.id.is_(None), Mention.is_ours.is_(False))
                .order_by(Mention.id)
                .limit(limit)
            )
        )
        if not pending:
            return 0
        results = runtime.scorer.score([m.text for m in pending])
        for mention, result in zip(pending, results, strict=True):
            _store_score(session, mention, result)
    return len(pending)


def _store_score(session: Session, mention: Mention, result) -> None:  # type: ignore[no-untyped-def]
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
