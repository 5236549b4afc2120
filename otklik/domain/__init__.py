"""Pure rules and values: no database, no network, no wall clock (``now`` is passed in).

``mentions`` (what connectors hand over), ``events`` (the one vocabulary of case events),
``sla`` (clocks and cycles), ``triage`` (priority), ``noise`` (what a source drops).
"""

from otklik.domain.mentions import (
    AuthError,
    ConnectorError,
    MalformedResponse,
    OutcomeUnknown,
    Page,
    RateLimited,
    RawMention,
    TransientError,
)

__all__ = [
    "AuthError",
    "ConnectorError",
    "MalformedResponse",
    "OutcomeUnknown",
    "Page",
    "RateLimited",
    "RawMention",
    "TransientError",
]
