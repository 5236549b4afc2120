"""The two faster ways to run the :class:`~nlp.encoder_base.Encoder`, and their threads.

* :class:`Bf16Encoder` runs the torch model in bfloat16: on CPUs with AMX (Intel Xeon
  4th generation and later) as fast as int8 and as close to float32 as the heads can tell;
* :class:`OnnxEncoder` runs the int8 ONNX graph written by
  :func:`nlp.onnx_export.export_int8` (the fast path on other CPUs, ~3x faster than
  float32 and 440 MB smaller, at about 0.01 less sentiment macro-F1).

Threads: :func:`usable_threads` (``$OTKLIK_NLP_THREADS`` or every usable CPU).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nlp.encoder_base import Encoder
from nlp.tokenizing import load_tokenizer

if TYPE_CHECKING:
    import torch

THREADS_ENV = "OTKLIK_NLP_THREADS"
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
    def dtype() -> torch.dtype:
        import torch

        return torch.bfloat16


class OnnxEncoder(Encoder):
    """The same encoder run by ONNX Runtime from the int8 graph in the encoder directory.

    The graph (see :mod:`nlp.onnx_export`) already returns every layer mean-pooled:
    ``pooled`` of shape ``(batch, n_layers + 1, dim)``.
    """

    backend = "onnx-int8"

    def __init__(
        self, session: Any, tokenizer: Any, *, n_layers: int, dim: int, **kwargs: Any
    ) -> None:
        super().__init__(None, tokenizer, n_layers=n_layers, dim=dim, **kwargs)
        self.session = session

    @classmethod
    def from_dir(cls, path: Path, threads: int | None = None, **kwargs: Any) -> OnnxEncoder:
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
