"""Test helpers: a real :class:`~nlp.Scorer` backed by a tiny random BERT (no weights).

Other packages' tests can use it to exercise code that needs a scorer without the
470 MB encoder::

    from nlp.testing import tiny_scorer

    def test_something(tmp_path):
        scorer = tiny_scorer(tmp_path)
        scores = scorer.score(["Где мой заказ?", "great service"])

The model is randomly initialised (seeded), so sentiment/complaint outputs are
arbitrary but deterministic; ``lang`` and ``is_question`` come from the same rules as
production.  Embeddings are 384-d so the committed heads apply unchanged.
"""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import TYPE_CHECKING

from nlp.encoder_build import FINGERPRINT, SPECIAL_TOKENS

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

    from nlp.types import Scorer

TINY_TAG = "tiny-random-bert"
_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]
_CYRILLIC = "абвгдеёжзийклмнопрстуфхцчшщъыьэюяіїєґ"


def tiny_vocab() -> list[str]:
    """Character-level WordPiece vocabulary covering lowercase Latin, Cyrillic and digits."""
    chars = string.ascii_lowercase + string.digits + _CYRILLIC
    punct = string.punctuation + "«»—–…№"
    return _SPECIALS + list(punct) + list(chars) + [f"##{c}" for c in chars]


def build_tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A :class:`transformers.PreTrainedTokenizerFast` over :func:`tiny_vocab`."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(tiny_vocab())}
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="<unk>", max_input_chars_per_word=64))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", vocab["<s>"]), ("</s>", vocab["</s>"])],
    )
    tok.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=512, **SPECIAL_TOKENS)


def build_tiny_encoder(target_dir: Path, seed: int = 0, layers: int = 1) -> Path:
    """Write a tiny random BERT (hidden 384) plus tokenizer to ``target_dir``; return it."""
    import torch
    from transformers import BertConfig, BertModel

    target_dir = Path(target_dir)
    if (target_dir / FINGERPRINT).is_file():
        return target_dir
    target_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer()
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=384,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=160,
        type_vocab_size=2,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    BertModel(config).eval().save_pretrained(str(target_dir))
    tokenizer.save_pretrained(str(target_dir))
    (target_dir / FINGERPRINT).write_text(json.dumps({"tag": f"{TINY_TAG}.s{seed}"}) + "\n")
    return target_dir


def tiny_scorer(tmp_path: Path, heads_dir: Path | None = None, seed: int = 0) -> Scorer:
    """A real :class:`nlp.scorer.EncoderScorer` on a tiny random model built under ``tmp_path``.

    Uses the committed heads unless ``heads_dir`` is given.  Building takes well under
    a second; calling it again with the same ``tmp_path`` reuses the files.
    """
    from nlp import load_scorer

    encoder_dir = build_tiny_encoder(Path(tmp_path) / f"tiny-encoder-s{seed}", seed=seed)
    return load_scorer(encoder_dir, heads_dir)
