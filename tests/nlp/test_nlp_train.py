"""train_heads end to end on a tiny random encoder and a small sample (plumbing only)."""

from __future__ import annotations

import numpy as np

from nlp.heads import Heads
from nlp.train import train_heads


def test_train_heads_writes_loadable_reproducible_heads(tiny_encoder_dir, tmp_path) -> None:
    messages: list[str] = []
    figures = train_heads(tiny_encoder_dir, tmp_path / "a", progress=messages.append, limit=300)
    train_heads(tiny_encoder_dir, tmp_path / "b", progress=lambda _m: None, limit=300)
    assert figures["heldout"]["n"] == 60
    assert 0.0 <= figures["heldout"]["sentiment_macro_f1"] <= 1.0
    assert figures["ru_handlabelled"]["n"] >= 20
    assert any("cross-validated" in m for m in messages)
    a, b = Heads.load(tmp_path / "a"), Heads.load(tmp_path / "b")
    np.testing.assert_array_equal(a.sentiment_w, b.sentiment_w)
    np.testing.assert_array_equal(a.complaint_w, b.complaint_w)
    assert a.complaint_threshold == b.complaint_threshold
    assert a.meta["training"]["n_train_tweets"] == 240
    assert a.meta["training"]["encoder_fingerprint"]["tag"].startswith("tiny-random-bert")
