"""Fine-tune the encoder's top layers for sentiment: the one part of the encoder we train.

Tuning the top quarter of the encoder (layers 10-12 of 12) with a linear sentiment
head on the pooled last layer was meant to lift sentiment on companies never seen in
training.  With the int8 encoder it did (0.756 -> 0.765 on @jetblue, but only with the
layers in float32); with the bfloat16 encoder the frozen heads do as well or better
(@jetblue 0.762 frozen vs 0.761 tuned, @southwestair held out 0.788 vs 0.778).  So it is
opt-in (``otklik nlp train --finetune-top``); see ``nlp/README.md`` for the figures.

Recipe (seeded; about 7 minutes on 2 cores for the 27k training tweets):

1. the hidden states entering the top layers are computed once and cached (float16),
   by the torch model, or by the ONNX graph when that is what the service runs, so the
   layers learn on the inputs they will get (int8 layers move them: cosine 0.95 to
   float32 at layer 10);
2. the top layers and a linear head on the L2-normalised mean-pooled last layer
   (times :data:`SCALE`, a fixed temperature) are trained for one epoch with AdamW,
   linear warm-up and decay, class-balanced and sample-weighted cross-entropy;
3. the tuned layers and the head are saved as ``encoder_top.safetensors`` (float16,
   about 10 MB) next to the heads; :mod:`nlp.encoder_build` merges the layers into the
   encoder it builds, :mod:`nlp.train` adds the head to the sentiment ensemble.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

TOP_FILE = "encoder_top.safetensors"
BASE_TOP_FILE = "base_top.safetensors"  # in an encoder dir: the layers before merging
HEAD_PREFIX = "sentiment_head."
LEARNING_RATE = 5e-5
HEAD_LEARNING_RATE = 1e-2
WEIGHT_DECAY = 0.01
BATCH = 32
EPOCHS = 1
WARMUP_STEPS = 50
SCALE = 20.0  # logits = head(SCALE * unit vector): a fixed temperature

Progress = Callable[[str], object]
# ``read(input_ids, mask)``: the hidden states entering the first tuned layer, (b, t, dim)
HiddenReader = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class TunedTop:
    """Tuned top-layer weights (state-dict names) and the linear sentiment head."""

    layers: dict[str, np.ndarray]
    head_w: np.ndarray  # (classes, dim), SCALE folded in
    head_b: np.ndarray  # (classes,)


def top_layer_count(n_layers: int) -> int:
    """How many top layers are tuned: a quarter (3 of 12), at least one."""
    return max(1, n_layers // 4)


def top_layer_names(state_names: Sequence[str], n_layers: int) -> list[str]:
    """State-dict names of the tuned layers' parameters."""
    first = n_layers - top_layer_count(n_layers)
    prefixes = tuple(f"encoder.layer.{i}." for i in range(first, n_layers))
    return [name for name in state_names if name.startswith(prefixes)]


def save_top(path: Path, tuned: TunedTop, meta: dict[str, str]) -> None:
    """Write ``tuned`` as float16 safetensors (``meta``: string metadata)."""
    from safetensors.numpy import save_file

    tensors = {k: np.ascontiguousarray(v, np.float16) for k, v in tuned.layers.items()}
    tensors[HEAD_PREFIX + "weight"] = np.ascontiguousarray(tuned.head_w, np.float32)
    tensors[HEAD_PREFIX + "bias"] = np.ascontiguousarray(tuned.head_b, np.float32)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={"format": "pt", **meta})


def load_top(path: Path) -> TunedTop:
    """Read a file written by :func:`save_top` (weights as float32)."""
    from safetensors.numpy import load_file

    tensors = load_file(str(path))
    try:
        head_w = tensors.pop(HEAD_PREFIX + "weight").astype(np.float32)
        head_b = tensors.pop(HEAD_PREFIX + "bias").astype(np.float32)
    except KeyError as exc:
        raise ValueError(f"{path}: no {exc.args[0]} tensor (not an encoder top file)") from None
    layers = {k: v.astype(np.float32) for k, v in tensors.items()}
    return TunedTop(layers=layers, head_w=head_w, head_b=head_b)


def merge_top(state: dict[str, np.ndarray], tuned: TunedTop, source: str) -> dict:
    """Replace the tuned layers in ``state`` (in place); return the replaced originals.

    Raises ``ValueError`` naming the tensor if the file does not fit this encoder.
    """
    originals = {}
    for name, value in tuned.layers.items():
        if name not in state:
            raise ValueError(f"{source}: tensor {name} is not in the encoder")
        if tuple(state[name].shape) != tuple(value.shape):
            raise ValueError(
                f"{source}: tensor {name} has shape {tuple(value.shape)}, "
                f"the encoder's is {tuple(state[name].shape)}"
            )
        originals[name] = state[name]
        state[name] = value.astype(np.float32)
    return originals


