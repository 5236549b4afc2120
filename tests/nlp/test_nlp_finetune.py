"""Tuned top layers: merged by the build, tracked by the fingerprint, checked at load."""

from __future__ import annotations

import numpy as np
import pytest
from safetensors.numpy import load_file

from nlp.encoder_build import (
    BASE_TOP_FILE,
    base_state,
    build_encoder,
    read_fingerprint,
    sha256_file,
)
from nlp.finetune import TOP_FILE, TunedTop, load_top, merge_top, save_top, top_layer_count
from nlp.heads import Heads
from nlp.scorer import load_encoder_scorer
from nlp.train import train_heads


def _tuned_layer0(state: dict[str, np.ndarray], shift: float) -> TunedTop:
    layers = {k: v + shift for k, v in state.items() if k.startswith("encoder.layer.0.")}
    return TunedTop(layers, np.ones((3, 32), np.float32), np.zeros(3, np.float32))


def test_top_is_the_last_quarter_of_the_layers() -> None:
    assert [top_layer_count(n) for n in (1, 2, 4, 12, 24)] == [1, 1, 1, 3, 6]


def _top_with(name: str, shape: tuple[int, int]) -> TunedTop:
    return TunedTop(
        {name: np.zeros(shape, np.float32)}, np.zeros((3, 4), np.float32), np.zeros(3, np.float32)
    )


def test_merge_names_the_tensor_that_does_not_fit() -> None:
    state = {"encoder.layer.0.output.dense.weight": np.zeros((4, 4), np.float32)}
    wrong_shape = _top_with("encoder.layer.0.output.dense.weight", (4, 8))
    with pytest.raises(ValueError, match=r"output\.dense\.weight has shape \(4, 8\)"):
        merge_top(dict(state), wrong_shape, "top.safetensors")
    unknown = _top_with("encoder.layer.7.output.dense.weight", (4, 4))
    with pytest.raises(ValueError, match=r"layer\.7\.output\.dense\.weight is not in the encoder"):
        merge_top(dict(state), unknown, "top.safetensors")


def test_build_merges_the_top_keeps_the_original_and_tracks_the_file(tiny_q4, tmp_path) -> None:
    source, _ = tiny_q4
    plain = build_encoder(tmp_path / "plain", progress=lambda _m: None, source=source, top=None)
    original = base_state(plain)
    top = tmp_path / TOP_FILE
    save_top(top, _tuned_layer0(original, 0.25), {"note": "test"})

    messages: list[str] = []
    out = build_encoder(tmp_path / "tuned", progress=messages.append, source=source, top=top)
    merged = load_file(str(out / "model.safetensors"))
    tuned = load_top(top)  # float16 on disk
    for name, value in tuned.layers.items():
        np.testing.assert_array_equal(merged[name], value)
        np.testing.assert_array_equal(load_file(str(out / BASE_TOP_FILE))[name], original[name])
    np.testing.assert_array_equal(
        merged["embeddings.word_embeddings.weight"], original["embeddings.word_embeddings.weight"]
    )
    assert read_fingerprint(out)["top_sha256"] == sha256_file(top)
    assert (out / TOP_FILE).read_bytes() == top.read_bytes()
    for name, value in base_state(out).items():  # training starts from the original again
        np.testing.assert_array_equal(value, original[name])

    messages.clear()
    build_encoder(out, progress=messages.append, source=source, top=top)
    assert "up to date" in messages[-1]
    save_top(top, _tuned_layer0(original, -0.5), {"note": "retrained"})
    build_encoder(out, progress=messages.append, source=source, top=top)
    assert any("merged" in m for m in messages[1:])
    assert read_fingerprint(out)["top_sha256"] == sha256_file(top)


def test_retraining_heads_keeps_the_encoder_and_its_tuned_head(tiny_encoder_dir, tmp_path) -> None:
    full = tmp_path / "full"
    train_heads(tiny_encoder_dir, full, progress=lambda _m: None, limit=200, finetune=True)
    encoder = full / "encoder"
    stamp = (encoder / "model.safetensors").stat().st_mtime_ns
    messages: list[str] = []
    train_heads(encoder, tmp_path / "again", progress=messages.append, limit=200)
    assert not any(m.startswith("fine-tune") for m in messages)
    assert (encoder / "model.safetensors").stat().st_mtime_ns == stamp
    again, before = Heads.load(tmp_path / "again"), Heads.load(full)
    np.testing.assert_array_equal(again.sentiment.members[3].w2, before.sentiment.members[3].w2)
    assert (tmp_path / "again" / TOP_FILE).read_bytes() == (full / TOP_FILE).read_bytes()


def test_scorer_refuses_heads_made_for_other_top_layers(tiny_encoder_dir, tmp_path) -> None:
    heads_dir = tmp_path / "heads"
    train_heads(tiny_encoder_dir, heads_dir, progress=lambda _m: None, limit=200, finetune=True)
    scorer = load_encoder_scorer(tiny_encoder_dir, heads_dir)  # picks heads_dir/encoder
    assert scorer.score(["hello world"])[0].sentiment in {"negative", "neutral", "positive"}
    tuned = load_top(heads_dir / TOP_FILE)
    save_top(heads_dir / TOP_FILE, TunedTop(tuned.layers, tuned.head_w * 2, tuned.head_b), {})
    with pytest.raises(ValueError, match="run `otklik nlp build`"):
        load_encoder_scorer(tiny_encoder_dir, heads_dir)
    (heads_dir / TOP_FILE).unlink()  # heads for the original layers, encoder with tuned ones
    with pytest.raises(ValueError, match="need the original layers"):
        load_encoder_scorer(tiny_encoder_dir, heads_dir)
