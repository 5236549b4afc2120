"""train_heads end to end on a tiny random encoder and a small sample (plumbing only)."""

from __future__ import annotations

import numpy as np
import pytest

from nlp.encoder_build import read_fingerprint, sha256_file
from nlp.finetune import TOP_FILE, load_top
from nlp.heads import Heads
from nlp.train import train_heads


def test_train_heads_writes_loadable_reproducible_heads(tiny_encoder_dir, tmp_path) -> None:
    messages: list[str] = []
    figures = train_heads(
        tiny_encoder_dir, tmp_path / "a", progress=messages.append, limit=300, finetune=True
    )
    train_heads(
        tiny_encoder_dir, tmp_path / "b", progress=lambda _m: None, limit=300, finetune=True
    )
    held, company = figures["heldout"]["n"], figures["heldout_company"]["n"]
    training = Heads.load(tmp_path / "a").meta["training"]
    assert held + company + training["n_train_tweets"] + training["n_validation_tweets"] == 300
    assert 0.0 <= figures["heldout"]["sentiment_macro_f1"] <= 1.0
    assert figures["heldout_company"]["company"] == "jetblue"
    assert figures["ru_handlabelled"]["n"] >= 100
    assert any("sentiment #3: epoch 8/8" in m for m in messages)
    a, b = Heads.load(tmp_path / "a"), Heads.load(tmp_path / "b")
    for ma, mb in zip(
        a.sentiment.members + a.complaint.members,
        b.sentiment.members + b.complaint.members,
        strict=True,
    ):
        np.testing.assert_array_equal(ma.w1, mb.w1)
        np.testing.assert_array_equal(ma.w2, mb.w2)
    # Three MLPs plus the fine-tuned linear head, which reads only the last layer's slice.
    assert len(a.sentiment.members) == 4
    assert a.sentiment.weights == pytest.approx([1 / 6, 1 / 6, 1 / 6, 0.5])
    tuned = a.sentiment.members[3]
    assert tuned.w1 is None and not tuned.w2[:, :384].any() and tuned.w2[:, 384:].any()
    assert not np.array_equal(a.sentiment.members[0].w1, a.sentiment.members[1].w1)
    assert any(m.startswith("fine-tune: epoch 1/1 step") for m in messages)
    # Same tuned layers both times (compared as arrays: the safetensors header's metadata
    # order is not fixed).
    top_a, top_b = load_top(tmp_path / "a" / TOP_FILE), load_top(tmp_path / "b" / TOP_FILE)
    assert top_a.layers.keys() == top_b.layers.keys()
    for name, value in top_a.layers.items():
        np.testing.assert_array_equal(value, top_b.layers[name])
    np.testing.assert_array_equal(top_a.head_w, top_b.head_w)
    record = read_fingerprint(tmp_path / "a" / "encoder")
    assert record["top_sha256"] == sha256_file(tmp_path / "a" / TOP_FILE)
    assert a.meta["training"]["encoder_top"]["sha256"] == record["top_sha256"]
    assert a.version == "2+top"
    assert a.complaint_threshold == b.complaint_threshold
    assert a.feature_layers == (1, 2)
    assert a.meta["training"]["encoder_fingerprint"]["tag"].startswith("tiny-random-bert")


def test_corrections_are_extra_training_examples(tiny_encoder_dir, tmp_path) -> None:
    corrections = [
        {"text": "курьер опять опоздал", "sentiment": "negative", "is_complaint": True},
        {"text": "спасибо за помощь", "sentiment": "positive"},
        {"text": "   ", "is_complaint": False},  # blank: ignored
    ]
    train_heads(
        tiny_encoder_dir,
        tmp_path / "c",
        progress=lambda _m: None,
        limit=200,
        corrections=corrections,
    )
    training = Heads.load(tmp_path / "c").meta["training"]
    assert training["n_corrections"] == 2
    assert training["n_corrections_sentiment"] == 2
    assert training["n_corrections_complaint"] == 1
