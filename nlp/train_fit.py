"""Fitting the heads on features: MLP ensembles, the tuned linear head, the threshold.

* :func:`fit_mlp` / :func:`fit_ensemble`: seeded one-hidden-layer MLPs (ReLU, dropout,
  class-balanced and sample-weighted loss), :data:`ENSEMBLE` per head;
* :func:`with_tuned_head`: adds the fine-tuned linear sentiment head (see
  :mod:`nlp.finetune`) to the ensemble at weight :data:`TUNED_HEAD_WEIGHT`;
* :func:`pick_threshold`: the complaint threshold on the validation tweets;
* :func:`fit_heads`: all of it on the sets from :mod:`nlp.train_data`, giving
  :class:`~nlp.heads.Heads` (complaint type: nearest seed prototypes).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import numpy as np

from nlp.datasets import Tweets
from nlp.finetune import TunedTop
from nlp.heads import COMPLAINT_TYPES, Heads, Mlp, MlpEnsemble
from nlp.scorer import combine_complaint
from nlp.train_data import (
    RANDOM_SEED,
    Progress,
    complaint_examples,
    sentiment_examples,
    threshold_tweets,
)

HEADS_VERSION = "2"  # "+top" is added when the sentiment ensemble has a tuned head
HIDDEN = 256
EPOCHS = 8
ENSEMBLE = 3  # MLPs per head, different seeds, probabilities averaged
BATCH = 128
LEARNING_RATE = 1e-3
WEIGHT_DECAY = 1e-4
TYPE_TOP_K = 3
TYPE_MIN_SIMILARITY = 0.80
TUNED_HEAD_WEIGHT = 0.5  # share of the fine-tuned linear head in the sentiment average


def fit_mlp(
    x: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray,
    n_classes: int,
    progress: Progress,
    name: str,
    seed: int = RANDOM_SEED,
) -> Mlp:
    """Train a one-hidden-layer MLP (seeded; class-balanced, sample-weighted loss)."""
    import torch

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    mu = x.mean(axis=0).astype(np.float32)
    sd = (x.std(axis=0) + 1e-6).astype(np.float32)
    xt = torch.from_numpy(((x - mu) / sd).astype(np.float32))
    yt = torch.from_numpy(y.astype(np.int64))
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    balance = len(y) / (n_classes * np.maximum(counts, 1.0))
    wt = torch.from_numpy((weights * balance[y]).astype(np.float32))
    hidden = min(HIDDEN, max(8, x.shape[1]))
    net = torch.nn.Sequential(
        torch.nn.Dropout(0.1),
        torch.nn.Linear(x.shape[1], hidden),
        torch.nn.ReLU(),
        torch.nn.Dropout(0.3),
        torch.nn.Linear(hidden, n_classes),
    )
    opt = torch.optim.AdamW(net.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    for epoch in range(EPOCHS):
        net.train()
        perm = torch.randperm(len(yt), generator=gen)
        total = 0.0
        for start in range(0, len(yt), BATCH):
            b = perm[start : start + BATCH]
            opt.zero_grad()
            losses = torch.nn.functional.cross_entropy(net(xt[b]), yt[b], reduction="none")
            loss = (losses * wt[b]).sum() / wt[b].sum()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(b)
        progress(f"{name}: epoch {epoch + 1}/{EPOCHS} loss {total / max(len(yt), 1):.4f}")
    first, second = cast(torch.nn.Linear, net[1]), cast(torch.nn.Linear, net[4])
    return Mlp(
        w2=second.weight.detach().numpy().copy(),
        b2=second.bias.detach().numpy().copy(),
        w1=first.weight.detach().numpy().copy(),
        b1=first.bias.detach().numpy().copy(),
        mu=mu,
        sd=sd,
    )


def fit_ensemble(
    x: np.ndarray, y: np.ndarray, weights: np.ndarray, n_classes: int, progress: Progress, name: str
) -> MlpEnsemble:
    """:data:`ENSEMBLE` MLPs with consecutive seeds."""
    return MlpEnsemble(
        [
            fit_mlp(x, y, weights, n_classes, progress, f"{name} #{k + 1}", RANDOM_SEED + k)
            for k in range(ENSEMBLE)
        ]
    )


def with_tuned_head(ensemble: MlpEnsemble, tuned: TunedTop, feature_dim: int) -> MlpEnsemble:
    """``ensemble`` plus the fine-tuned linear head, which reads the last feature layer.

    The last layer's pooled output is the last slice of the features (and the
    embedding), so the head becomes a linear member with zero weights elsewhere.
    """
    w = np.zeros((tuned.head_w.shape[0], feature_dim), np.float32)
    w[:, feature_dim - tuned.head_w.shape[1] :] = tuned.head_w
    share = (1.0 - TUNED_HEAD_WEIGHT) / len(ensemble.members)
    return MlpEnsemble(
        [*ensemble.members, Mlp.linear(w, tuned.head_b)],
        [share] * len(ensemble.members) + [TUNED_HEAD_WEIGHT],
    )


def pick_threshold(labels: np.ndarray, probs: np.ndarray) -> tuple[float, float]:
    """Threshold in 0.20..0.80 (step 0.05) for ``probs >= t``; returns ``(threshold, f1)``.

    Takes the highest threshold whose F1 is within 0.005 of the best one, i.e. prefers
    precision where the F1 curve is flat.
    """
    from sklearn.metrics import f1_score

    grid = np.round(np.arange(0.20, 0.801, 0.05), 2)
    f1s = np.array([f1_score(labels, probs >= t, zero_division=0) for t in grid])
    best = int(np.flatnonzero(f1s >= f1s.max() - 0.005).max())
    return float(grid[best]), float(f1s[best])


def fit_heads(
    tweets: Tweets,
    parts: dict,
    feats: dict[str, np.ndarray],
    seeds: Sequence[dict],
    seed_feat: np.ndarray,
    seed_emb: np.ndarray,
    extra: Sequence[dict],
    extra_feat: np.ndarray,
    layers: Sequence[int],
    progress: Progress,
    tuned: TunedTop | None,
) -> tuple[Heads, dict]:
    """Sentiment and complaint ensembles, complaint threshold and type prototypes.

    ``feats``: features of the split's parts (:func:`nlp.train_data.encode_parts`);
    ``seed_*`` / ``extra_feat``: of the seed phrases and the corrections; ``tuned``: the
    tuned top layers' head or ``None``.  Returns the heads and figures about the fit.
    """
    y_c, w_c, ex_comp = complaint_examples(tweets, parts, seeds, extra)
    y_comp = y_c[: len(parts["train"])]  # the training tweets' weak labels
    _, y_s, w_s, ex_sent = sentiment_examples(tweets, parts, seeds, extra)
    x_s = np.vstack([feats["train"], seed_feat, extra_feat[ex_sent]])
    sentiment = fit_ensemble(x_s, y_s, w_s, 3, progress, "sentiment")
    if tuned is not None:
        sentiment = with_tuned_head(sentiment, tuned, x_s.shape[1])
    x_c = np.vstack([feats["train"], seed_feat, extra_feat[ex_comp]])
    complaint = fit_ensemble(x_c, y_c, w_c, 2, progress, "complaint")
    addressed, y_v = threshold_tweets(tweets, parts)
    x_v = feats["validation"][addressed]
    combined = combine_complaint(complaint.probs(x_v)[:, 1], sentiment.probs(x_v))
    threshold, val_f1 = pick_threshold(y_v, combined)
    progress(
        f"complaint threshold {threshold:.2f} (F1 {val_f1:.3f} on {len(y_v)} validation "
        "tweets addressed to companies)"
    )
    typed = [i for i, s in enumerate(seeds) if s.get("complaint") and s.get("type")]
    heads = Heads(
        version=HEADS_VERSION + ("+top" if tuned is not None else ""),
        sentiment=sentiment,
        complaint=complaint,
        type_seed_emb=seed_emb[typed].astype(np.float16).astype(np.float32),
        type_seed_label=np.array([COMPLAINT_TYPES.index(seeds[i]["type"]) for i in typed]),
        feature_layers=tuple(layers),
        complaint_threshold=threshold,
        type_top_k=TYPE_TOP_K,
        type_min_similarity=TYPE_MIN_SIMILARITY,
    )
    info = {
        "complaint": {
            "threshold_validation_f1": round(val_f1, 4),
            "weak_positive_rate_train": round(float(y_comp.mean()), 4) if len(y_comp) else 0.0,
        },
        "n_corrections_sentiment": len(ex_sent),
        "n_corrections_complaint": len(ex_comp),
    }
    return heads, info
