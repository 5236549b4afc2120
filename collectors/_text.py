"""Text helpers shared by the connectors: HTML to plain text, keyword matching, and for X a
post's full text and the weighted length X counts against its limit."""

from __future__ import annotations

import re
import shlex
import unicodedata
from collections.abc import Mapping
from html.parser import HTMLParser
from typing import Any

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


# --- X (Twitter) weighted length ----------------------------------------------------------
# The documented rules, https://docs.x.com/fundamentals/counting-characters, as implemented by
# twitter-text 3 (config v3: https://github.com/twitter/twitter-text/blob/master/config/v3.json):
# NFC first; code points in 0-4351, 8192-8205, 8208-8223 and 8242-8247 weigh 1, all others 2
# (CJK, emoji...); an emoji weighs 2 however many code points it has (skin tone, ZWJ sequence,
# flag, keycap); any URL weighs 23 (t.co), with or without a scheme. (The PyPI port,
# twitter-text-parser 3.0.0 of 2023, is unmaintained and no longer imports: pkg_resources.)

X_URL_WEIGHT = 23
_X_LIGHT = ((0, 4351), (8192, 8205), (8208, 8223), (8242, 8247))

# Emoji as twemoji's pattern (the one twitter-text uses) groups them. (c) and (R) are emoji only
# with VS16; every other pictograph lies where a code point weighs 2 anyway, so loose ranges do.
_PICTO = (
    r"\u203c\u2049\u2122\u2139\u2194-\u2199\u21a9\u21aa\u231a\u231b\u2328\u23cf\u23e9-\u23f3"
    r"\u23f8-\u23fa\u24c2\u25aa\u25ab\u25b6\u25c0\u25fb-\u25fe\u2600-\u27bf\u2934\u2935"
    r"\u2b05-\u2b07\u2b1b\u2b1c\u2b50\u2b55\u3030\u303d\u3297\u3299\U0001f000-\U0001faff"
)
_EMOJI_TAIL = r"(?:\ufe0f|[\U0001f3fb-\U0001f3ff]|[\U000e0020-\U000e007f])*"
_EMOJI = re.compile(
    r"[\U0001f1e6-\U0001f1ff]{2}"  # a flag: two regional indicators
    r"|[#*0-9]\ufe0f?\u20e3"  # a keycap
    r"|[\u00a9\u00ae]\ufe0f"
    rf"|[{_PICTO}]{_EMOJI_TAIL}(?:\u200d[{_PICTO}]{_EMOJI_TAIL})*"
)

# URLs: twitter-text's extractor, condensed. After http(s):// any domain counts; without a
# scheme an ASCII domain counts under a known top-level domain: every ccTLD, common gTLDs.
_CCTLD = (
    "ac ad ae af ag ai al am an ao aq ar as at au aw ax az ba bb bd be bf bg bh bi bj bl bm bn bo "
    "bq br bs bt bv bw by bz ca cc cd cf cg ch ci ck cl cm cn co cr cu cv cw cx cy cz de dj dk dm "
    "do dz ec ee eg eh er es et eu fi fj fk fm fo fr ga gb gd ge gf gg gh gi gl gm gn gp gq gr gs "
    "gt gu gw gy hk hm hn hr ht hu id ie il im in io iq ir is it je jm jo jp ke kg kh ki km kn kp "
    "kr kw ky kz la lb lc li lk lr ls lt lu lv ly ma mc md me mf mg mh mk ml mm mn mo mp mq mr ms "
    "mt mu mv mw mx my mz na nc ne nf ng ni nl no np nr nu nz om pa pe pf pg ph pk pl pm pn pr ps "
    "pt pw py qa re ro rs ru rw sa sb sc sd se sg sh si sj sk sl sm sn so sr ss st su sv sx sy sz "
    "tc td tf tg th tj tk tl tm tn to tp tr tt tv tw tz ua ug uk um us uy uz va vc ve vg vi vn vu "
    "wf ws ye yt za zm zw"
)
_GTLD = (
    "com net org info biz edu gov mil int name pro mobi aero asia cat coop jobs museum tel travel "
    "app dev page blog shop store online site website xyz top club live news today world life "
    "cloud email link help support global group tech digital media studio design agency network "
    "systems services solutions company center finance bank money market games fun one vip ltd "
    "inc llc art wiki moscow"
)
_TLD = "|".join(sorted((_CCTLD + " " + _GTLD).split(), key=len, reverse=True))
_PATH_CHAR = r"[a-z\u0400-\u04ff0-9!*';:=+,.$/%#\[\]\-\u2013_~@|&\u00c0-\u024f]"
_PATH_END = r"[+\-a-z\u0400-\u04ff0-9=_#/\u00c0-\u024f]"
_PARENS = rf"\({_PATH_CHAR}+\)"
_URL_REST = (
    rf"(?::[0-9]+)?(?:/(?:(?:{_PATH_CHAR}|{_PARENS})*(?:{_PATH_END}|{_PARENS}))?)?"
    r"(?:\?[a-z0-9!?*'@();:&=+$/%#\[\]\-_.,~|]*[a-z0-9\-_&=#/])?"
)
_NOT_DOMAIN = r"\s!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~\ufeff\ufffe\uffff\u202a-\u202e\u200e\u200f"
_LABEL = rf"[^{_NOT_DOMAIN}]+(?:[-_]+[^{_NOT_DOMAIN}]+)*"
_ASCII_LABEL = r"[a-z0-9\u00c0-\u024f]+(?:-+[a-z0-9\u00c0-\u024f]+)*"
_X_URL = re.compile(  # at most 30 labels (a domain has at most 253 characters): linear time
    rf"(?<![a-z0-9@\uff20$#\uff03])https?://(?:{_LABEL}\.){{1,30}}[^\W\d_]{{2,}}"
    rf"(?![0-9a-z@+\-]){_URL_REST}"
    rf"|(?<![a-z0-9@\uff20$#\uff03\-_./])(?:{_ASCII_LABEL}\.){{1,30}}(?:{_TLD})"
    rf"(?![0-9a-z@+\-]){_URL_REST}",
    re.IGNORECASE,
)


def _code_point_weight(text: str) -> int:
    return sum(1 if any(lo <= ord(c) <= hi for lo, hi in _X_LIGHT) else 2 for c in text)


def _plain_weight(text: str) -> int:
    total = position = 0
    for match in _EMOJI.finditer(text):
        total += _code_point_weight(text[position : match.start()]) + 2
        position = match.end()
    return total + _code_point_weight(text[position:])


_REPOST_PREFIX = re.compile(r"RT @\w{1,15}: ", re.ASCII)


def x_post_text(post: Mapping[str, Any], reposted: Mapping[str, Any] | None = None) -> str:
    """The full text of an X API v2 post: a long post's ``note_tweet`` text, and for a repost
    (whose own text the API cuts: "RT @x: ... …") "RT @x: " and the reposted post's full text.
    """
    note = post.get("note_tweet")  # posts over 280 characters carry the full text here
    own = str((note.get("text") if isinstance(note, dict) else None) or post.get("text") or "")
    if reposted is None:
        return own
    prefix = _REPOST_PREFIX.match(own)
    return (prefix.group(0) if prefix else "") + x_post_text(reposted)


def x_weighted_length(text: str) -> int:
    """The length of ``text`` as X counts it against its 280 limit (the rules above)."""
    text = unicodedata.normalize("NFC", text)
    total = position = 0
    for match in _X_URL.finditer(text):
        total += _plain_weight(text[position : match.start()]) + X_URL_WEIGHT
        position = match.end()
    return total + _plain_weight(text[position:])
