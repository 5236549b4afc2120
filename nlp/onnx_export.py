"""Export the rebuilt encoder to an int8 ONNX graph (the service's fast path).

Steps (about 25 s for multilingual-e5-small on 2 cores, done once by ``otklik nlp build``):

1. wrap the transformers model (eager attention, so ONNX Runtime can fuse it) in a
   module that returns every layer's mean-pooled hidden state, ``pooled`` of shape
   ``(batch, n_layers + 1, hidden)``, and trace it with the TorchScript exporter;
2. fuse attention, GELU and layer norms with ONNX Runtime's transformer optimizer;
3. quantise the MatMul weights to int8 (dynamic quantisation: activations are
   quantised per batch at run time).

Only ``model.int8.onnx`` is kept; the float graphs are written to a temporary directory.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from nlp.encoder import ONNX_NAME

OPSET = 17


def _pooling_module(model):
    import torch

    class PooledLayers(torch.nn.Module):
        def __init__(self, inner) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            out = self.inner(
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=torch.zeros_like(input_ids),
                output_hidden_states=True,
            )
            hidden = torch.stack(out.hidden_states, dim=1)  # (b, L + 1, t, d)
            weights = attention_mask[:, None, :, None].to(hidden.dtype)
            return (hidden * weights).sum(dim=2) / weights.sum(dim=2).clamp(min=1.0)

    return PooledLayers(model).eval()


@contextmanager
def _quiet_root_logger():
    """The quantiser logs a pre-processing hint through the root logger; keep it out."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def export_int8(
    encoder_dir: Path, out_path: Path | None = None, progress: Callable[[str], object] = print
) -> Path:
    """Write ``encoder_dir/model.int8.onnx`` (or ``out_path``) and return its path."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers import optimizer
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    encoder_dir = Path(encoder_dir)
    out_path = Path(out_path) if out_path else encoder_dir / ONNX_NAME
    model = AutoModel.from_pretrained(
        str(encoder_dir), local_files_only=True, attn_implementation="eager"
    )
    config = model.config
    wrapper = _pooling_module(model)
    # Trace with one padded row so the attention mask stays a real input of the graph.
    ids = torch.ones((2, 8), dtype=torch.long)
    mask = torch.ones((2, 8), dtype=torch.long)
    mask[1, 5:] = 0
    with tempfile.TemporaryDirectory(dir=out_path.parent) as tmp:
        fp32 = Path(tmp) / "model.onnx"
        fused = Path(tmp) / "model.fused.onnx"
        # The TorchScript exporter is deprecated in favour of torch.export (which needs
        # onnxscript) and warns about it and about trace-time constants; the traced graph
        # is checked against torch in tests/nlp/test_nlp_onnx.py.
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapper,
                (ids, mask),
                str(fp32),
                input_names=["input_ids", "attention_mask"],
                output_names=["pooled"],
                dynamic_axes={
                    "input_ids": {0: "batch", 1: "tokens"},
                    "attention_mask": {0: "batch", 1: "tokens"},
                    "pooled": {0: "batch"},
                },
                opset_version=OPSET,
                dynamo=False,
            )
        progress("exported the encoder to ONNX; fusing attention and layer norms")
        with _quiet_root_logger(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # optimizer/quantizer: onnx API deprecations
            opt = optimizer.optimize_model(
                str(fp32),
                model_type="bert",
                num_heads=int(config.num_attention_heads),
                hidden_size=int(config.hidden_size),
                opt_level=1,
                use_gpu=False,
            )
            opt.save_model_to_file(str(fused))
            progress("quantising weights to int8")
            import onnx

            quantize_dynamic(
                str(fused),
                str(out_path),
                weight_type=QuantType.QInt8,
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )
    return out_path
