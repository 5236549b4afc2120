"""Cheap text heuristics: language (ru/en/other) and "is this a question".

These run per text without the encoder.  They are deliberately simple and
transparent; the docstrings state exactly what they look at.
"""

from __future__ import annotations

import re

_URL = re.compile(r"https?://\S+|www\.\S+", re.IGNORECASE)
_MENTION = re.compile(r"[@#][\w.]+", re.UNICODE)
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)

# Letters that occur in Ukrainian/Belarusian/Serbian etc. but never in Russian.
_NON_RU_CYRILLIC = set("іїєґўђјљњћџѓќѕІЇЄҐЎЂЈЉЊЋЏЃЌЅ")
# Frequent Ukrainian words spelled without those letters.
_UK_WORDS = frozenset({"дякую", "це", "але", "щось", "також", "тому", "немає", "привіт", "що"})
_EN_WORDS = frozenset(
    [
        "the",
        "a",
        "an",
        "and",
        "or",
        "but",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "to",
        "of",
        "in",
        "on",
        "at",
        "for",
        "with",
        "my",
        "your",
        "you",
        "i",
        "me",
        "we",
        "it",
        "this",
        "that",
        "not",
        "no",
        "have",
        "has",
        "had",
        "do",
        "does",
        "did",
        "can",
        "could",
        "will",
        "would",
        "should",
        "what",
        "why",
        "how",
        "when",
        "where",
        "who",
        "which",
        "there",
        "their",
        "they",
        "please",
        "thanks",
        "thank",
        "just",
        "so",
        "from",
        "get",
        "got",
    ]
)
_OTHER_LATIN_WORDS = frozenset(
    [
        "und",
        "der",
        "die",
        "das",
        "nicht",
        "ist",
        "ich",
        "sie",
        "mit",
        "auf",
        "le",
        "la",
        "les",
        "est",
        "et",
        "pas",
        "je",
        "vous",
        "une",
        "des",
        "pour",
        "el",
        "los",
        "las",
        "que",
        "y",
        "es",
        "por",
        "con",
        "una",
        "del",
        "para",
        "una",
        "muy",
        "il",
        "che",
        "di",
        "non",
        "sono",
        "per",
        "een",
        "het",
        "niet",
        "van",
        "ik",
        "je",
        "nie",
        "jest",
        "się",
        "oraz",
        "nao",
        "não",
        "uma",
        "com",
    ]
)


def _letters(text: str) -> tuple[int, int, int]:
    """Counts of Cyrillic, basic-Latin and other letters in ``text``."""
    cyr = lat = other = 0
    for ch in text:
        if not ch.isalpha():
            continue
        if "\u0400" <= ch <= "\u04ff":
            cyr += 1
        elif ch.isascii():
            lat += 1
        else:
            other += 1
    return cyr, lat, other


def detect_lang(text: str) -> str:
    """Return ``"ru"``, ``"en"`` or ``"other"``.

    URLs, @mentions and #hashtags are ignored.  Cyrillic letters must be the majority
    and no Ukrainian/Belarusian-only letters (or a few common Ukrainian words) may
    appear for ``"ru"``.  Latin-majority
    text is ``"en"`` unless it has more foreign than English function words or many
    accented letters.  Text without letters is ``"other"``.
    """
    clean = _MENTION.sub(" ", _URL.sub(" ", text or ""))
    cyr, lat, other = _letters(clean)
    total = cyr + lat + other
    if total == 0:
        return "other"
    if cyr / total >= 0.5:
        if any(ch in _NON_RU_CYRILLIC for ch in clean):
            return "other"
        word_set = {w.lower() for w in _WORD.findall(clean)}
        return "other" if word_set & _UK_WORDS else "ru"
    if (lat + other) / total < 0.5 or other > max(2, 0.1 * total):
        return "other"
    words = [w.lower() for w in _WORD.findall(clean)]
    english = sum(w in _EN_WORDS for w in words)
    foreign = sum(w in _OTHER_LATIN_WORDS for w in words)
    return "other" if foreign > english and foreign >= 2 else "en"


_EN_QUESTION_START = re.compile(
    r"^(how|what|when|where|why|who|whom|whose|which|can|could|would|will|do|does|did|is|are|"
    r"was|were|has|have|should|shall|may|any ?one|anybody)\b",
    re.IGNORECASE,
)
_RU_QUESTION_START = re.compile(
    r"^(когда|где|куда|откуда|почему|зачем|отчего|кто|кого|кому|какой|какая|какое|какие|"
    r"каков|сколько|чей|чья|можно|подскажите|скажите|подскажи|объясните|разве|неужели|"
    r"как\s+(мне|нам|можно|узнать|сделать|оформить|вернуть|получить|связаться|отменить|"
    r"изменить|поменять|подключить|отключить|долго)|"
    r"что\s+(делать|с\s|случилось|происходит|значит))\b",
    re.IGNORECASE,
)
_RU_LI = re.compile(r"^\w+\s+ли\b", re.IGNORECASE)
_EXCLAIM_HOW = frozenset(
    [
        "dare",
        "awful",
        "terrible",
        "great",
        "nice",
        "sad",
        "stupid",
        "annoying",
        "cool",
        "lovely",
        "rude",
        "bad",
        "good",
    ]
)
_SENTENCE = re.compile(r"[^.!?\n]+[.!?\n]*")
_LEADING_NOISE = re.compile(r"^(?:[@#][\w.]+[\s,:]*)+|^[\W_]+", re.UNICODE)


def is_question(text: str) -> bool:
    """True if some sentence ends in ``?`` or opens with a ru/en interrogative.

    URLs are removed first (a ``?`` inside a link does not count) and leading
    @mentions/#hashtags of each sentence are skipped, so "@shop where is my order"
    counts.  Russian "X ли ..." constructions and polite requests for information
    ("подскажите", "скажите") count as questions too.
    """
    clean = _URL.sub(" ", text or "")
    if "?" in clean:
        return True
    for sentence in _SENTENCE.findall(clean):
        head = _LEADING_NOISE.sub("", sentence.strip()).strip()
        if not head:
            continue
        if _EN_QUESTION_START.match(head) and _looks_interrogative_en(head):
            return True
        if _RU_QUESTION_START.match(head) or _RU_LI.match(head):
            return True
    return False


def _looks_interrogative_en(sentence: str) -> bool:
    """Reject declaratives like "Will never fly again" or "Do not buy"."""
    words = sentence.lower().split()
    if len(words) < 2 or words[1] in {"never", "not", "no"}:
        return False
    if words[0] == "what" and words[1] in {"a", "an"}:
        return False
    return not (words[0] == "how" and words[1] in _EXCLAIM_HOW)
