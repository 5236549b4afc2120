"""Replies: queue them from the console, send them through the platform connector."""

from responder.outbox import DuplicateReply, queue_reply, recover_interrupted, send_due

__all__ = ["DuplicateReply", "queue_reply", "recover_interrupted", "send_due"]
