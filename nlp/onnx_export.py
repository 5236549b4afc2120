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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nlp.encoder import ONNX_NAME

if TYPE_CHECKING:
    import numpy as np
    import onnx
    import torch

    from nlp.finetune import HiddenReader

OPSET = 17


def _pooling_module(model: Any) -> torch.nn.Module:
    import torch

    class PooledLayers(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
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
def _quiet_root_logger() -> Iterator[None]:
    """The quantiser logs a pre-processing hint through the root logger; keep it out."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def float_nodes(graph: onnx.GraphProto, layers: Sequence[int]) -> list[str]:
    """Names of the weight-bearing nodes of encoder ``layers`` (0-based) in a fused graph.

    The fusion names attention nodes ``Attention_<layer>`` in layer order; the dense
    projections keep the exporter's ``/inner/encoder/layer.<i>/...`` names.
    """
    wanted = {f"Attention_{i}" for i in layers}
    prefixes = tuple(f"/inner/encoder/layer.{i}/" for i in layers)
    return [
        n.name
        for n in graph.node
        if n.op_type in ("Attention", "MatMul")
        and (n.name in wanted or n.name.startswith(prefixes))
    ]


def export_int8(
    encoder_dir: Path,
    out_path: Path | None = None,
    progress: Callable[[str], object] = print,
    float_layers: Sequence[int] = (),
) -> Path:
    """Write ``encoder_dir/model.int8.onnx`` (or ``out_path``) and return its path.

    ``float_layers`` (0-based) keep float32 weights: fine-tuned top layers lose to
    dynamic int8 (unseen-company macro-F1 0.746-0.754 with int8 layers, 0.765 all
    float32), the original layers do not.
    """
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

            excluded = float_nodes(onnx.load(str(fused)).graph, float_layers)
            if float_layers and len(excluded) != 4 * len(float_layers):
                raise RuntimeError(
                    f"expected 4 weight nodes per float layer {list(float_layers)}, "
                    f"found {len(excluded)}: the fused graph's names changed"
                )
            quantize_dynamic(
                str(fused),
                str(out_path),
                weight_type=QuantType.QInt8,
                nodes_to_exclude=excluded,
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )
    return out_path


def layer_input_reader(encoder_dir: Path, layer: int, n_layers: int) -> HiddenReader:
    """``read(input_ids, mask) -> (batch, tokens, dim)``: what enters ``layer`` (0-based).

    Read from the graph the service runs, so the tuned top layers learn on the inputs
    they will get (int8 lower layers move them: cosine 0.95 to float32 at layer 10).
    Each fused layer ends in two ``SkipLayerNormalization`` nodes (after attention and
    after the feed-forward block); the second one of layer ``layer - 1`` is its input.
    """
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(Path(encoder_dir) / ONNX_NAME))
    norms = [n for n in model.graph.node if n.op_type == "SkipLayerNormalization"]
    if len(norms) != 2 * n_layers:
        raise RuntimeError(
            f"{encoder_dir}: expected {2 * n_layers} SkipLayerNormalization nodes, "
            f"found {len(norms)}"
        )
    name = norms[2 * layer - 1].output[0]
    model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )

    def read(input_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        feed = {"input_ids": input_ids, "attention_mask": mask}
        return session.run([name], feed)[0]

    return read
