"""Evaluation figures: classification metrics and the sets reported by :mod:`nlp.train`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from nlp.datasets import Tweets, weak_complaint_labels
from nlp.encoder import Encoder
from nlp.heads import COMPLAINT_TYPES, SENTIMENTS, Heads
from nlp.scorer import EncoderScorer, combine_complaint


def _r(value: float) -> float:
    return round(float(value), 4)


def classification_metrics(
    y_true: Sequence, y_pred: Sequence, labels: Sequence, positive: Any = None
) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix.

    ``labels`` fixes the class order (rows: true, columns: predicted).  With
    ``positive`` set (binary tasks), ``f1``/``precision``/``recall`` of that class are
    added at the top level.
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    labels = list(labels)
    y_true, y_pred = list(y_true), list(y_pred)
    if not y_true:
        return {"n": 0}
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    present = [i for i, lab in enumerate(labels) if s[i] > 0 or lab in y_pred]
    out = {
        "n": len(y_true),
        "accuracy": _r(accuracy_score(y_true, y_pred)),
        "macro_f1": _r(np.mean([f[i] for i in present]) if present else 0.0),
        "per_class": {
            str(lab): {
                "precision": _r(p[i]),
                "recall": _r(r[i]),
                "f1": _r(f[i]),
                "support": int(s[i]),
            }
            for i, lab in enumerate(labels)
        },
        "labels": [str(x) for x in labels],
        "confusion_rows_true_cols_pred": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }
    if positive is not None:
        i = labels.index(positive)
        out.update(precision=_r(p[i]), recall=_r(r[i]), f1=_r(f[i]))
    return out


def _predict(heads: Heads, feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    probs = heads.sentiment_probs(feats)
    flagged = combine_complaint(heads.complaint_probs(feats), probs) >= heads.complaint_threshold
    return probs.argmax(axis=1), flagged


def evaluate_heldout(heads: Heads, tweets: Tweets, idx: np.ndarray, feats: np.ndarray) -> dict:
    """Sentiment and weak-label complaint figures on held-out tweets."""
    y = tweets.labels[idx]
    pred, flagged = _predict(heads, feats)
    texts = [tweets.texts[i] for i in idx]
    weak = weak_complaint_labels(texts, y, SENTIMENTS.index("negative"))
    sent = classification_metrics(
        [SENTIMENTS[i] for i in y], [SENTIMENTS[i] for i in pred], SENTIMENTS
    )
    comp = classification_metrics(weak.tolist(), flagged.astype(int).tolist(), [0, 1], 1)
    return {
        "n": int(len(y)),
        "sentiment_accuracy": sent.get("accuracy"),
        "sentiment_macro_f1": sent.get("macro_f1"),
        "sentiment": sent,
        "complaint_weak_labels": {k: comp.get(k) for k in ("accuracy", "f1", "precision", "recall")}
        | {"positive_rate": _r(weak.mean()) if len(weak) else 0.0},
    }


def evaluate_company(
    heads: Heads, tweets: Tweets, idx: np.ndarray, feats: np.ndarray, company: str
) -> dict:
    """Tweets addressed to one company never trained on.

    Complaint truth here: negative = complaint (customers writing to an airline).
    """
    y = tweets.labels[idx]
    pred, flagged = _predict(heads, feats)
    truth = (y == SENTIMENTS.index("negative")).astype(int)
    sent = classification_metrics(
        [SENTIMENTS[i] for i in y], [SENTIMENTS[i] for i in pred], SENTIMENTS
    )
    comp = classification_metrics(truth.tolist(), flagged.astype(int).tolist(), [0, 1], 1)
    return {
        "company": company,
        "n": int(len(y)),
        "sentiment_accuracy": sent.get("accuracy"),
        "sentiment_macro_f1": sent.get("macro_f1"),
        "sentiment": sent,
        "complaint": comp,
    }


def type_leave_one_out(heads: Heads) -> dict:
    """Complaint-type accuracy on the seed phrases, each scored without itself."""
    emb, labels = heads.type_seed_emb, heads.type_seed_label
    correct = 0
    for i in range(len(labels)):
        keep = np.arange(len(labels)) != i
        probe = Heads(
            version="loo",
            sentiment=heads.sentiment,
            complaint=heads.complaint,
            type_seed_emb=emb[keep],
            type_seed_label=labels[keep],
            feature_layers=heads.feature_layers,
            type_top_k=heads.type_top_k,
            type_min_similarity=heads.type_min_similarity,
        )
        correct += probe.complaint_types(emb[i : i + 1])[0] == COMPLAINT_TYPES[labels[i]]
    return {"n": int(len(labels)), "accuracy": _r(correct / max(len(labels), 1))}


def evaluate_ru(encoder: Encoder, heads: Heads, rows: list[dict]) -> dict:
    """Scorer results on the hand-labelled Russian sentences, with per-row predictions."""
    scorer = EncoderScorer(encoder, heads, "train-eval")
    texts = [r["text"] for r in rows]
    scores = scorer.score(texts)
    raw_types = heads.complaint_types(scorer.embed(texts))
    hits = {"is_question": 0, "lang": 0}
    type_hits, type_n, details = 0, 0, []
    for row, score, raw_type in zip(rows, scores, raw_types, strict=True):
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
    sent = classification_metrics(
        [r["sentiment"] for r in rows], [s.sentiment for s in scores], SENTIMENTS
    )
    comp = classification_metrics(
        [int(r["is_complaint"]) for r in rows], [int(s.is_complaint) for s in scores], [0, 1], 1
    )
    result: dict[str, Any] = {f"{k}_accuracy": _r(v / n) for k, v in hits.items()}
    result.update(
        n=len(rows),
        sentiment_accuracy=sent.get("accuracy"),
        sentiment_macro_f1=sent.get("macro_f1"),
        is_complaint_accuracy=comp.get("accuracy"),
        complaint_f1=comp.get("f1"),
        complaint_precision=comp.get("precision"),
        complaint_recall=comp.get("recall"),
        sentiment_confusion_rows_true_cols_pred=sent.get("confusion_rows_true_cols_pred"),
        complaint_type_accuracy_on_true_complaints=_r(type_hits / max(type_n, 1)),
        predictions=details,
    )
    return result
