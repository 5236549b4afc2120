"""Sentence encoder: a transformers encoder with E5-style mean pooling.

One :class:`Encoder` turns texts into L2-normalised embeddings.  Texts are
de-duplicated within a call, sorted by token length and run in batches so that
padding stays small; results come back in the caller's order.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

DEFAULT_PREFIX = "query: "
DEFAULT_MAX_LENGTH = 128
DEFAULT_BATCH_SIZE = 32
THREADS_ENV = "OTKLIK_NLP_THREADS"


def configure_threads(threads: int | None = None) -> int:
    """Set torch intra-op threads to ``threads``, ``$OTKLIK_NLP_THREADS`` or the CPUs we may use."""
    if threads is None:
        env = os.environ.get(THREADS_ENV, "").strip()
        threads = int(env) if env.isdigit() and int(env) > 0 else None
    if threads is None:
        try:
            threads = len(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            threads = os.cpu_count() or 1
    threads = max(1, threads)
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


class Encoder:
    """Mean-pooled, L2-normalised sentence embeddings from a BERT-style encoder."""

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer,
        *,
        prefix: str = DEFAULT_PREFIX,
        max_length: int = DEFAULT_MAX_LENGTH,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.prefix = prefix
        self.max_length = max_length
        self.batch_size = batch_size
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.dim = int(model.config.hidden_size)
        self._lock = threading.Lock()

    @classmethod
    def from_dir(cls, path: Path, **kwargs) -> Encoder:
        """Load model and tokenizer from a local directory (never touches the network)."""
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        model = AutoModel.from_pretrained(str(path), local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        return cls(model, tokenizer, **kwargs)

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids (with specials, prefix added, truncated to ``max_length``)."""
        if not texts:
            return []
        enc = self.tokenizer(
            [self.prefix + t for t in texts],
            truncation=True,
            max_length=self.max_length,
            add_special_tokens=True,
        )
        return [list(ids) for ids in enc["input_ids"]]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` into an ``(n, dim)`` float32 array of unit vectors."""
        texts = [t if isinstance(t, str) else str(t or "") for t in texts]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        unique: dict[str, int] = {}
        slots = [unique.setdefault(t, len(unique)) for t in texts]
        vectors = self._embed_unique(list(unique))
        out[:] = vectors[slots]
        return out

    def _embed_unique(self, texts: list[str]) -> np.ndarray:
        # Fast tokenizers are not safe to call from several threads at once, and the
        # forward passes already use every core: one call at a time.
        with self._lock:
            return self._embed_locked(texts)

    def _embed_locked(self, texts: list[str]) -> np.ndarray:
        ids = self.token_ids(texts)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        result = np.zeros((len(ids), self.dim), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                chunk = order[start : start + self.batch_size]
                result[chunk] = self._forward([ids[i] for i in chunk])
        return result

    def _forward(self, batch: list[list[int]]) -> np.ndarray:
        width = max(len(ids) for ids in batch)
        input_ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, ids in enumerate(batch):
            input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            mask[row, : len(ids)] = 1
        hidden = self.model(
            input_ids=input_ids,
            attention_mask=mask,
            token_type_ids=torch.zeros_like(input_ids),
        ).last_hidden_state
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
        pooled = torch.nn.functional.normalize(pooled, p=2.0, dim=-1)
        return pooled.float().numpy()
