"""Small classifier heads applied to frozen sentence embeddings.

Everything lives in two files under a heads directory:

* ``heads.npz`` - float arrays: ``sentiment_W`` (3, d), ``sentiment_b`` (3,),
  ``complaint_w`` (d,), ``complaint_b`` (1,), ``type_seed_emb`` (n, d) and
  ``type_seed_label`` (n,) indices into the type list;
* ``heads.json`` - version, class names, thresholds and training figures.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

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


@dataclass
class Heads:
    """Linear sentiment and complaint heads plus complaint-type prototypes."""

    version: str
    sentiment_w: np.ndarray
    sentiment_b: np.ndarray
    complaint_w: np.ndarray
    complaint_b: float
    type_seed_emb: np.ndarray
    type_seed_label: np.ndarray
    complaint_threshold: float = 0.5
    type_top_k: int = 3
    type_min_similarity: float = 0.0
    meta: dict = field(default_factory=dict)

    @property
    def dim(self) -> int:
        """Embedding width the heads expect."""
        return int(self.sentiment_w.shape[1])

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
            sentiment_w=data["sentiment_W"].astype(np.float32),
            sentiment_b=data["sentiment_b"].astype(np.float32),
            complaint_w=data["complaint_w"].astype(np.float32),
            complaint_b=float(data["complaint_b"].reshape(-1)[0]),
            type_seed_emb=data["type_seed_emb"].astype(np.float32),
            type_seed_label=data["type_seed_label"].astype(np.int64),
            complaint_threshold=float(meta["complaint"]["threshold"]),
            type_top_k=int(meta["complaint_type"]["top_k"]),
            type_min_similarity=float(meta["complaint_type"]["min_similarity"]),
            meta=meta,
        )

    def save(self, heads_dir: Path) -> None:
        """Write the heads to ``heads_dir`` (arrays as float32/float16, metadata as JSON)."""
        heads_dir = Path(heads_dir)
        heads_dir.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            heads_dir / NPZ_NAME,
            sentiment_W=self.sentiment_w.astype(np.float32),
            sentiment_b=self.sentiment_b.astype(np.float32),
            complaint_w=self.complaint_w.astype(np.float32),
            complaint_b=np.array([self.complaint_b], dtype=np.float32),
            type_seed_emb=self.type_seed_emb.astype(np.float16),
            type_seed_label=self.type_seed_label.astype(np.int16),
        )
        meta = dict(self.meta)
        meta["version"] = self.version
        meta.setdefault("sentiment", {})["classes"] = list(SENTIMENTS)
        meta.setdefault("complaint", {})["threshold"] = self.complaint_threshold
        meta.setdefault("complaint_type", {}).update(
            types=list(COMPLAINT_TYPES),
            top_k=self.type_top_k,
            min_similarity=self.type_min_similarity,
        )
        text = json.dumps(meta, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
        (heads_dir / JSON_NAME).write_text(text, encoding="utf-8")

    def sentiment_probs(self, emb: np.ndarray) -> np.ndarray:
        """Softmax probabilities ``(n, 3)`` in :data:`SENTIMENTS` order."""
        return softmax(emb @ self.sentiment_w.T + self.sentiment_b)

    def complaint_probs(self, emb: np.ndarray) -> np.ndarray:
        """Complaint-head probabilities ``(n,)``."""
        return sigmoid(emb @ self.complaint_w + self.complaint_b)

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
