"""Otklik: self-hosted social-media listening and response.

This package holds the shared domain model (what crosses boundaries), storage
(SQLAlchemy models, sessions, migrations), the ingestion/case rules, the
scheduler and the ``otklik`` command line.
"""

__version__ = "0.1.0"
