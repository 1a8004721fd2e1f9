"""Text normalisation and ROUGE scorers shared by the metric families."""

from __future__ import annotations

import functools
import re
import unicodedata
from typing import Any

_WORD = re.compile(r"\w+", re.UNICODE)
_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def strip_accents(s: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", s) if not unicodedata.combining(c))


def normalize_answer(s: str) -> str:
    """Lower-case, strip accents, punctuation → space, collapse whitespace (SQuAD-style, but
    articles are kept: a key like "The Hague" must still match itself)."""
    s = strip_accents(unicodedata.normalize("NFKC", s)).lower()
    s = "".join(" " if unicodedata.category(c)[0] in "PSZC" else c for c in s)
    return " ".join(s.split())


# Number words a short answer may use instead of digits ("three" for "3"), as whole words.
_NUMBER_WORDS = dict(
    zip(
        ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty"],
        map(str, range(21)),
        strict=True,
    )
) | {w: str(10 * i) for i, w in enumerate(["thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"], 3)}


def digits_for_number_words(normalized: str) -> str:
    """Replace whole-word numbers zero..twenty and the tens with digits in an already
    normalised string, so "The answer is 3" and "three sides" state the same key."""
    return " ".join(_NUMBER_WORDS.get(w, w) for w in normalized.split())


def normalize_chars(s: str) -> str:
    """CoTaEval's character normalisation: lower-case, drop whitespace and punctuation."""
    return "".join(c for c in normalize_answer(s) if not c.isspace())


def words(s: str) -> list[str]:
    """Lower-cased word tokens (punctuation dropped)."""
    return _WORD.findall(unicodedata.normalize("NFKC", s).lower())


def tokens(s: str) -> list[str]:
    """Words and punctuation marks, a dependency-free stand-in for nltk.word_tokenize."""
    return _TOKEN.findall(s)


@functools.cache
def rouge_scorer(kind: str, stemmer: bool) -> Any:
    from rouge_score import rouge_scorer as rs

    return rs.RougeScorer([kind], use_stemmer=stemmer)


def rouge(reference: str, output: str, kind: str = "rougeL", *, stemmer: bool) -> Any:
    """rouge-score's Score(precision, recall, fmeasure). Its tokenizer keeps only [a-z0-9]
    runs, so non-Latin text scores 0 against itself: documented limitation of the package."""
    return rouge_scorer(kind, stemmer).score(reference, output)[kind]
