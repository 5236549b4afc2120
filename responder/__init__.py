"""Replies: queue them from the console, send them through the platform connector."""

from responder.outbox import (
    DuplicateReply,
    NotRetryable,
    queue_reply,
    recover_interrupted,
    retry_reply,
    send_due,
)

__all__ = [
    "DuplicateReply",
    "NotRetryable",
    "queue_reply",
    "recover_interrupted",
    "retry_reply",
    "send_due",
]
