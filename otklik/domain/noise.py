"""Noise control: which collected posts are kept (pure rules on plain values)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from nlp.rules import detect_lang
from otklik.domain import RawMention

# A classic retweet/repost copies the text behind this prefix (Twitter v1 style, also VK/others).
REPOST_PREFIXES = ("RT @",)


@dataclass(frozen=True, slots=True)
class NoiseRules:
    """What a source drops before storing."""

    include_reposts: bool = False
    exclude_keywords: Sequence[str] = ()
    exclude_authors: Sequence[str] = ()
    languages: Sequence[str] = ()  # empty: keep every language
    brand_handles: Sequence[str] = ()  # the brand's own posts are never noise

    def drop_reason(self, mention: RawMention) -> str | None:
        """Why ``mention`` is noise, or None to keep it."""
        handle = _handle(mention.author_handle)
        if handle in {_handle(h) for h in self.brand_handles}:
            return None
        text = mention.text.casefold()
        if not self.include_reposts and mention.text.startswith(REPOST_PREFIXES):
            return "repost"
        if handle in {_handle(a) for a in self.exclude_authors}:
            return "excluded author"
        if any(word.casefold() in text for word in self.exclude_keywords if word):
            return "excluded keyword"
        if self.languages and detect_lang(mention.text) not in self.languages:
            return "language"
        return None


def split_noise(
    rules: NoiseRules, mentions: Iterable[RawMention]
) -> tuple[list[RawMention], list[tuple[RawMention, str]]]:
    """(kept, dropped with the reason for each)."""
    kept, dropped = [], []
    for mention in mentions:
        reason = rules.drop_reason(mention)
        if reason is None:
            kept.append(mention)
        else:
            dropped.append((mention, reason))
    return kept, dropped


def _handle(value: str) -> str:
    return value.casefold().lstrip("@")
