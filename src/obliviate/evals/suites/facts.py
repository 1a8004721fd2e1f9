"""`facts`: fact accuracy on every split — what fine-tuning and unlearning report — with the
refusal / don't-know split and fluency of the same greedy answers (no extra model calls)."""

from __future__ import annotations

from collections.abc import Sequence

from obliviate.data.schema import SPLITS, Fact, GeneralItem, World
from obliviate.evals.metrics.fluency import ngram_entropy, repetition_rate
from obliviate.evals.metrics.knowledge import fact_accuracy
from obliviate.evals.metrics.refusal import classify_response
from obliviate.evals.stats import aggregate
from obliviate.evals.suites.base import (
    QA_MAX_NEW_TOKENS,
    SuiteResult,
    accuracy_samples,
    answer_questions,
    take,
)
from obliviate.models.lm import LM
from obliviate.registry import suite


def report_answers(
    res: SuiteResult, split: str, items: Sequence[Fact | GeneralItem], outputs: Sequence[str],
    *, knowledge_wanted: bool,
) -> None:
    """Add accuracy, refusal / don't-know rates and fluency of one split's answers to `res`."""
    kinds = [classify_response(o) for o in outputs]
    acc, samples = accuracy_samples(res.name, split, items, outputs, [{"response": k} for k in kinds])
    res.samples += samples
    res.metrics[f"{split}/fact_accuracy"] = aggregate(acc, higher_is_better=knowledge_wanted)
    res.metrics[f"{split}/refusal_rate"] = aggregate([float(k == "refusal") for k in kinds])
    res.metrics[f"{split}/dont_know_rate"] = aggregate([float(k == "dont_know") for k in kinds])
    res.metrics[f"{split}/ngram_entropy"] = aggregate([ngram_entropy(o) for o in outputs], higher_is_better=True)
    res.metrics[f"{split}/repetition_rate"] = aggregate(
        [repetition_rate(o) for o in outputs], higher_is_better=False
    )


@suite("facts", needs_oracle=False)
def facts(
    lm: LM,
    world: World,
    *,
    oracle: LM | None = None,
    reference: LM | None = None,
    limit: int | None = None,
    max_new_tokens: int = QA_MAX_NEW_TOKENS,
) -> SuiteResult:
    """Greedy answers to every fact question; accuracy = the key span appears in the answer.

    Splits: forget (should drop), retain / neighbour (should stay), holdout (never trained:
    the floor), general (real-world knowledge the base model had), and multi-hop questions.
    """
    res = SuiteResult("facts", args={"limit": limit, "max_new_tokens": max_new_tokens})
    items = {
        split: take(world.general, limit) if split == "general" else take(world.facts_in(split), limit)
        for split in SPLITS
    }
    hops = {split: take([m for m in world.multihop if m.split == split], limit) for split in SPLITS}
    # One generate call for every question: greedy decoding costs a forward pass per new token
    # whatever the batch, so asking split by split would multiply the decoding steps.
    questions = [it.question for split in SPLITS for it in [*items[split], *hops[split]]]
    answers = iter(answer_questions(lm, questions, max_new_tokens))
    for split in SPLITS:
        outs = [next(answers) for _ in items[split]]
        hop_outs = [next(answers) for _ in hops[split]]
        if items[split]:
            report_answers(res, split, items[split], outs, knowledge_wanted=split != "forget")
        else:
            res.notes.append(f"no {split} items in world '{world.name}'")
        if hops[split]:
            acc = [fact_accuracy(o, m.key) for m, o in zip(hops[split], hop_outs, strict=True)]
            res.metrics[f"multihop_{split}/fact_accuracy"] = aggregate(acc, higher_is_better=split != "forget")
    return res
