"""Small classifier heads applied to the encoder's pooled features.

Everything lives in two files under a heads directory:

* ``heads.npz`` - float arrays: for each of ``sentiment`` and ``complaint`` a small
  MLP (``<name>_mu``/``<name>_sd`` feature standardisation, ``<name>_w1``/``<name>_b1``
  hidden layer with ReLU, ``<name>_w2``/``<name>_b2`` output layer; a head without a
  hidden layer stores empty ``w1``/``b1``) or an ensemble of them (``<name>.<k>_<part>``,
  probabilities averaged), plus ``type_seed_emb`` (n, d) and
  ``type_seed_label`` (n,) indices into the type list;
* ``heads.json`` - version, feature layers, class names, thresholds, training figures.

The heads read *features* (the L2-normalised mean-pooled outputs of
``feature_layers``, concatenated; see :meth:`nlp.encoder.Encoder.encode`); the
complaint-type prototypes compare *embeddings* (the last layer).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

SENTIMENTS = ("negative", "neutral", "positive")
COMPLAINT_TYPES = (
    "delivery",
    "product_quality",
    "billing",
    "customer_service",
    "technical",
    "pricing",
    "other",
)
DEFAULT_HEADS_DIR = Path(__file__).resolve().parent / "heads"
NPZ_NAME = "heads.npz"
JSON_NAME = "heads.json"
_MLP_PARTS = ("mu", "sd", "w1", "b1", "w2", "b2")


@dataclass
class Mlp:
    """``softmax(W2 relu(W1 (x - mu) / sd + b1) + b2)``; without ``w1`` it is linear."""

    w2: np.ndarray  # (classes, hidden or features)
    b2: np.ndarray  # (classes,)
    w1: np.ndarray | None = None  # (hidden, features)
    b1: np.ndarray | None = None  # (hidden,)
    mu: np.ndarray | None = None  # (features,)
    sd: np.ndarray | None = None  # (features,)

    @classmethod
    def linear(cls, w: np.ndarray, b: np.ndarray) -> Mlp:
        """A plain softmax-linear head."""
        return cls(w2=np.asarray(w, np.float32), b2=np.asarray(b, np.float32))

    @property
    def in_dim(self) -> int:
        """Feature width the head expects."""
        return int((self.w1 if self.w1 is not None else self.w2).shape[1])

    def logits(self, x: np.ndarray) -> np.ndarray:
        """Raw output scores ``(n, classes)``."""
        x = np.asarray(x, np.float32)
        if self.mu is not None:
            x = (x - self.mu) / self.sd
        if self.w1 is not None:
            x = np.maximum(x @ self.w1.T + self.b1, 0.0)
        return x @ self.w2.T + self.b2

    def probs(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities ``(n, classes)``."""
        return softmax(self.logits(x))

    def arrays(self, name: str) -> dict[str, np.ndarray]:
        """The arrays to store under ``<name>_<part>`` (missing parts as empty arrays)."""
        return {
            f"{name}_{part}": np.asarray(
                getattr(self, part) if getattr(self, part) is not None else [], np.float32
            )
            for part in _MLP_PARTS
        }

    @classmethod
    def from_arrays(cls, data: dict[str, np.ndarray], name: str) -> Mlp:
        """Inverse of :meth:`arrays`."""
        parts: dict[str, Any] = {}
        for part in _MLP_PARTS:
            value = data[f"{name}_{part}"].astype(np.float32)
            parts[part] = value if value.size else None
        return cls(**parts)


@dataclass
class MlpEnsemble:
    """Several :class:`Mlp` heads; probabilities averaged (weighted if ``weights``)."""

    members: list[Mlp]
    weights: list[float] | None = None

    @property
    def in_dim(self) -> int:
        """Feature width the heads expect."""
        return self.members[0].in_dim

    def probs(self, x: np.ndarray) -> np.ndarray:
        """Mean class probabilities ``(n, classes)``."""
        return np.average([m.probs(x) for m in self.members], axis=0, weights=self.weights)

    def arrays(self, name: str) -> dict[str, np.ndarray]:
        """``<name>.<k>_<part>`` arrays for each member (and ``<name>_weights``)."""
        out: dict[str, np.ndarray] = {}
        for k, member in enumerate(self.members):
            out.update(member.arrays(f"{name}.{k}"))
        if self.weights is not None:
            out[f"{name}_weights"] = np.asarray(self.weights, np.float32)
        return out

    @classmethod
    def from_arrays(cls, data: dict[str, np.ndarray], name: str) -> Mlp | MlpEnsemble:
        """One :class:`Mlp` (``<name>_w2`` present) or the ensemble stored by :meth:`arrays`."""
        if f"{name}_w2" in data:
            return Mlp.from_arrays(data, name)
        members: list[Mlp] = []
        while f"{name}.{len(members)}_w2" in data:
            members.append(Mlp.from_arrays(data, f"{name}.{len(members)}"))
        if not members:
            raise KeyError(f"no {name} head in the heads file")
        weights = data.get(f"{name}_weights")
        return cls(members, None if weights is None else [float(w) for w in weights])


