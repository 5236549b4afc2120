"""The one vocabulary of case events: every kind a conversation's journal can hold.

Events are written only by ``otklik.cases.journal.append``; the SLA cycle rule
(``otklik.domain.sla.next_cycle``), the console's labels and later the analytics read these
names. Adding a kind: add it here, give it a label in ``web/views.py``, and say in the
docstring of the use case that writes it what its ``data`` holds.
"""

from __future__ import annotations

import enum


class EventKind(enum.StrEnum):
    """What happened to a conversation; ``data`` of each kind in brackets."""

    OPENED = "opened"  # a customer's first post {mention_id, external_id}
    CUSTOMER_POSTED = "customer_posted"  # a further customer post {mention_id, external_id}
    REOPENED = "reopened"  # a customer wrote again after the resolution {mention_id, ...}
    ASSIGNED = "assigned"  # {from, to} usernames
    STATUS_CHANGED = "status_changed"  # {from, to}
    REPLY_QUEUED = "reply_queued"  # {reply_id}
    REPLY_RETRIED = "reply_retried"  # {reply_id}
    REPLIED = "replied"  # sent on the platform {reply_id, external_id} or {mention_id, ...}
    REPLY_FAILED = "reply_failed"  # {reply_id, error[, unknown: true if it may have been posted]}
    ESCALATED = "escalated"  # reserved for ticket systems
    MERGED = "merged"  # another conversation of the same thread folded in {merged}
    NOTE_ADDED = "note_added"  # {note_id}
    TAGGED = "tagged"  # {tag}
    UNTAGGED = "untagged"  # {tag}
    SCORE_CORRECTED = "score_corrected"  # {mention_id, field, old, new}


CUSTOMER_KINDS = frozenset({EventKind.OPENED, EventKind.CUSTOMER_POSTED})
