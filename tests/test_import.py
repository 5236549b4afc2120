"""`otklik import FILE.jsonl`: valid lines stored once, bad lines reported by number and field."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from config import load_settings
from otklik.store.models import Conversation, Mention
from tests.conftest import hermetic_environ
from workers.cli import main
from workers.runtime import Runtime

GOOD = {
    "platform": "twitter",
    "external_id": "1790",
    "url": "https://x.com/a/status/1790",
    "author_external_id": "42",
    "author_handle": "mira_k",
    "text": "Where is my order?",
    "created_at": "2026-11-20T08:15:00Z",
}


def _count(config_path, model) -> int:
    runtime = Runtime.from_settings(load_settings(config_path, environ=hermetic_environ()))
    with runtime.sessions() as session:
        value = session.scalar(select(func.count()).select_from(model))
    runtime.engine.dispose()
    return value


def test_import_stores_valid_lines_once_and_reports_bad_ones(
    tmp_path, config_path, capsys, monkeypatch
) -> None:
    monkeypatch.delenv("OTKLIK_CONFIG", raising=False)
    reply = {
        **GOOD,
        "external_id": "1791",
        "text": "Still waiting",
        "parent_external_id": "1790",
        "created_at": "2026-11-20T09:15:00+03:00",
    }
    lines = [
        json.dumps(GOOD),
        json.dumps(reply),
        "{not json",
        json.dumps({**GOOD, "external_id": "1792", "created_at": "yesterday"}),
        json.dumps({**GOOD, "external_id": "1793", "text": None}),
        json.dumps({**GOOD, "external_id": "1794", "created_at": "2026-11-20T08:15:00"}),
    ]
    path = tmp_path / "mentions.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main(["--config", str(config_path), "import", str(path)]) == 1
    captured = capsys.readouterr()
    assert "line 3: not valid JSON" in captured.err
    assert "line 4: field 'created_at' must be ISO 8601, got 'yesterday'" in captured.err
    assert "line 5: field 'text' is missing or not a string" in captured.err
    assert "line 6: field 'created_at' needs a timezone" in captured.err
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["new"] == 2 and summary["invalid"] == 4

    assert main(["--config", str(config_path), "import", str(path)]) == 1  # again: no duplicates
    assert _count(config_path, Mention) == 2
    assert _count(config_path, Conversation) == 1


def test_import_of_a_missing_file_names_it(tmp_path, config_path, capsys) -> None:
    assert main(["--config", str(config_path), "import", str(tmp_path / "nope.jsonl")]) == 2
    assert "nope.jsonl does not exist" in capsys.readouterr().err