def _pad(rows: Sequence[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    return ids, mask


def torch_layer_input_reader(model: Any, layer: int) -> HiddenReader:
    """``read(input_ids, mask)``: what enters ``layer`` (0-based), from the torch model."""
    import torch

    def read(input_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        ids = torch.from_numpy(input_ids)
        with torch.inference_mode():
            out = model(
                input_ids=ids,
                attention_mask=torch.from_numpy(mask),
                token_type_ids=torch.zeros_like(ids),
                output_hidden_states=True,
            )
        return out.hidden_states[layer].numpy()

    return read


def cache_hidden(
    read: HiddenReader, token_ids: Sequence[list[int]], pad_id: int, progress: Progress
) -> list[np.ndarray]:
    """``read``'s per-text hidden states (padding cut off) for every text, float16."""
    cached: list[np.ndarray] = [np.zeros(0)] * len(token_ids)
    order = sorted(range(len(token_ids)), key=lambda i: len(token_ids[i]))
    started = time.perf_counter()
    for start in range(0, len(order), 64):
        chunk = order[start : start + 64]
        ids, mask = _pad([token_ids[i] for i in chunk], pad_id)
        states = read(ids.numpy(), mask.numpy())
        for row, i in enumerate(chunk):
            cached[i] = states[row, : len(token_ids[i])].astype(np.float16)
        done = start + len(chunk)
        if done % 6400 < 64 or done == len(order):
            rate = done / max(time.perf_counter() - started, 1e-9)
            progress(f"fine-tune: cached top-layer inputs {done}/{len(order)} ({rate:.0f}/s)")
    return cached


def _run_top(layers: Iterable[Any], cached: list, idx: Sequence[int] | np.ndarray) -> torch.Tensor:
    """Run ``layers`` on cached inputs; unit-length mean-pooled outputs ``(n, dim)``."""
    import torch

    width = max(len(cached[i]) for i in idx)
    dim = cached[idx[0]].shape[1]
    hidden = torch.zeros((len(idx), width, dim))
    mask = torch.zeros((len(idx), width))
    for row, i in enumerate(idx):
        n = len(cached[i])
        hidden[row, :n] = torch.from_numpy(cached[i].astype(np.float32))
        mask[row, :n] = 1.0
    additive = (1.0 - mask)[:, None, None, :] * torch.finfo(torch.float32).min
    for layer in layers:
        hidden = layer(hidden, attention_mask=additive)
        if isinstance(hidden, tuple):
            hidden = hidden[0]
    weights = mask[:, :, None]
    pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)
    return torch.nn.functional.normalize(pooled, dim=-1)


def fine_tune_top(
    model: Any,  # a transformers encoder model
    token_ids: Sequence[list[int]],
    labels: np.ndarray,
    weights: np.ndarray,
    pad_id: int,
    n_classes: int,
    progress: Progress,
    seed: int,
    read_inputs: Callable | None = None,
) -> TunedTop:
    """Tune ``model``'s top layers (in place) and a linear head; see the module docstring.

    ``read_inputs(first_top_layer)`` gives the reader of the top layers' inputs (default:
    the torch model itself; training uses the ONNX graph when the service runs that).
    """
    import torch

    torch.manual_seed(seed)
    n_layers = int(model.config.num_hidden_layers)
    first = n_layers - top_layer_count(n_layers)
    model.eval()
    read = read_inputs(first) if read_inputs else torch_layer_input_reader(model, first)
    cached = cache_hidden(read, token_ids, pad_id, progress)
    top = model.encoder.layer[first:]
    for p in model.parameters():
        p.requires_grad_(False)
    for p in top.parameters():
        p.requires_grad_(True)
    head = torch.nn.Linear(int(model.config.hidden_size), n_classes)
    opt = torch.optim.AdamW(
        [
            {"params": list(top.parameters()), "lr": LEARNING_RATE},
            {"params": list(head.parameters()), "lr": HEAD_LEARNING_RATE},
        ],
        weight_decay=WEIGHT_DECAY,
    )
    per_epoch = max(1, len(labels) // BATCH)
    steps = EPOCHS * per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / WARMUP_STEPS) * max(0.0, 1.0 - s / steps)
    )
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    balance = len(labels) / (n_classes * np.maximum(counts, 1.0))
    sample_w = torch.from_numpy((weights * balance[labels]).astype(np.float32))
    targets = torch.from_numpy(labels.astype(np.int64))
    rng = np.random.default_rng(seed)
    started, step = time.perf_counter(), 0
    top.train()
    for epoch in range(EPOCHS):
        perm = rng.permutation(len(labels))
        for start in range(0, per_epoch * BATCH, BATCH):
            b = perm[start : start + BATCH]
            logits = head(_run_top(top, cached, b) * SCALE)
            losses = torch.nn.functional.cross_entropy(logits, targets[b], reduction="none")
            loss = (losses * sample_w[b]).sum() / sample_w[b].sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step % 100 == 0 or step == steps:
                took = time.perf_counter() - started
                progress(
                    f"fine-tune: epoch {epoch + 1}/{EPOCHS} step {step}/{steps} "
                    f"loss {float(loss.detach()):.4f} ({took:.0f}s)"
                )
    top.eval()
    names = top_layer_names(list(model.state_dict()), n_layers)
    state = model.state_dict()
    return TunedTop(
        layers={n: state[n].detach().numpy().copy() for n in names},
        head_w=(head.weight.detach().numpy() * SCALE).astype(np.float32),
        head_b=head.bias.detach().numpy().astype(np.float32).copy(),
    )
