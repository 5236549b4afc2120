"""The outbox engine (``engine``) and its channels: replies now, tickets and alerts next."""
