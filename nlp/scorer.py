"""The real :class:`~nlp.Scorer`: one encoder pass per text feeds every head."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nlp.encoder import Encoder, load_encoder
from nlp.encoder_build import read_fingerprint, sha256_file
from nlp.finetune import TOP_FILE
from nlp.heads import DEFAULT_HEADS_DIR, SENTIMENTS, Heads
from nlp.rules import detect_lang, is_question
from nlp.types import TextScore


def encoder_tag(encoder_dir: Path, backend: str | None = None) -> str:
    """Short identifier of a built encoder (``FINGERPRINT``) and the backend that runs it."""
    record = read_fingerprint(encoder_dir) or {}
    suffixes = {"onnx-int8": ".int8", "torch-fp32": ".fp32", "torch-bf16": ".bf16"}
    suffix = suffixes.get(backend or "", "")
    if record.get("tag"):
        return str(record["tag"]) + suffix
    sha = str(record.get("source_sha256", ""))[:8]
    if not sha:
        return "unversioned"
    return f"me5s-q4.{sha}.b{record.get('builder_version', '?')}{suffix}"


def combine_complaint(head_prob: np.ndarray, sentiment: np.ndarray) -> np.ndarray:
    """Final complaint probability: complaint head times ``1 - P(positive)``.

    The complaint head decides; the factor stops text that the sentiment head is sure
    is praise ("thanks, the courier was fast") from scoring as a complaint.
    """
    not_positive = 1.0 - sentiment[:, SENTIMENTS.index("positive")]
    return np.clip(head_prob, 0.0, 1.0) * np.clip(not_positive, 0.0, 1.0)


class EncoderScorer:
    """Scores texts with a sentence encoder plus the linear/prototype heads."""

    def __init__(self, encoder: Encoder, heads: Heads, model_version: str) -> None:
        if heads.dim != encoder.dim:
            raise ValueError(f"heads expect {heads.dim}-d embeddings, encoder gives {encoder.dim}")
        if heads.feature_dim != encoder.dim * len(heads.feature_layers):
            raise ValueError(
                f"heads expect {heads.feature_dim}-d features, "
                f"{len(heads.feature_layers)} layers of {encoder.dim} given"
            )
        layers = heads.layers_for(encoder.n_layers)
        if tuple(encoder.feature_layers) != layers:
            encoder.set_feature_layers(layers)
        self.encoder = encoder
        self.heads = heads
        self.model_version = model_version

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """``(n, dim)`` L2-normalised embeddings (E5 "query: " prefix, mean pooling)."""
        return self.encoder.embed(list(texts))

    def score(self, texts: Sequence[str]) -> list[TextScore]:
        """Score each text; output order matches input order."""
        texts = [t if isinstance(t, str) else str(t or "") for t in texts]
        if not texts:
            return []
        emb, feats = self.encoder.encode(texts)
        sent = self.heads.sentiment_probs(feats)
        complaint = combine_complaint(self.heads.complaint_probs(feats), sent)
        types = self.heads.complaint_types(emb)
        threshold = self.heads.complaint_threshold
        return [
            self._one(text, sent[i], float(complaint[i]), types[i], threshold)
            for i, text in enumerate(texts)
        ]

    def _one(
        self, text: str, probs: np.ndarray, complaint: float, ctype: str, threshold: float
    ) -> TextScore:
        flagged = complaint >= threshold
        return TextScore(
            sentiment=SENTIMENTS[int(np.argmax(probs))],
            sentiment_probs={name: float(p) for name, p in zip(SENTIMENTS, probs, strict=True)},
            complaint_prob=complaint,
            is_complaint=flagged,
            complaint_type=ctype if flagged else None,
            is_question=is_question(text),
            lang=detect_lang(text),
            model_version=self.model_version,
        )


def load_encoder_scorer(
    encoder_dir: Path,
    heads_dir: Path | None = None,
    threads: int | None = None,
    backend: str = "auto",
) -> EncoderScorer:
    """Load an encoder directory and heads directory into an :class:`EncoderScorer`.

    ``backend="auto"``: see :func:`nlp.encoder.pick_backend` (bfloat16 on CPUs with
    AMX, else the int8 ONNX graph when the directory has one, else float32).
    """
    heads = Heads.load(heads_dir)
    if heads_dir is not None and (Path(heads_dir) / "encoder").is_dir():
        encoder_dir = Path(heads_dir) / "encoder"  # trained with its own tuned top layers
    check_top_matches(Path(encoder_dir), Path(heads_dir) if heads_dir else DEFAULT_HEADS_DIR)
    encoder = load_encoder(Path(encoder_dir), backend, threads=threads)
    trained_on = heads.meta.get("training", {}).get("encoder_backend")
    record = read_fingerprint(Path(encoder_dir)) or {}
    if trained_on and trained_on != encoder.backend and record.get("source_sha256"):
        logging.getLogger(__name__).warning(
            "heads were trained on the %s encoder but %s runs it, so scores shift slightly: "
            "`otklik nlp build` writes a missing ONNX graph, `otklik nlp train` fits the heads "
            "to this backend, $OTKLIK_NLP_BACKEND picks another",
            trained_on,
            encoder.backend,
        )
    version = f"{encoder_tag(Path(encoder_dir), encoder.backend)}+heads.{heads.version}"
    return EncoderScorer(encoder, heads, version)


def check_top_matches(encoder_dir: Path, heads_dir: Path) -> None:
    """Raise ``ValueError`` if the encoder was built with other tuned top layers.

    The heads read features of the encoder with *their* top layers merged (none if the
    heads directory has no top file); an encoder directory whose fingerprint records no
    top (the tiny test models) is not checked.
    """
    record = read_fingerprint(encoder_dir) or {}
    if "top_sha256" not in record:
        return
    top = heads_dir / TOP_FILE
    wanted = sha256_file(top) if top.is_file() else None
    if record["top_sha256"] != wanted:
        built = (record["top_sha256"] or "none")[:12]
        need = f"{top} ({wanted[:12]})" if wanted else "the original layers"
        raise ValueError(
            f"the encoder in {encoder_dir} was built with tuned top layers {built}, "
            f"but the heads in {heads_dir} need {need}: run `otklik nlp build`"
        )