@dataclass
class Heads:
    """Sentiment and complaint MLPs plus complaint-type prototypes."""

    version: str
    sentiment: Mlp | MlpEnsemble  # 3 classes in SENTIMENTS order
    complaint: Mlp | MlpEnsemble  # 2 classes: not a complaint, complaint
    type_seed_emb: np.ndarray
    type_seed_label: np.ndarray
    feature_layers: tuple[int, ...] = (12,)
    complaint_threshold: float = 0.5
    type_top_k: int = 3
    type_min_similarity: float = 0.0
    meta: dict = field(default_factory=dict)

    @property
    def dim(self) -> int:
        """Embedding width the complaint-type prototypes expect."""
        return int(self.type_seed_emb.shape[1])

    def layers_for(self, n_layers: int) -> tuple[int, ...]:
        """The feature layers on an encoder with ``n_layers`` layers.

        The heads were trained on a 12-layer encoder; a shallower one (the tiny test
        model) gets the same relative depths, so the committed heads still apply.
        """
        trained = int(self.meta.get("encoder_layers", max(self.feature_layers)))
        if n_layers >= trained:
            return self.feature_layers
        return tuple(max(1, round(x * n_layers / trained)) for x in self.feature_layers)

    @property
    def feature_dim(self) -> int:
        """Feature width the MLP heads expect."""
        return self.sentiment.in_dim

    @classmethod
    def load(cls, heads_dir: Path | None = None) -> Heads:
        """Read ``heads.npz`` and ``heads.json`` from ``heads_dir`` (default: committed heads)."""
        heads_dir = Path(heads_dir) if heads_dir else DEFAULT_HEADS_DIR
        meta = json.loads((heads_dir / JSON_NAME).read_text(encoding="utf-8"))
        if tuple(meta["sentiment"]["classes"]) != SENTIMENTS:
            raise ValueError(f"{heads_dir}: unexpected sentiment classes")
        if tuple(meta["complaint_type"]["types"]) != COMPLAINT_TYPES:
            raise ValueError(f"{heads_dir}: unexpected complaint types")
        with np.load(heads_dir / NPZ_NAME) as arrays:
            data = {k: arrays[k] for k in arrays.files}
        return cls(
            version=str(meta["version"]),
            sentiment=MlpEnsemble.from_arrays(data, "sentiment"),
            complaint=MlpEnsemble.from_arrays(data, "complaint"),
            type_seed_emb=data["type_seed_emb"].astype(np.float32),
            type_seed_label=data["type_seed_label"].astype(np.int64),
            feature_layers=tuple(int(x) for x in meta["feature_layers"]),
            complaint_threshold=float(meta["complaint"]["threshold"]),
            type_top_k=int(meta["complaint_type"]["top_k"]),
            type_min_similarity=float(meta["complaint_type"]["min_similarity"]),
            meta=meta,
        )

    def save(self, heads_dir: Path) -> None:
        """Write the heads to ``heads_dir`` (MLPs float32, prototypes float16, JSON)."""
        heads_dir = Path(heads_dir)
        heads_dir.mkdir(parents=True, exist_ok=True)
        # Typed as Any so that numpy's stub does not read a key as its ``allow_pickle`` flag.
        head_arrays: dict[str, Any] = {
            **self.sentiment.arrays("sentiment"),
            **self.complaint.arrays("complaint"),
        }
        np.savez_compressed(
            heads_dir / NPZ_NAME,
            **head_arrays,
            type_seed_emb=self.type_seed_emb.astype(np.float16),
            type_seed_label=self.type_seed_label.astype(np.int16),
        )
        meta = dict(self.meta)
        meta["version"] = self.version
        meta["feature_layers"] = list(self.feature_layers)
        meta.setdefault("encoder_layers", max(self.feature_layers))
        meta.setdefault("sentiment", {})["classes"] = list(SENTIMENTS)
        meta.setdefault("complaint", {})["threshold"] = self.complaint_threshold
        meta.setdefault("complaint_type", {}).update(
            types=list(COMPLAINT_TYPES),
            top_k=self.type_top_k,
            min_similarity=self.type_min_similarity,
        )
        text = json.dumps(meta, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
        (heads_dir / JSON_NAME).write_text(text, encoding="utf-8")

    def sentiment_probs(self, feats: np.ndarray) -> np.ndarray:
        """Probabilities ``(n, 3)`` in :data:`SENTIMENTS` order."""
        return self.sentiment.probs(feats)

    def complaint_probs(self, feats: np.ndarray) -> np.ndarray:
        """Complaint-head probabilities ``(n,)``."""
        return self.complaint.probs(feats)[:, 1]

    def type_scores(self, emb: np.ndarray) -> np.ndarray:
        """Per-type similarity ``(n, n_types)``: mean of the top-k seed cosines of each type."""
        sims = emb @ self.type_seed_emb.T
        scores = np.full((emb.shape[0], len(COMPLAINT_TYPES)), -1.0, dtype=np.float32)
        for t in range(len(COMPLAINT_TYPES)):
            cols = sims[:, self.type_seed_label == t]
            if cols.shape[1] == 0:
                continue
            k = min(self.type_top_k, cols.shape[1])
            scores[:, t] = np.sort(cols, axis=1)[:, -k:].mean(axis=1)
        return scores

    def complaint_types(self, emb: np.ndarray) -> list[str]:
        """Best-matching complaint type per row; ``"other"`` when nothing is similar enough."""
        scores = self.type_scores(emb)
        best = scores.argmax(axis=1)
        return [
            COMPLAINT_TYPES[b] if scores[i, b] >= self.type_min_similarity else "other"
            for i, b in enumerate(best)
        ]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function."""
    return 0.5 * (1.0 + np.tanh(0.5 * x))
