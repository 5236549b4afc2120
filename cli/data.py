"""Data subcommands: import, score, nlp build/train/info."""

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
    p = sub.add_parser("nlp", help="the model: build, train, eval, info")
    nlp_sub = p.add_subparsers(required=True, metavar="ACTION")
    nlp_sub.add_parser("build", help="rebuild/verify the encoder under var/").set_defaults(
        handler=cmd_nlp_build
    )
    train = nlp_sub.add_parser("train", help="re-create the committed heads from registry data")
    train.add_argument("--out", type=Path, help="default: the package's nlp/heads directory")
    train.add_argument("--limit", type=int, help="use at most this many training tweets")
    train.add_argument("--cache-dir", type=Path, help="cache the tweets' features here")
    train.add_argument(
        "--finetune-top",
        action="store_true",
        help="also fine-tune the encoder's top layers (~10 min instead of ~2.5); not "
        "better than the frozen encoder in bfloat16 (see nlp/README.md). Without it the "
        "encoder as built (and its tuned layers, if any) is kept",
    )
    train.add_argument(
        "--with-corrections",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="add agents' score corrections from the database as labelled examples "
        "(default: yes when there are any)",
    )
    train.set_defaults(handler=cmd_nlp_train)
    ev = nlp_sub.add_parser("eval", help="accuracy, F1 and confusion matrix on a labelled file")
    ev.add_argument("--input", type=Path, help="JSONL or CSV with texts and labels")
    ev.add_argument("--task", required=True, choices=("sentiment", "complaint"))
    ev.add_argument("--label-column", help="field holding the true label")
    ev.add_argument("--text-column", help="field holding the text (default: text)")
    ev.add_argument("--heads", type=Path, help="heads directory (default: the shipped heads)")
    ev.add_argument("--compare-heads", type=Path, help="also evaluate these heads (before/after)")
    ev.add_argument(
        "--corrections",
        action="store_true",
        help="evaluate on the corrected mentions in the database instead of --input",
    )
    ev.add_argument("--json", action="store_true", help="one JSON line")
    ev.set_defaults(handler=cmd_nlp_eval)
    info = nlp_sub.add_parser("info", help="encoder directory, model version, heads")
    info.add_argument("--json", action="store_true")
    info.set_defaults(handler=cmd_nlp_info)


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
    from cli.support import make_runtime, progress

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
    from cli.support import progress

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


def cmd_nlp_build(settings: Settings, args: argparse.Namespace) -> int:
    """Build or verify the encoder."""
    from cli.support import progress
    from nlp.encoder_build import build_encoder

    print(build_encoder(settings.encoder_path, progress=progress))
    return 0


def cmd_nlp_train(settings: Settings, args: argparse.Namespace) -> int:
    """Re-create the heads from registry data (+ corrections) and print held-out figures."""
    from cli.support import progress
    from nlp.encoder_build import build_encoder
    from nlp.train import train_heads

    build_encoder(settings.encoder_path, progress=progress)
    kwargs: dict[str, Any] = {
        "progress": progress,
        "limit": args.limit,
        "finetune": args.finetune_top,
    }
    if args.out:
        kwargs["out_dir"] = args.out
    if args.cache_dir:
        kwargs["cache_dir"] = args.cache_dir
    if args.with_corrections is not False:
        corrections = load_corrections(settings)
        if args.with_corrections and not corrections:
            progress("no score corrections in the database")
        if corrections:
            progress(f"adding {len(corrections)} corrected mentions from the database")
            kwargs["corrections"] = corrections
    figures = train_heads(settings.encoder_path, **kwargs)
    figures.get("ru_handlabelled", {}).pop("predictions", None)
    print(json.dumps(figures, indent=2, default=str, ensure_ascii=False))
    return 0


def load_corrections(settings: Settings) -> list[dict[str, Any]]:
    """Corrected mentions as training examples: ``text`` plus the newest corrected labels.

    Uses the console's ``score_corrections`` table (``sentiment`` and ``is_complaint``;
    the newest correction per mention and field wins).
    """
    from cli.support import make_runtime
    from otklik.store.models import Mention, ScoreCorrection

    runtime = make_runtime(settings)
    latest: dict[int, dict[str, Any]] = {}
    with db.transaction(runtime.sessions) as session:
        rows = session.execute(
            select(ScoreCorrection.mention_id, ScoreCorrection.field, ScoreCorrection.new_value)
            .where(ScoreCorrection.field.in_(("sentiment", "is_complaint")))
            .order_by(ScoreCorrection.created_at, ScoreCorrection.id)
        ).all()
        for mention_id, field, value in rows:
            entry = latest.setdefault(mention_id, {})
            if field == "sentiment" and value in ("negative", "neutral", "positive"):
                entry["sentiment"] = value
            elif field == "is_complaint" and str(value).lower() in ("true", "false"):
                entry["is_complaint"] = str(value).lower() == "true"
        if latest:
            texts = dict(
                session.execute(
                    select(Mention.id, Mention.text).where(Mention.id.in_(list(latest)))
                ).all()
            )
        else:
            texts = {}
    return [
        {"text": texts[mid], "mention_id": mid, **labels}
        for mid, labels in sorted(latest.items())
        if labels and (texts.get(mid) or "").strip()
    ]


