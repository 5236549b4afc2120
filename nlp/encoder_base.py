"""The :class:`Encoder`: texts in, mean-pooled unit vectors out (float32 torch forward).

It turns texts into L2-normalised embeddings (the last layer, mean-pooled) and, for the
heads, into *features*: the mean-pooled, L2-normalised outputs of a few chosen layers.
Texts are de-duplicated within a call, looked up in a small LRU cache of recent texts,
sorted by token length and run in batches so that padding stays small; results come
back in the caller's order.  Subclasses in :mod:`nlp.encoder_backends` change only the
forward pass (and the weights they load).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from nlp.tokenizing import DEFAULT_MAX_LENGTH, DEFAULT_PREFIX, load_tokenizer, normalize_post

if TYPE_CHECKING:
    import torch

DEFAULT_BATCH_SIZE = 32
DEFAULT_CACHE_SIZE = 4096


class Encoder:
    """Mean-pooled, L2-normalised sentence embeddings from a BERT-style encoder (torch).

    ``feature_layers`` are hidden-state indices (0 = embeddings, ``n_layers`` = last)
    whose pooled outputs :meth:`encode` returns for the heads.
    """

    backend = "torch-fp32"
    pad_multiple = 1  # batches are padded to a multiple of this many tokens
    weights_variant: str | None = None  # loads model.<variant>.safetensors when present

    def __init__(
        self,
        model: Any,  # a transformers model; None for a backend with its own _forward
        tokenizer: Any,  # a transformers tokenizer or a LightTokenizer (load_tokenizer)
        *,
        prefix: str = DEFAULT_PREFIX,
        max_length: int = DEFAULT_MAX_LENGTH,
        batch_size: int = DEFAULT_BATCH_SIZE,
        feature_layers: Sequence[int] | None = None,
        cache_size: int = DEFAULT_CACHE_SIZE,
        n_layers: int | None = None,
        dim: int | None = None,
        normalize: bool = True,
    ) -> None:
        self.normalize = normalize
        self.model: Any = model.eval() if model is not None else None
        self.tokenizer = tokenizer
        self.prefix = prefix
        self.max_length = max_length
        self.batch_size = batch_size
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        config: Any = getattr(model, "config", None)  # read only when dim/n_layers not given
        self.dim = int(dim if dim is not None else config.hidden_size)
        self.n_layers = int(n_layers if n_layers is not None else config.num_hidden_layers)
        self.cache_size = cache_size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.set_feature_layers(feature_layers)

    @classmethod
    def from_dir(cls, path: Path, **kwargs: Any) -> Encoder:
        """Load model and tokenizer from a local directory (never touches the network)."""
        from transformers import AutoModel
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        variant = cls.weights_variant
        if variant and not (Path(path) / f"model.{variant}.safetensors").is_file():
            variant = None  # an older build: the float32 weights are converted on loading
        model = AutoModel.from_pretrained(
            str(path), local_files_only=True, dtype=cls.dtype(), variant=variant
        )
        return cls(model, load_tokenizer(path), **kwargs)

    @staticmethod
    def dtype() -> torch.dtype:
        """The torch dtype the model's weights and activations use."""
        import torch

        return torch.float32

    def set_feature_layers(self, layers: Sequence[int] | None) -> None:
        """Choose the layers :meth:`encode` returns as features (default: the last one)."""
        layers = tuple(int(x) for x in (layers or (self.n_layers,)))
        if any(not 0 <= x <= self.n_layers for x in layers):
            raise ValueError(f"feature layers {layers} outside 0..{self.n_layers}")
        with self._lock:
            self.feature_layers = layers
            # The last layer is always computed: it is the embedding.
            self._rows = (*layers, self.n_layers)
            self._cache.clear()

    @property
    def feature_dim(self) -> int:
        """Width of the feature vectors :meth:`encode` returns."""
        return self.dim * len(self.feature_layers)

    def clear_cache(self) -> None:
        """Forget the cached texts."""
        with self._lock:
            self._cache.clear()

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids (with specials, prefix added, truncated to ``max_length``)."""
        if not texts:
            return []
        enc = self.tokenizer(
            [self.prefix + (normalize_post(t) if self.normalize else t) for t in texts],
            truncation=True,
            max_length=self.max_length,
            add_special_tokens=True,
        )
        return [list(ids) for ids in enc["input_ids"]]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` into an ``(n, dim)`` float32 array of unit vectors."""
        return self.encode(texts)[0]

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(embeddings (n, dim), features (n, feature_dim))``, both float32, input order.

        Features are the chosen layers' pooled outputs, each L2-normalised, concatenated.
        """
        texts = [t if isinstance(t, str) else str(t or "") for t in texts]
        pooled = self._pooled(texts)  # (n, k + 1, dim), unit rows
        emb = np.ascontiguousarray(pooled[:, -1])
        feats = np.ascontiguousarray(pooled[:, :-1].reshape(len(texts), self.feature_dim))
        return emb, feats

    def _pooled(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), len(self._rows), self.dim), dtype=np.float32)
        if not texts:
            return out
        # Fast tokenizers are not safe to call from several threads at once, and the
        # forward passes already use every core: one call at a time.
        with self._lock:
            unique: dict[str, int] = {}
            slots = [unique.setdefault(t, len(unique)) for t in texts]
            values: list[np.ndarray | None] = [self._cache_get(t) for t in unique]
            missing = [t for t, v in zip(unique, values, strict=True) if v is None]
            if missing:
                fresh = self._encode_locked(missing)
                it = iter(range(len(missing)))
                for i, v in enumerate(values):
                    if v is None:
                        values[i] = fresh[next(it)]
                for text, value in zip(missing, fresh, strict=True):
                    self._cache_put(text, value)
        stacked = np.stack(cast(list[np.ndarray], values))  # every None was filled above
        out[:] = stacked[slots]
        return out

    def _cache_get(self, text: str) -> np.ndarray | None:
        value = self._cache.get(text)
        if value is not None:
            self._cache.move_to_end(text)
        return value

    def _cache_put(self, text: str, value: np.ndarray) -> None:
        if self.cache_size <= 0:
            return
        self._cache[text] = value
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def _encode_locked(self, texts: list[str]) -> np.ndarray:
        ids = self.token_ids(texts)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        result = np.zeros((len(ids), len(self._rows), self.dim), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            batch = [ids[i] for i in chunk]
            width = -(-max(len(x) for x in batch) // self.pad_multiple) * self.pad_multiple
            input_ids = np.full((len(batch), width), self.pad_id, dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for row, x in enumerate(batch):
                input_ids[row, : len(x)] = x
                mask[row, : len(x)] = 1
            pooled = self._forward(input_ids, mask)[:, list(self._rows)]
            norms = np.linalg.norm(pooled, axis=-1, keepdims=True)
            result[chunk] = pooled / np.maximum(norms, 1e-12)
        return result

    def _forward(self, input_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Mean-pooled hidden states of every layer: ``(batch, n_layers + 1, dim)``."""
        import torch

        ids_t, mask_t = torch.from_numpy(input_ids), torch.from_numpy(mask)
        with torch.inference_mode():
            out = self.model(
                input_ids=ids_t,
                attention_mask=mask_t,
                token_type_ids=torch.zeros_like(ids_t),
                output_hidden_states=True,
            )
            # (b, L + 1, t, d); pooled in float32 whatever the model's dtype
            hidden = torch.stack(out.hidden_states, dim=1).float()
            weights = mask_t[:, None, :, None].to(hidden.dtype)
            pooled = (hidden * weights).sum(dim=2) / weights.sum(dim=2).clamp(min=1.0)
        return pooled.numpy()
