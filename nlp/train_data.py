"""Training data for the heads: the tweet split, the labelled example sets, their features.

* :func:`split_tweets`: the seeded split into training, validation (threshold only),
  random held-out and unseen-company (@jetblue) tweets;
* :func:`sentiment_examples`, :func:`complaint_examples`: training tweets + seed phrases
  (x :data:`SEED_WEIGHT`) + agents' corrections (x :data:`CORRECTION_WEIGHT`), with
  labels and sample weights; :func:`threshold_tweets`: the validation tweets that set the
  complaint threshold;
* :func:`default_feature_layers`, :func:`encode_cached`, :func:`encode_parts`: which
  layers the heads read, and the tweets' features computed once (optionally cached).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from nlp.datasets import (
    HELDOUT_COMPANY,
    Tweets,
    addressed_to_company,
    mentions_handle,
    weak_complaint_labels,
)
from nlp.encoder import Encoder
from nlp.heads import SENTIMENTS

RANDOM_SEED = 20261123
HELDOUT_FRACTION = 0.15
VALIDATION_FRACTION = 0.10
SEED_WEIGHT = 5.0
CORRECTION_WEIGHT = 5.0
PARTS = ("train", "validation", "heldout", "company")

Progress = Callable[[str], object]


def default_feature_layers(n_layers: int) -> tuple[int, ...]:
    """Layers 6, 9 and 12 of a 12-layer encoder (half, three quarters, last)."""
    return tuple(sorted({max(1, n_layers // 2), max(1, 3 * n_layers // 4), n_layers}))


def split_tweets(texts: Sequence[str], labels: np.ndarray, limit: int | None) -> dict:
    """Seeded split into ``train``, ``validation``, ``heldout`` and ``company`` indices."""
    from sklearn.model_selection import train_test_split

    rng = np.random.default_rng(RANDOM_SEED)
    chosen = np.sort(rng.permutation(len(texts))[: min(limit or len(texts), len(texts))])
    company = np.array([i for i in chosen if mentions_handle(texts[i], HELDOUT_COMPANY)], int)
    rest = np.setdiff1d(chosen, company)
    train, heldout = train_test_split(
        rest, test_size=HELDOUT_FRACTION, random_state=RANDOM_SEED, stratify=labels[rest]
    )
    train, validation = train_test_split(
        train, test_size=VALIDATION_FRACTION, random_state=RANDOM_SEED, stratify=labels[train]
    )
    return {
        "train": np.sort(train),
        "validation": np.sort(validation),
        "heldout": np.sort(heldout),
        "company": company,
    }


def encode_cached(
    encoder: Encoder, texts: list[str], cache_dir: Path | None, tag: str, progress: Progress
) -> tuple[np.ndarray, np.ndarray]:
    """``encoder.encode(texts)``, reusing ``cache_dir/<hash>.npz`` for the same texts."""
    settings = [encoder.backend, repr(encoder.feature_layers), str(encoder.max_length)]
    key_src = "\n".join([tag, *settings, encoder.prefix, "normalize_post.v1", *texts])
    key = hashlib.sha256(key_src.encode("utf-8")).hexdigest()[:24]
    path = Path(cache_dir) / f"enc-{key}.npz" if cache_dir else None
    if path and path.is_file():
        progress(f"reusing cached features {path}")
        with np.load(path) as data:
            return data["emb"], data["feats"]
    started = time.perf_counter()
    embs, feats = [], []
    step = 2000
    for start in range(0, len(texts), step):
        e, f = encoder.encode(texts[start : start + step])
        embs.append(e)
        feats.append(f)
        done = min(start + step, len(texts))
        rate = done / max(time.perf_counter() - started, 1e-9)
        progress(f"encoded {done}/{len(texts)} texts ({rate:.0f}/s)")
    emb = np.vstack(embs) if embs else np.zeros((0, encoder.dim), np.float32)
    feat = np.vstack(feats) if feats else np.zeros((0, encoder.feature_dim), np.float32)
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, emb=emb, feats=feat)
    return emb, feat


def encode_parts(
    encoder: Encoder,
    tweets: Tweets,
    parts: dict,
    cache_dir: Path | None,
    tag: str,
    progress: Progress,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Features and embeddings of every part's tweets, encoded in one (cached) pass."""
    order = np.concatenate([parts[k] for k in PARTS])
    emb_all, feat_all = encode_cached(
        encoder, [tweets.texts[i] for i in order], cache_dir, tag, progress
    )
    pos, feats, embs = 0, {}, {}
    for k in PARTS:
        n = len(parts[k])
        feats[k], embs[k] = feat_all[pos : pos + n], emb_all[pos : pos + n]
        pos += n
    return feats, embs


