"""Use cases on conversations; each takes a Session (or a session factory) and plain values.

``journal.append`` is the only writer of case events and keeps the inbox projections in step.
"""
