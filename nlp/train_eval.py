"""Evaluation figures reported by :mod:`nlp.train` (held-out tweets, seeds, Russian set)."""

from __future__ import annotations

import numpy as np

from nlp.datasets import Tweets, weak_complaint_labels
from nlp.encoder import Encoder
from nlp.heads import COMPLAINT_TYPES, SENTIMENTS, Heads
from nlp.scorer import EncoderScorer, combine_complaint


def _r(value: float) -> float:
    return round(float(value), 4)


def evaluate_heldout(
    heads: Heads, tweets: Tweets, held_idx: np.ndarray, x_held: np.ndarray
) -> dict:
    """Sentiment and weak-label complaint figures on the held-out tweets."""
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        f1_score,
        precision_score,
        recall_score,
    )

    y = tweets.labels[held_idx]
    probs = heads.sentiment_probs(x_held)
    pred = probs.argmax(axis=1)
    texts = [tweets.texts[i] for i in held_idx]
    weak = weak_complaint_labels(texts, y, SENTIMENTS.index("negative"))
    flagged = combine_complaint(heads.complaint_probs(x_held), probs) >= heads.complaint_threshold
    return {
        "n": int(len(y)),
        "sentiment_accuracy": _r(accuracy_score(y, pred)),
        "sentiment_macro_f1": _r(f1_score(y, pred, average="macro")),
        "sentiment_f1_per_class": dict(
            zip(SENTIMENTS, (_r(v) for v in f1_score(y, pred, average=None)), strict=True)
        ),
        "sentiment_confusion_rows_true_cols_pred": confusion_matrix(y, pred).tolist(),
        "complaint_weak_labels": {
            "positive_rate": _r(weak.mean()),
            "accuracy": _r(accuracy_score(weak, flagged)),
            "f1": _r(f1_score(weak, flagged)),
            "precision": _r(precision_score(weak, flagged)),
            "recall": _r(recall_score(weak, flagged)),
        },
    }


def type_leave_one_out(heads: Heads) -> dict:
    """Complaint-type accuracy on the seed phrases, each scored without itself."""
    emb, labels = heads.type_seed_emb, heads.type_seed_label
    correct = 0
    for i in range(len(labels)):
        keep = np.arange(len(labels)) != i
        probe = Heads(
            version="loo",
            sentiment_w=heads.sentiment_w,
            sentiment_b=heads.sentiment_b,
            complaint_w=heads.complaint_w,
            complaint_b=heads.complaint_b,
            type_seed_emb=emb[keep],
            type_seed_label=labels[keep],
            type_top_k=heads.type_top_k,
            type_min_similarity=heads.type_min_similarity,
        )
        correct += probe.complaint_types(emb[i : i + 1])[0] == COMPLAINT_TYPES[labels[i]]
    return {"n": int(len(labels)), "accuracy": _r(correct / max(len(labels), 1))}


def evaluate_ru(encoder: Encoder, heads: Heads, rows: list[dict]) -> dict:
    """Scorer results on the hand-labelled Russian sentences, with per-row predictions."""
    scorer = EncoderScorer(encoder, heads, "train-eval")
    scores = scorer.score([r["text"] for r in rows])
    emb = scorer.embed([r["text"] for r in rows])
    raw_types = heads.complaint_types(emb)
    hits = {"sentiment": 0, "is_complaint": 0, "is_question": 0, "lang": 0}
    type_hits, type_n, details = 0, 0, []
    for row, score, raw_type in zip(rows, scores, raw_types, strict=True):
        hits["sentiment"] += score.sentiment == row["sentiment"]
        hits["is_complaint"] += score.is_complaint == row["is_complaint"]
        hits["is_question"] += score.is_question == row["is_question"]
        hits["lang"] += score.lang == row.get("lang", "ru")
        if row.get("complaint_type"):
            type_n += 1
            type_hits += raw_type == row["complaint_type"]
        details.append(
            {
                "text": row["text"],
                "sentiment": score.sentiment,
                "complaint_prob": _r(score.complaint_prob),
                "is_complaint": score.is_complaint,
                "complaint_type": score.complaint_type,
                "is_question": score.is_question,
            }
        )
    n = max(len(rows), 1)
    result = {f"{k}_accuracy": _r(v / n) for k, v in hits.items()}
    result["complaint_type_accuracy_on_true_complaints"] = _r(type_hits / max(type_n, 1))
    result["n"] = len(rows)
    result["predictions"] = details
    return result
