"""Batching, ordering, caching, truncation and features of the encoder (tiny random BERT)."""

from __future__ import annotations

import numpy as np
import pytest

from nlp.encoder import Encoder


@pytest.fixture(scope="module")
def encoder(tiny_encoder_dir) -> Encoder:
    return Encoder.from_dir(tiny_encoder_dir, batch_size=4)


class CountingModel:
    """Wraps a model and records the shape of every forward batch."""

    def __init__(self, model) -> None:
        self.model = model
        self.config = model.config
        self.batches: list[tuple[int, int]] = []

    def eval(self):
        return self

    def __call__(self, **kwargs):
        self.batches.append(tuple(kwargs["input_ids"].shape))
        return self.model(**kwargs)


TEXTS = [
    "short",
    "a much longer sentence about a delivery that never arrived at all",
    "Доставка опоздала",
    "mid length text here",
    "x",
    "another fairly long sentence, with punctuation; and more words in it",
    "Где мой заказ?",
]


def test_embeddings_are_unit_vectors_in_input_order(encoder: Encoder) -> None:
    emb = encoder.embed(TEXTS)
    assert emb.shape == (len(TEXTS), 384)
    assert emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    for i, text in enumerate(TEXTS):
        np.testing.assert_allclose(encoder.embed([text])[0], emb[i], atol=1e-5)


def test_result_does_not_depend_on_batch_company(encoder: Encoder) -> None:
    alone = encoder.embed(["Доставка опоздала"])
    mixed = encoder.embed(["Доставка опоздала", TEXTS[1], TEXTS[5]])
    np.testing.assert_allclose(mixed[0], alone[0], atol=1e-5)


def test_batches_are_length_sorted_and_bounded(tiny_encoder_dir) -> None:
    base = Encoder.from_dir(tiny_encoder_dir)
    counting = CountingModel(base.model)
    enc = Encoder(counting, base.tokenizer, batch_size=3)
    enc.embed(TEXTS)
    assert [b for b, _ in counting.batches] == [3, 3, 1]
    widths = [w for _, w in counting.batches]
    assert widths == sorted(widths)
    lengths = sorted(len(ids) for ids in enc.token_ids(TEXTS))
    assert widths == [max(lengths[0:3]), max(lengths[3:6]), lengths[6]]


def test_identical_texts_are_encoded_once(tiny_encoder_dir) -> None:
    base = Encoder.from_dir(tiny_encoder_dir)
    counting = CountingModel(base.model)
    enc = Encoder(counting, base.tokenizer, batch_size=32)
    emb = enc.embed(["same", "other", "same", "same"])
    assert counting.batches == [(2, max(len(i) for i in enc.token_ids(["same", "other"])))]
    np.testing.assert_array_equal(emb[0], emb[2])
    np.testing.assert_array_equal(emb[0], emb[3])


def test_long_texts_are_truncated_and_prefixed(encoder: Encoder) -> None:
    ids = encoder.token_ids(["word " * 500])[0]
    assert len(ids) == encoder.max_length == 64
    assert ids[0] == encoder.tokenizer.bos_token_id
    assert ids[-1] == encoder.tokenizer.eos_token_id
    decoded = encoder.tokenizer.decode(encoder.token_ids(["hi"])[0], skip_special_tokens=True)
    assert decoded.replace(" ", "").startswith("query:")


def test_empty_inputs(encoder: Encoder) -> None:
    assert encoder.embed([]).shape == (0, 384)
    emb = encoder.embed(["", "   "])
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)


def test_concurrent_calls_give_the_same_answers(encoder: Encoder) -> None:
    from concurrent.futures import ThreadPoolExecutor

    expected = encoder.embed(TEXTS)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _i: encoder.embed(TEXTS), range(8)))
    for result in results:
        np.testing.assert_allclose(result, expected, atol=1e-5)


def test_recent_texts_come_from_the_cache(tiny_encoder_dir) -> None:
    base = Encoder.from_dir(tiny_encoder_dir)
    counting = CountingModel(base.model)
    enc = Encoder(counting, base.tokenizer, batch_size=32, cache_size=2)
    first = enc.embed(["one", "two"])
    again = enc.embed(["two", "one", "three"])
    assert len(counting.batches) == 2 and counting.batches[1][0] == 1  # only "three"
    np.testing.assert_array_equal(again[1], first[0])
    enc.embed(["two"])  # least recently used, evicted by "three" (cache of 2)
    assert len(counting.batches) == 3
    enc.embed(["three"])
    assert len(counting.batches) == 3
    enc.clear_cache()
    enc.embed(["three"])
    assert len(counting.batches) == 4


def test_features_are_the_chosen_layers_normalised(tiny_encoder_dir) -> None:
    enc = Encoder.from_dir(tiny_encoder_dir, feature_layers=(1, 2))
    emb, feats = enc.encode(TEXTS[:3])
    assert emb.shape == (3, 384) and feats.shape == (3, 768) == (3, enc.feature_dim)
    np.testing.assert_allclose(feats[:, 384:], emb, atol=1e-6)  # layer 2 is the last
    np.testing.assert_allclose(np.linalg.norm(feats[:, :384], axis=1), 1.0, atol=1e-5)
    assert not np.allclose(feats[:, :384], emb)
    with pytest.raises(ValueError, match="outside"):
        enc.set_feature_layers((3,))
