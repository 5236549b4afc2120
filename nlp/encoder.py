"""Sentence encoder: which backend runs it, and loading it (:func:`load_encoder`).

A BERT-style encoder with E5-style mean pooling.  Three backends share everything but
the forward pass; :func:`pick_backend` chooses one for an encoder directory:

* :class:`Encoder` runs the transformers model in torch (float32);
* :class:`Bf16Encoder` runs it in bfloat16 (CPUs with AMX);
* :class:`OnnxEncoder` runs the int8 ONNX graph (other CPUs).

Where the parts live (all importable from here, the public entry point):

* :mod:`nlp.tokenizing`: post normalisation, prefix and truncation defaults, tokenizers;
* :mod:`nlp.encoder_base`: :class:`Encoder` (de-duplication, LRU cache, length-sorted
  batches, mean pooling, float32 torch forward);
* :mod:`nlp.encoder_backends`: :class:`Bf16Encoder`, :class:`OnnxEncoder`, threads;
* this module: backend choice (:func:`pick_backend`) and :func:`load_encoder`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from nlp.encoder_backends import (
    ONNX_NAME,
    THREADS_ENV,
    Bf16Encoder,
    OnnxEncoder,
    configure_threads,
    usable_threads,
)
from nlp.encoder_base import DEFAULT_BATCH_SIZE, DEFAULT_CACHE_SIZE, Encoder
from nlp.tokenizing import (
    DEFAULT_MAX_LENGTH,
    DEFAULT_PREFIX,
    LightTokenizer,
    load_tokenizer,
    normalize_post,
)

__all__ = [
    "BACKENDS",
    "BACKEND_ENV",
    "BACKEND_NAMES",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_CACHE_SIZE",
    "DEFAULT_MAX_LENGTH",
    "DEFAULT_PREFIX",
    "ONNX_NAME",
    "THREADS_ENV",
    "Bf16Encoder",
    "Encoder",
    "LightTokenizer",
    "OnnxEncoder",
    "configure_threads",
    "cpu_multiplies_bf16",
    "has_onnx",
    "load_encoder",
    "load_tokenizer",
    "normalize_post",
    "pick_backend",
    "usable_threads",
]

BACKEND_ENV = "OTKLIK_NLP_BACKEND"
BACKENDS = ("auto", "bf16", "onnx", "torch")


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


def load_encoder(path: Path, backend: str = "auto", **kwargs: Any) -> Encoder:
    """The encoder in ``path`` run by the backend :func:`pick_backend` chooses."""
    backend = pick_backend(Path(path), backend)
    if backend == "onnx":
        return OnnxEncoder.from_dir(Path(path), **kwargs)
    configure_threads(kwargs.pop("threads", None))
    cls = Bf16Encoder if backend == "bf16" else Encoder
    return cls.from_dir(Path(path), **kwargs)
