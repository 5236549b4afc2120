"""Text helpers shared by the forum connectors: HTML to plain text and keyword matching."""

from __future__ import annotations

import re
import shlex
from html.parser import HTMLParser

_BLOCK_TAGS = {"p", "br", "div", "li", "blockquote", "pre", "h1", "h2", "h3", "h4", "tr", "aside"}


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def html_to_text(markup: str) -> str:
    """Strip tags, decode entities, keep paragraph breaks, collapse other whitespace."""
    parser = _TextExtractor()
    parser.feed(markup or "")
    parser.close()
    text = "".join(parser.parts)
    lines = (re.sub(r"[ \t\r\f\v]+", " ", line).strip() for line in text.split("\n"))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


class KeywordFilter:
    """Client-side query matching for sources without server-side search.

    Syntax: whitespace-separated terms, ``"quoted phrases"``, ``-excluded`` terms and
    an optional ``OR`` between terms (ignored: any positive term matching is enough).
    Matching is case-insensitive substring matching. An empty query matches everything.
    """

    def __init__(self, query: str) -> None:
        try:
            tokens = shlex.split(query or "")
        except ValueError:  # an unbalanced quote: fall back to plain splitting
            tokens = (query or "").replace('"', " ").split()
        terms = [t.casefold() for t in tokens if t and t != "OR"]
        self.include = [t for t in terms if not t.startswith("-")]
        self.exclude = [t[1:] for t in terms if t.startswith("-") and len(t) > 1]

    def matches(self, text: str) -> bool:
        """True when ``text`` contains any included term and no excluded term."""
        folded = text.casefold()
        if any(term in folded for term in self.exclude):
            return False
        return not self.include or any(term in folded for term in self.include)
