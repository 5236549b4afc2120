"""Data subcommands: import and score."""

from __future__ import annotations

import argparse
import csv
import json
import resource
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from config import Settings
from otklik.cases.ingest import store_page
from otklik.domain import RawMention
from otklik.store import db
from otklik.store.models import Brand, utcnow

IMPORT_CHUNK = 500
SCORE_CHUNK = 256
REQUIRED_FIELDS = ("platform", "external_id", "author_external_id", "author_handle", "text")


def register(sub: Any) -> None:
    """Add the data subcommands to ``sub``."""
    p = sub.add_parser("import", help="store mentions from a JSONL file (one RawMention per line)")
    p.add_argument("file", type=Path)
    p.add_argument("--brand", help="brand name (default: the first configured brand)")
    p.set_defaults(handler=cmd_import)
    p = sub.add_parser("score", help="score texts from JSONL (field 'text') or CSV")
    p.add_argument("--input", required=True, type=Path)
    p.add_argument("--output", required=True, type=Path)
    p.add_argument("--text-column", help="CSV column (or JSONL field) holding the text")
    p.add_argument("--stats", action="store_true", help="print a final JSON line with speed")
    p.set_defaults(handler=cmd_score)


def parse_mention_line(line: str, number: int) -> RawMention:
    """One JSONL line as a RawMention; ValueError naming the line and the field."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"line {number}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise ValueError(f"line {number}: expected a JSON object")
    for name in REQUIRED_FIELDS:
        if not isinstance(data.get(name), str) or not data[name]:
            raise ValueError(f"line {number}: field '{name}' is missing or not a string")
    try:
        created = datetime.fromisoformat(str(data.get("created_at", "")).replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"line {number}: field 'created_at' must be ISO 8601, got {data.get('created_at')!r}"
        ) from None
    if created.tzinfo is None:
        raise ValueError(f"line {number}: field 'created_at' needs a timezone (e.g. Z or +03:00)")
    return RawMention(
        platform=data["platform"],
        external_id=data["external_id"],
        url=str(data.get("url", "")),
        author_external_id=data["author_external_id"],
        author_handle=data["author_handle"],
        text=data["text"],
        created_at=created,
        parent_external_id=data.get("parent_external_id") or None,
        author_followers=data.get("author_followers"),
        raw=data,
    )


def cmd_import(settings: Settings, args: argparse.Namespace) -> int:
    """Import a JSONL file in chunks; bad lines are reported and skipped, never half-stored."""
    from workers.cli.support import make_runtime, progress

    if not args.file.exists():
        raise ValueError(f"import file {args.file} does not exist")
    runtime = make_runtime(settings)
    good, errors = [], []
    with args.file.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if line.strip():
                try:
                    good.append(parse_mention_line(line, number))
                except ValueError as exc:
                    errors.append(str(exc))
    totals = {"new": 0, "updated": 0, "unchanged": 0}
    for start in range(0, len(good), IMPORT_CHUNK):
        with db.transaction(runtime.sessions) as session:
            brand = _brand(
                session, args.brand or (settings.brands[0].name if settings.brands else None)
            )
            result = store_page(session, None, brand, good[start : start + IMPORT_CHUNK], utcnow())
        for key, value in asdict(result).items():
            totals[key] += value
        progress(f"imported {min(start + IMPORT_CHUNK, len(good))}/{len(good)}")
    for error in errors:
        print(f"{args.file}: {error}", file=sys.stderr)
    print(json.dumps({"file": str(args.file), "invalid": len(errors), **totals}))
    return 1 if errors else 0


def _brand(session: Any, name: str | None) -> Brand | None:
    if name is None:
        return None
    brand = session.scalar(select(Brand).where(Brand.name == name))
    if brand is None:
        raise ValueError(f"brand {name!r} is not configured")
    return brand


def read_texts(path: Path, text_column: str | None) -> Iterator[dict[str, Any]]:
    """Records from JSONL (``text`` field) or CSV (``--text-column``), with ``text`` set."""
    if not path.exists():
        raise ValueError(f"input file {path} does not exist")
    if path.suffix.lower() == ".csv":
        if not text_column:
            raise ValueError("CSV input needs --text-column NAME")
        with path.open(encoding="utf-8", newline="") as fh:
            for number, row in enumerate(csv.DictReader(fh), start=2):
                if text_column not in row:
                    raise ValueError(f"{path}: no column {text_column!r} (line {number})")
                yield {**row, "text": row[text_column] or ""}
        return
    column = text_column or "text"
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}: line {number}: not valid JSON ({exc.msg})") from None
            if not isinstance(record, dict) or not isinstance(record.get(column), str):
                raise ValueError(f"{path}: line {number}: field {column!r} missing or not text")
            yield {**record, "text": record[column]}


def cmd_score(settings: Settings, args: argparse.Namespace) -> int:
    """Score a file of texts and write one JSON object per input line."""
    import nlp
    from workers.cli.support import progress

    records = list(read_texts(args.input, args.text_column))
    scorer = nlp.load_scorer(settings.encoder_path)
    started, done = time.perf_counter(), 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with args.output.open("w", encoding="utf-8") as out:
        for start in range(0, len(records), SCORE_CHUNK):
            chunk = records[start : start + SCORE_CHUNK]
            for record, result in zip(chunk, scorer.score([r["text"] for r in chunk]), strict=True):
                out.write(json.dumps({**record, **score_fields(result)}, ensure_ascii=False) + "\n")
            done += len(chunk)
            progress(f"scored {done}/{len(records)}")
    seconds = time.perf_counter() - started
    if args.stats:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            json.dumps(
                {
                    "texts": done,
                    "seconds": round(seconds, 3),
                    "texts_per_s": round(done / seconds, 1) if seconds else None,
                    "peak_memory_mb": round(peak_mb, 1),
                }
            )
        )
    return 0


def score_fields(result: Any) -> dict[str, Any]:
    """The output fields of ``otklik score`` for one TextScore."""
    return {
        "sentiment": result.sentiment,
        "sentiment_probs": {k: round(float(v), 4) for k, v in result.sentiment_probs.items()},
        "complaint_prob": round(float(result.complaint_prob), 4),
        "is_complaint": bool(result.is_complaint),
        "complaint_type": result.complaint_type,
        "is_question": bool(result.is_question),
        "lang": result.lang,
        "model_version": result.model_version,
    }
