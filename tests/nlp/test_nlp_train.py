"""train_heads end to end on a tiny random encoder and a small sample (plumbing only)."""

from __future__ import annotations

import numpy as np

from nlp.heads import Heads
from nlp.train import train_heads


def test_train_heads_writes_loadable_reproducible_heads(tiny_encoder_dir, tmp_path) -> None:
    messages: list[str] = []
    figures = train_heads(tiny_encoder_dir, tmp_path / "a", progress=messages.append, limit=300)
    train_heads(tiny_encoder_dir, tmp_path / "b", progress=lambda _m: None, limit=300)
    held, company = figures["heldout"]["n"], figures["heldout_company"]["n"]
    training = Heads.load(tmp_path / "a").meta["training"]
    assert held + company + training["n_train_tweets"] + training["n_validation_tweets"] == 300
    assert 0.0 <= figures["heldout"]["sentiment_macro_f1"] <= 1.0
    assert figures["heldout_company"]["company"] == "jetblue"
    assert figures["ru_handlabelled"]["n"] >= 100
    assert any("epoch 8/8" in m for m in messages)
    a, b = Heads.load(tmp_path / "a"), Heads.load(tmp_path / "b")
    np.testing.assert_array_equal(a.sentiment.w1, b.sentiment.w1)
    np.testing.assert_array_equal(a.complaint.w2, b.complaint.w2)
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
