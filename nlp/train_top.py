"""The encoder's tuned top layers in a training run: tune them now, or keep the built ones.

:func:`tune_top_layers` tunes the top layers of the original encoder with a linear
sentiment head (``otklik nlp train --finetune-top``; see :mod:`nlp.finetune`);
:func:`existing_top` otherwise reuses the top file the encoder was built with, if any.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path

from nlp.datasets import Tweets
from nlp.encoder import Encoder, load_tokenizer, pick_backend
from nlp.encoder_build import read_fingerprint, sha256_file
from nlp.finetune import BASE_TOP_FILE, TOP_FILE, TunedTop, fine_tune_top, load_top
from nlp.heads import SENTIMENTS
from nlp.onnx_export import layer_input_reader
from nlp.train_data import RANDOM_SEED, Progress, sentiment_examples


def tune_top_layers(
    encoder_dir: Path,
    tweets: Tweets,
    parts: dict,
    seeds: Sequence[dict],
    extra: Sequence[dict],
    progress: Progress,
    backend: str = "auto",
) -> tuple[TunedTop, float]:
    """Tune the top layers of the original encoder in ``encoder_dir`` (see nlp.finetune)."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    started = time.perf_counter()
    model = AutoModel.from_pretrained(str(encoder_dir), local_files_only=True)
    if (encoder_dir / BASE_TOP_FILE).is_file():  # start from the original layers
        model.load_state_dict(load_file(str(encoder_dir / BASE_TOP_FILE)), strict=False)
    texts, labels, weights, _ = sentiment_examples(tweets, parts, seeds, extra)
    tokenize = Encoder(model, load_tokenizer(encoder_dir), cache_size=0)
    progress(f"fine-tune: {len(texts)} examples, top layers of {encoder_dir}")
    read_inputs = None  # torch float32: what the bf16 and fp32 backends give the top layers
    if pick_backend(encoder_dir, backend) == "onnx":  # the graph's outputs are what they will get
        n_layers = int(model.config.num_hidden_layers)
        read_inputs = partial(layer_input_reader, encoder_dir, n_layers=n_layers)
    with torch.random.fork_rng():
        tuned = fine_tune_top(
            model,
            tokenize.token_ids(texts),
            labels,
            weights,
            tokenize.pad_id,
            len(SENTIMENTS),
            progress,
            RANDOM_SEED,
            read_inputs,
        )
    return tuned, time.perf_counter() - started


def existing_top(encoder_dir: Path, out: Path, progress: Progress) -> TunedTop | None:
    """The top file ``encoder_dir`` was built with (the build keeps a copy; it is copied
    into ``out`` too), or ``None``."""
    built_with = (read_fingerprint(encoder_dir) or {}).get("top_sha256")
    kept = encoder_dir / TOP_FILE
    if not built_with or not kept.is_file() or sha256_file(kept) != built_with:
        progress(f"{encoder_dir} has no tuned top layers: sentiment uses the MLPs alone")
        return None
    target = out / TOP_FILE
    if not target.is_file() or sha256_file(target) != built_with:
        out.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(kept, target)
    return load_top(kept)
