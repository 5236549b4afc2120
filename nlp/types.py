"""Public value types of the NLP package (re-exported by :mod:`nlp`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True, slots=True)
class TextScore:
    """Everything the scorer says about one text."""

    sentiment: str  # "negative" | "neutral" | "positive"
    sentiment_probs: Mapping[str, float]  # keys negative, neutral, positive
    complaint_prob: float
    is_complaint: bool
    complaint_type: str | None  # delivery, product_quality, billing, customer_service,
    # technical, pricing, other; None if not a complaint
    is_question: bool
    lang: str  # "ru" | "en" | "other"
    model_version: str


@runtime_checkable
class Scorer(Protocol):
    """Scores texts and embeds them; implementations keep input order."""

    model_version: str

    def score(self, texts: Sequence[str]) -> list[TextScore]:
        """One :class:`TextScore` per input text."""
        ...

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """``(n, 384)`` float32 L2-normalised embeddings."""
        ...
