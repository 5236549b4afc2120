"""The int8 ONNX path on the tiny random BERT: export, loading, agreement with torch."""

from __future__ import annotations

import numpy as np
import pytest

from nlp.encoder import (
    BACKEND_ENV,
    ONNX_NAME,
    Bf16Encoder,
    Encoder,
    OnnxEncoder,
    cpu_multiplies_bf16,
    has_onnx,
    load_encoder,
    pick_backend,
)
from nlp.onnx_export import export_int8

TEXTS = ["short", "Доставка опоздала на три дня", "a much longer sentence about a parcel", "x"]


@pytest.fixture(scope="module")
def onnx_dir(tiny_encoder_dir, tmp_path_factory):
    import shutil

    target = tmp_path_factory.mktemp("tiny-onnx") / "encoder"
    shutil.copytree(tiny_encoder_dir, target)
    export_int8(target, progress=lambda _m: None)
    return target


def test_auto_backend_prefers_bf16_on_amx_then_the_graph(
    onnx_dir, tiny_encoder_dir, monkeypatch
) -> None:
    assert (onnx_dir / ONNX_NAME).is_file() and has_onnx(onnx_dir)
    assert not has_onnx(tiny_encoder_dir)
    monkeypatch.delenv(BACKEND_ENV, raising=False)
    amx = cpu_multiplies_bf16()
    assert pick_backend(onnx_dir) == ("bf16" if amx else "onnx")
    assert pick_backend(tiny_encoder_dir) == ("bf16" if amx else "torch")
    assert isinstance(load_encoder(onnx_dir, backend="onnx"), OnnxEncoder)
    assert load_encoder(onnx_dir, backend="torch").backend == "torch-fp32"
    assert type(load_encoder(tiny_encoder_dir, backend="bf16")) is Bf16Encoder
    with pytest.raises(ValueError, match="backend 'gpu'"):
        load_encoder(onnx_dir, backend="gpu")


def test_backend_env_overrides_auto_and_is_checked(onnx_dir, monkeypatch) -> None:
    monkeypatch.setenv(BACKEND_ENV, "onnx")
    assert isinstance(load_encoder(onnx_dir), OnnxEncoder)
    assert pick_backend(onnx_dir, "torch") == "torch"  # an explicit choice wins
    monkeypatch.setenv(BACKEND_ENV, "int4")
    with pytest.raises(ValueError, match=r"\$OTKLIK_NLP_BACKEND='int4'"):
        pick_backend(onnx_dir)


def test_bf16_encoder_stays_close_to_float32(tiny_encoder_dir) -> None:
    # The tiny model has no bfloat16 file (the build writes one): converted on loading.
    fast = Bf16Encoder.from_dir(tiny_encoder_dir, feature_layers=(1, 2))
    slow = Encoder.from_dir(tiny_encoder_dir, feature_layers=(1, 2))
    (emb_fast, feats_fast), (emb_slow, feats_slow) = fast.encode(TEXTS), slow.encode(TEXTS)
    assert emb_fast.dtype == feats_fast.dtype == np.float32
    assert feats_fast.shape == feats_slow.shape
    assert (emb_fast * emb_slow).sum(axis=1).min() > 0.999


def test_int8_graph_agrees_with_torch_and_ignores_padding(onnx_dir) -> None:
    fast = OnnxEncoder.from_dir(onnx_dir, feature_layers=(1, 2), batch_size=4)
    slow = Encoder.from_dir(onnx_dir, feature_layers=(1, 2))
    emb_fast, feats_fast = fast.encode(TEXTS)
    emb_slow, feats_slow = slow.encode(TEXTS)
    assert feats_fast.shape == feats_slow.shape == (4, 768)
    cosines = (emb_fast * emb_slow).sum(axis=1)
    assert cosines.min() > 0.95, cosines  # int8 weights on a random model
    # Padding in a batch must not change a text's vector.
    fast.clear_cache()
    alone = fast.embed([TEXTS[1]])[0]
    np.testing.assert_allclose(emb_fast[1], alone, atol=2e-3)


def test_scorer_runs_on_the_onnx_encoder(onnx_dir, monkeypatch) -> None:
    from nlp import load_scorer

    monkeypatch.setenv(BACKEND_ENV, "onnx")
    scorer = load_scorer(onnx_dir)
    assert scorer.encoder.backend == "onnx-int8"
    assert ".int8+heads." in scorer.model_version
    scores = scorer.score(TEXTS)
    assert len(scores) == 4 and all(0.0 <= s.complaint_prob <= 1.0 for s in scores)


def test_running_int8_heads_on_the_float_model_is_logged(
    tiny_encoder_dir, tmp_path, caplog, monkeypatch
):
    import json
    import logging
    import shutil

    from nlp import load_scorer

    target = tmp_path / "encoder"
    shutil.copytree(tiny_encoder_dir, target)
    (target / "FINGERPRINT").write_text(json.dumps({"source_sha256": "ab" * 32}))
    monkeypatch.setenv(BACKEND_ENV, "torch")
    with caplog.at_level(logging.WARNING, logger="nlp.scorer"):
        scorer = load_scorer(target)
    assert scorer.encoder.backend == "torch-fp32"
    assert "otklik nlp build" in caplog.text


def test_top_layer_inputs_come_from_the_int8_graph(onnx_dir) -> None:
    from transformers import AutoModel

    from nlp.finetune import _pad, torch_layer_input_reader
    from nlp.onnx_export import layer_input_reader

    encoder = Encoder.from_dir(onnx_dir)
    ids, mask = _pad(encoder.token_ids(TEXTS), encoder.pad_id)
    fast = layer_input_reader(onnx_dir, 1, n_layers=2)(ids.numpy(), mask.numpy())
    model = AutoModel.from_pretrained(str(onnx_dir), local_files_only=True)
    cosines = []
    for layer in (1, 2):  # the graph's layer-1 input matches torch's hidden state 1 only
        slow = torch_layer_input_reader(model, layer)(ids.numpy(), mask.numpy())
        assert fast.shape == slow.shape
        a, b = fast[mask.numpy() == 1], slow[mask.numpy() == 1]
        cosines.append(float((a * b).sum() / np.linalg.norm(a) / np.linalg.norm(b)))
    assert cosines[0] > 0.999 and cosines[0] > cosines[1], cosines
    with pytest.raises(RuntimeError, match="SkipLayerNormalization"):
        layer_input_reader(onnx_dir, 1, n_layers=3)


def test_export_keeps_the_named_layers_in_float(onnx_dir, tmp_path) -> None:
    import onnx

    out = export_int8(onnx_dir, tmp_path / "mixed.onnx", lambda _m: None, float_layers=[1])
    ops = {n.name: n.op_type for n in onnx.load(str(out)).graph.node}
    assert ops["Attention_1"] == "Attention"
    assert any(
        name.startswith("/inner/encoder/layer.1/") and op == "MatMul" for name, op in ops.items()
    )
    assert "Attention_0_quant" in ops
