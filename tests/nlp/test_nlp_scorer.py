"""Scorer plumbing and heads, using nlp.testing.tiny_scorer (tiny random BERT)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import nlp
from nlp.finetune import TOP_FILE
from nlp.heads import COMPLAINT_TYPES, SENTIMENTS, Heads, Mlp, MlpEnsemble
from nlp.scorer import EncoderScorer, combine_complaint
from nlp.testing import tiny_scorer


@pytest.fixture(scope="module")
def scorer(tmp_path_factory):
    return tiny_scorer(tmp_path_factory.mktemp("tiny-scorer"))


def test_tiny_scorer_satisfies_the_public_protocol(scorer) -> None:
    assert isinstance(scorer, nlp.Scorer)
    assert scorer.model_version.startswith("tiny-random-bert")
    assert scorer.model_version.endswith(f"+heads.{scorer.heads.version}")


def test_scores_follow_input_order_and_shape(scorer) -> None:
    texts = ["Где мой заказ?", "great service, thanks", "Где мой заказ?", "Das ist gut"]
    scores = scorer.score(texts)
    assert len(scores) == 4
    assert all(isinstance(s, nlp.TextScore) for s in scores)
    assert scores[0] == scores[2]
    assert [s.lang for s in scores] == ["ru", "en", "ru", "other"]
    assert [s.is_question for s in scores] == [True, False, True, False]
    for s in scores:
        assert set(s.sentiment_probs) == set(SENTIMENTS)
        assert abs(sum(s.sentiment_probs.values()) - 1.0) < 1e-5
        assert s.sentiment == max(s.sentiment_probs, key=s.sentiment_probs.get)
        assert 0.0 <= s.complaint_prob <= 1.0
        assert (s.complaint_type is not None) == s.is_complaint
        assert s.complaint_type is None or s.complaint_type in COMPLAINT_TYPES
        assert s.model_version == scorer.model_version


def test_score_uses_one_embedding_pass(scorer, monkeypatch) -> None:
    calls = []
    original = scorer.encoder.encode
    monkeypatch.setattr(scorer.encoder, "encode", lambda t: calls.append(list(t)) or original(t))
    scorer.score(["a", "b", "a"])
    assert calls == [["a", "b", "a"]]


def test_embed_and_empty_input(scorer) -> None:
    emb = scorer.embed(["one", "two"])
    assert emb.shape == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert scorer.score([]) == []
    assert scorer.embed([]).shape == (0, 384)


def test_text_score_is_frozen(scorer) -> None:
    score = scorer.score(["hello"])[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        score.sentiment = "positive"


def _heads_with(**changes) -> Heads:
    base = Heads.load()
    return dataclasses.replace(base, **changes)


def _constant(width: int, biases: list[float]) -> Mlp:
    return Mlp.linear(np.zeros((len(biases), width), np.float32), np.array(biases, np.float32))


def test_complaint_threshold_and_type_come_from_heads(scorer) -> None:
    width = Heads.load().feature_dim
    always = _heads_with(
        complaint=_constant(width, [0.0, 50.0]),
        sentiment=_constant(width, [5.0, 0.0, 0.0]),
    )
    s = EncoderScorer(scorer.encoder, always, "v").score(["anything"])[0]
    assert s.sentiment == "negative" and s.is_complaint
    assert s.complaint_type in COMPLAINT_TYPES
    never = dataclasses.replace(always, complaint=_constant(width, [50.0, 0.0]))
    s = EncoderScorer(scorer.encoder, never, "v").score(["anything"])[0]
    assert not s.is_complaint and s.complaint_type is None


def test_praise_guard_in_complaint_probability() -> None:
    head = np.array([0.9, 0.9])
    sentiment = np.array([[0.8, 0.1, 0.1], [0.0, 0.05, 0.95]])
    combined = combine_complaint(head, sentiment)
    assert combined[0] == pytest.approx(0.81)
    assert combined[1] < 0.1


def test_type_prototypes_and_other_fallback() -> None:
    emb = np.eye(4, 384, dtype=np.float32)
    heads = _heads_with(
        type_seed_emb=emb,
        type_seed_label=np.array([0, 0, 2, 4]),
        type_top_k=1,
        type_min_similarity=0.5,
    )
    probe = np.vstack([emb[1], emb[3], np.eye(1, 384, 10, dtype=np.float32)[0]])
    assert heads.complaint_types(probe) == ["delivery", "technical", "other"]


def test_heads_round_trip(tmp_path) -> None:
    heads = Heads.load()
    heads.save(tmp_path)
    again = Heads.load(tmp_path)
    x = np.random.default_rng(0).normal(size=(4, heads.feature_dim)).astype(np.float32)
    np.testing.assert_allclose(again.sentiment_probs(x), heads.sentiment_probs(x), rtol=1e-6)
    np.testing.assert_allclose(again.complaint_probs(x), heads.complaint_probs(x), rtol=1e-6)
    assert again.feature_layers == heads.feature_layers
    np.testing.assert_allclose(again.type_seed_emb, heads.type_seed_emb, atol=1e-3)
    assert again.complaint_threshold == heads.complaint_threshold
    assert again.meta["figures"] == heads.meta["figures"]


def test_heads_dimension_mismatch_is_rejected(scorer) -> None:
    small = _heads_with(type_seed_emb=np.zeros((3, 8), np.float32))
    with pytest.raises(ValueError, match="384"):
        EncoderScorer(scorer.encoder, small, "v")
    narrow = _heads_with(sentiment=_constant(384, [0.0, 0.0, 0.0]))
    with pytest.raises(ValueError, match="features"):
        EncoderScorer(scorer.encoder, narrow, "v")


def test_mlp_forward_matches_its_definition() -> None:
    rng = np.random.default_rng(0)
    mlp = Mlp(
        w2=rng.normal(size=(3, 5)).astype(np.float32),
        b2=rng.normal(size=3).astype(np.float32),
        w1=rng.normal(size=(5, 4)).astype(np.float32),
        b1=rng.normal(size=5).astype(np.float32),
        mu=rng.normal(size=4).astype(np.float32),
        sd=np.full(4, 2.0, np.float32),
    )
    x = rng.normal(size=(2, 4)).astype(np.float32)
    hidden = np.maximum(((x - mlp.mu) / 2.0) @ mlp.w1.T + mlp.b1, 0.0)
    np.testing.assert_allclose(mlp.logits(x), hidden @ mlp.w2.T + mlp.b2, rtol=1e-5)
    np.testing.assert_allclose(mlp.probs(x).sum(axis=1), 1.0, rtol=1e-6)
    assert mlp.in_dim == 4 and Mlp.linear(np.zeros((2, 7)), np.zeros(2)).in_dim == 7


def test_ensemble_averages_members_and_round_trips() -> None:
    a = Mlp.linear(np.array([[1.0, 0.0], [0.0, 1.0]]), np.zeros(2))
    b = Mlp.linear(np.array([[0.0, 1.0], [1.0, 0.0]]), np.zeros(2))
    both = MlpEnsemble([a, b])
    x = np.array([[2.0, -1.0]], np.float32)
    np.testing.assert_allclose(both.probs(x), (a.probs(x) + b.probs(x)) / 2, rtol=1e-6)
    restored = MlpEnsemble.from_arrays(both.arrays("sentiment"), "sentiment")
    assert isinstance(restored, MlpEnsemble) and len(restored.members) == 2
    np.testing.assert_allclose(restored.probs(x), both.probs(x), rtol=1e-6)
    weighted = MlpEnsemble([a, b], [0.25, 0.75])
    np.testing.assert_allclose(weighted.probs(x), 0.25 * a.probs(x) + 0.75 * b.probs(x), rtol=1e-6)
    again = MlpEnsemble.from_arrays(weighted.arrays("sentiment"), "sentiment")
    assert again.weights == [0.25, 0.75]
    single = MlpEnsemble.from_arrays(a.arrays("complaint"), "complaint")
    assert isinstance(single, Mlp)
    with pytest.raises(KeyError):
        MlpEnsemble.from_arrays({}, "complaint")


def test_feature_layers_follow_the_encoder_depth() -> None:
    heads = Heads.load()
    assert heads.layers_for(12) == heads.feature_layers == (6, 9, 12)
    assert heads.layers_for(2) == (1, 2, 2)
    assert heads.layers_for(1) == (1, 1, 1)


def test_committed_heads_are_small_and_complete() -> None:
    heads = Heads.load()
    assert heads.dim == 384 and heads.feature_dim == 3 * 384
    assert set(heads.type_seed_label.tolist()) == set(range(len(COMPLAINT_TYPES)))
    figures = heads.meta["figures"]
    assert figures["heldout"]["sentiment_macro_f1"] > 0.72
    assert figures["heldout_company"]["sentiment_macro_f1"] > 0.7
    assert heads.meta["training"]["encoder_backend"] == "torch-bf16"
    total = sum(p.stat().st_size for p in nlp.heads.DEFAULT_HEADS_DIR.iterdir())
    assert total < 20_000_000  # the budget for committed model files (heads, tuned layers)
    # The shipped encoder is the original one (see nlp/README.md: tuned top layers are
    # opt-in), so there is no top file and sentiment is the three MLPs.
    assert not (nlp.heads.DEFAULT_HEADS_DIR / TOP_FILE).exists()
    assert len(heads.sentiment.members) == 3 and heads.version == "2"


def test_default_encoder_dir(tmp_path) -> None:
    assert nlp.default_encoder_dir(tmp_path) == tmp_path / "models" / "multilingual-e5-small"


def test_info_describes_without_loading(tmp_path) -> None:
    described = nlp.info(tmp_path / "missing")
    assert described["encoder_fingerprint"] is None
    assert described["model_version"] == f"unversioned+heads.{described['heads_version']}"
    assert "predictions" not in described["figures"]["ru_handlabelled"]
    assert nlp.heads.Heads.load().meta["figures"]["ru_handlabelled"]["predictions"]


def test_train_heads_defaults_to_the_committed_heads_dir() -> None:
    import inspect

    from nlp.train import train_heads

    params = inspect.signature(train_heads).parameters
    assert list(params)[:4] == ["encoder_dir", "out_dir", "progress", "limit"]
    assert params["out_dir"].default is None