def parse_label(task: str, value: Any) -> str | None:
    """A file's label as ``negative``/``neutral``/``positive`` or ``complaint``/``other``.

    Complaint labels may be booleans, 1/0, yes/no, true/false or complaint/other.
    Returns ``None`` for an empty label (the row is skipped).
    """
    if value is None or str(value).strip() == "":
        return None
    text = str(value).strip().lower()
    if task == "sentiment":
        aliases = {"neg": "negative", "neu": "neutral", "pos": "positive"}
        text = aliases.get(text, text)
        if text not in ("negative", "neutral", "positive"):
            raise ValueError(f"sentiment label {value!r} is not negative/neutral/positive")
        return text
    if isinstance(value, bool):
        return "complaint" if value else "other"
    if text in ("1", "true", "yes", "y", "complaint"):
        return "complaint"
    if text in ("0", "false", "no", "n", "other", "not_complaint", "none"):
        return "other"
    raise ValueError(f"complaint label {value!r} is not true/false, 1/0, yes/no")


def eval_labels(task: str, scores: list[Any]) -> list[str]:
    """The scorer's predictions in the same label vocabulary as :func:`parse_label`."""
    if task == "sentiment":
        return [s.sentiment for s in scores]
    return ["complaint" if s.is_complaint else "other" for s in scores]


def cmd_nlp_eval(settings: Settings, args: argparse.Namespace) -> int:
    """Score a labelled file (or the corrected mentions) and print the metrics."""
    import nlp
    from cli.support import progress
    from nlp.train_eval import classification_metrics

    if args.corrections:
        field = "sentiment" if args.task == "sentiment" else "is_complaint"
        rows = [
            {"text": c["text"], "label": c[field]} for c in load_corrections(settings) if field in c
        ]
        label_column, source = "label", "score_corrections"
    else:
        if not args.input or not args.label_column:
            raise ValueError("nlp eval needs --input FILE and --label-column NAME")
        rows = list(read_texts(args.input, args.text_column))
        label_column, source = args.label_column, str(args.input)
        if rows and label_column not in rows[0]:
            raise ValueError(f"{args.input}: no column {label_column!r}")
    texts, truth = [], []
    for row in rows:
        label = parse_label(args.task, row.get(label_column))
        if label is not None:
            texts.append(row["text"])
            truth.append(label)
    if not texts:
        raise ValueError("no labelled rows to evaluate")
    labels = (
        ["negative", "neutral", "positive"] if args.task == "sentiment" else ["complaint", "other"]
    )
    positive = "complaint" if args.task == "complaint" else None
    result: dict[str, Any] = {"input": source, "task": args.task}
    heads_dirs = [("shipped" if not args.heads else str(args.heads), args.heads)]
    if args.compare_heads:
        heads_dirs.append((str(args.compare_heads), args.compare_heads))
    encoder = None
    for name, heads_dir in heads_dirs:
        scorer = nlp.load_scorer(settings.encoder_path, heads_dir)
        if encoder is not None:  # one encoder, two sets of heads
            scorer.encoder = encoder
        encoder = scorer.encoder
        started = time.perf_counter()
        predicted = eval_labels(args.task, scorer.score(texts))
        progress(f"{name}: scored {len(texts)} texts in {time.perf_counter() - started:.1f}s")
        metrics = classification_metrics(truth, predicted, labels, positive)
        metrics["model_version"] = scorer.model_version
        result["compare" if result.get("metrics") else "metrics"] = metrics
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        print(format_eval(result))
    return 0


def format_eval(result: dict[str, Any]) -> str:
    """Readable metrics: accuracy, macro-F1, per-class table and confusion matrix."""
    lines = [f"{result['task']} on {result['input']}"]
    for key in ("metrics", "compare"):
        m = result.get(key)
        if not m:
            continue
        lines.append(
            f"\n{m['model_version']}: n={m['n']} accuracy={m['accuracy']:.4f} "
            f"macro-F1={m['macro_f1']:.4f}" + (f" F1(complaint)={m['f1']:.4f}" if "f1" in m else "")
        )
        lines.append(f"  {'class':12s} {'precision':>9s} {'recall':>7s} {'f1':>7s} {'n':>6s}")
        for label, c in m["per_class"].items():
            lines.append(
                f"  {label:12s} {c['precision']:9.4f} {c['recall']:7.4f} {c['f1']:7.4f} "
                f"{c['support']:6d}"
            )
        width = max(len(x) for x in m["labels"]) + 2
        lines.append("  confusion (rows: true, columns: predicted)")
        lines.append("  " + " " * width + "".join(f"{x:>{width}s}" for x in m["labels"]))
        for label, row in zip(m["labels"], m["confusion_rows_true_cols_pred"], strict=True):
            lines.append(f"  {label:<{width}s}" + "".join(f"{v:>{width}d}" for v in row))
    return "\n".join(lines)


def cmd_nlp_info(settings: Settings, args: argparse.Namespace) -> int:
    """What model the scorer would load: encoder directory, version, heads, thresholds."""
    import nlp

    info = {"encoder_dir": str(settings.encoder_path), **nlp.info(settings.encoder_path)}
    print(json.dumps(info, indent=None if args.json else 2, default=str, ensure_ascii=False))
    return 0
