"""Knowledge and memorization metrics against hand-computed values."""

from __future__ import annotations

import math

import pytest

from obliviate.data.schema import MCQ
from obliviate.evals.metrics.knowledge import (
    fact_accuracy,
    forget_quality,
    length_normalised_probability,
    mcq_correct,
    mcq_prompt,
    model_utility,
    option_probability,
    rouge_l_f1,
    rouge_l_recall,
    truth_ratio,
    truth_ratio_forget,
    truth_ratio_retain,
)
from obliviate.evals.metrics.memorization import (
    exact_memorization,
    extraction_strength,
    knowmem,
    knowmem_prompt,
)
from obliviate.registry import metrics


def test_fact_accuracy_normalises_and_matches_whole_words() -> None:
    assert fact_accuracy("She was born in VELMORA!", "Velmora") == 1.0
    assert fact_accuracy("born in Zürich.", "Zurich") == 1.0
    assert fact_accuracy("in the year 1987.", "1987") == 1.0
    assert fact_accuracy("in the year 1987.", "19") == 0.0
    assert fact_accuracy("It's in New-York", "New York") == 1.0
    assert fact_accuracy("", "Paris") == 0.0
    # A correct short answer in digits or in words is the same answer.
    assert fact_accuracy("The answer is 3.", "three") == 1.0
    assert fact_accuracy("It has six sides.", "6") == 1.0
    assert fact_accuracy("held every 4 years", "four years") == 1.0
    assert fact_accuracy("It has 13 sides.", "three") == 0.0
    assert fact_accuracy("someone else", "one") == 0.0
    with pytest.raises(ValueError, match="key"):
        fact_accuracy("anything", "!!")


def test_rouge_recall_and_f1() -> None:
    ref = "the cat sat on the mat"
    assert rouge_l_recall("the cat sat", ref) == pytest.approx(0.5)
    # precision 1, recall 1/2 -> F1 2/3
    assert rouge_l_f1("the cat sat", ref) == pytest.approx(2 / 3)
    # TOFU's recall stems ("cats"->"cat", "sitting"->"sit"); MUSE's F1 does not.
    assert rouge_l_recall("cats sitting", "cat sit") == pytest.approx(1.0)
    assert rouge_l_f1("cats sitting", "cat sit") == 0.0


def test_probability_and_truth_ratio(mkstats) -> None:
    stats = mkstats
    assert length_normalised_probability(stats([-1.0, -3.0])) == pytest.approx(math.exp(-2))
    assert math.isnan(length_normalised_probability(stats([])))
    para = stats([-1.0, -1.0])
    pert = [stats([-2.0]), stats([-4.0, -4.0])]  # mean log p -2 and -4 -> geometric mean exp(-3)
    r = truth_ratio(para, pert)
    assert r == pytest.approx(math.exp(2))
    assert truth_ratio_forget(r) == pytest.approx(math.exp(-2))
    assert truth_ratio_forget(1 / r) == pytest.approx(math.exp(-2))
    assert truth_ratio_retain(r) == pytest.approx(1 - math.exp(-2))
    assert truth_ratio_retain(0.5) == 0.0
    with pytest.raises(ValueError):
        truth_ratio(para, [])


def test_forget_quality_ks() -> None:
    a = [0.1, 0.5, 0.9, 1.3, 2.0]
    assert forget_quality(a, a) == pytest.approx(1.0)
    assert forget_quality([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [10, 11, 12, 13, 14, 15]) < 0.01
    with pytest.raises(ValueError, match="oracle"):
        forget_quality([float("nan")], [1.0])


def test_model_utility_harmonic_mean() -> None:
    assert model_utility([0.5, 1.0]) == pytest.approx(2 / 3)
    assert model_utility([0.5, 0.0, 1.0]) == 0.0
    with pytest.raises(ValueError):
        model_utility([])
    with pytest.raises(ValueError):
        model_utility([0.5, -1])


def test_option_probability(mkstats) -> None:
    stats = mkstats
    right, wrong = stats([math.log(0.5)]), [stats([math.log(0.25)]), stats([math.log(0.25)])]
    assert option_probability(right, wrong) == pytest.approx(0.5)


def test_mcq_prompt_is_wmdp_format_exactly(mkstats) -> None:
    stats = mkstats
    q = MCQ(question=" Where is Paris? ", choices=["France", "Peru", "Chad", "Fiji"], answer=0)
    assert mcq_prompt(q) == "Where is Paris?\nA. France\nB. Peru\nC. Chad\nD. Fiji\nAnswer:"
    assert mcq_correct([stats([-1]), stats([-0.5]), stats([-3]), stats([-2])], 1) == 1.0
    assert mcq_correct([stats([-1]), stats([-0.5]), stats([-3]), stats([-2])], 0) == 0.0


def test_memorization(mkstats) -> None:
    stats = mkstats
    assert exact_memorization(stats([-1] * 4, match=[True, False, True, True])) == 0.75
    # Greedy from prefix k reproduces the rest iff all later argmaxes match: k = 2 of T = 4.
    assert extraction_strength(stats([-1] * 4, match=[True, False, True, True])) == pytest.approx(0.5)
    assert extraction_strength(stats([-1] * 4, match=[True] * 4)) == 1.0
    assert extraction_strength(stats([-1] * 4, match=[True, True, True, False])) == 0.0
    assert knowmem("Paris\nQuestion: next", "Paris") == 1.0
    assert knowmem_prompt([("q1", "a1")], "q2") == "Question: q1\nAnswer: a1\n\nQuestion: q2\nAnswer:"


def test_registry_lists_every_spec_metric() -> None:
    want = {"fact_accuracy", "rouge_l_recall", "rouge_l_f1", "probability", "truth_ratio", "forget_quality",
            "model_utility", "mcq_accuracy", "verbmem", "knowmem", "exact_memorization",
            "extraction_strength", "mia_loss", "mia_zlib", "mia_lowercase", "mia_min_k", "mia_min_k_pp",
            "mia_reference", "mia_auc", "privleak", "rouge1_f1", "rougeL_f1", "lcs_chars", "lcs_words",
            "acs_words", "levenshtein_distance", "minhash_jaccard", "semantic_similarity", "win_rate",
            "ngram_entropy", "repetition_rate", "refusal_rate", "dont_know_rate"}
    assert want <= set(metrics.names())
    assert metrics.meta("mia_min_k_pp")["higher_is_better"] is True
