"""Pure triage rules: how urgent a conversation is, from plain values."""

from __future__ import annotations

import math


def priority(
    *,
    complaint_prob: float,
    is_complaint: bool,
    is_question: bool,
    p_negative: float,
    followers: int | None,
) -> int:
    """0..100: complaints and questions first, then negativity, then the author's reach."""
    score = 0.0
    if is_complaint:
        score += 45 + 10 * complaint_prob
    elif is_question:
        score += 35
    score += 25 * p_negative
    reach = math.log10(max(1, followers or 0))  # 0 .. ~8
    score += min(15.0, 2.5 * reach)
    return max(0, min(100, round(score)))