def sentiment_examples(
    tweets: Tweets, parts: dict, seeds: Sequence[dict], extra: Sequence[dict]
) -> tuple[list[str], np.ndarray, np.ndarray, list[int]]:
    """Sentiment training set: training tweets, seeds (x5), corrections with a sentiment (x5).

    Returns texts, labels, weights and the indices into ``extra`` that were used.
    """
    train = parts["train"]
    ex = [i for i, c in enumerate(extra) if c.get("sentiment") in SENTIMENTS]
    texts = [tweets.texts[i] for i in train] + [s["text"] for s in seeds]
    texts += [extra[i]["text"] for i in ex]
    labels = np.concatenate(
        [
            tweets.labels[train],
            [SENTIMENTS.index(s["sentiment"]) for s in seeds],
            [SENTIMENTS.index(extra[i]["sentiment"]) for i in ex],
        ]
    ).astype(np.int64)
    weights = np.concatenate(
        [np.ones(len(train)), np.full(len(seeds), SEED_WEIGHT), np.full(len(ex), CORRECTION_WEIGHT)]
    )
    return texts, labels, weights, ex


def complaint_examples(
    tweets: Tweets, parts: dict, seeds: Sequence[dict], extra: Sequence[dict]
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Complaint training set: training tweets (weak labels, see
    :func:`nlp.datasets.weak_complaint_labels`), seeds (x5), corrections that say whether
    the text is a complaint (x5).

    Returns labels, weights and the indices into ``extra`` that were used.
    """
    negative = SENTIMENTS.index("negative")
    train = parts["train"]
    y_sent = tweets.labels[train]
    y_comp = weak_complaint_labels([tweets.texts[i] for i in train], y_sent, negative)
    seed_comp = np.array([int(bool(s["complaint"])) for s in seeds], dtype=np.int64)
    ex_comp = [i for i, c in enumerate(extra) if c.get("is_complaint") is not None]
    ones = np.ones(len(train))
    y_c = np.concatenate(
        [y_comp, seed_comp, [int(bool(extra[i]["is_complaint"])) for i in ex_comp]]
    ).astype(np.int64)
    w_c = np.concatenate(
        [ones, np.full(len(seeds), SEED_WEIGHT), np.full(len(ex_comp), CORRECTION_WEIGHT)]
    )
    return y_c, w_c, ex_comp


def threshold_tweets(tweets: Tweets, parts: dict) -> tuple[np.ndarray, np.ndarray]:
    """The validation tweets that set the complaint threshold: ``(mask, labels)``.

    Those addressed to a company (what the service sees: posts about a brand), negative =
    complaint; ``mask`` selects them from the validation part.  Seeds are trained on, so
    not used.
    """
    negative = SENTIMENTS.index("negative")
    val = parts["validation"]
    addressed = np.array([addressed_to_company(tweets.texts[i]) for i in val], dtype=bool)
    if addressed.sum() < 20:  # tiny samples (tests): fall back to all validation tweets
        addressed[:] = True
    y_v = (tweets.labels[val][addressed] == negative).astype(np.int64)
    return addressed, y_v
