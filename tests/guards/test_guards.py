"""Each guard changes outputs on flagged inputs and leaves the rest alone where it promises to;
bad inputs and incompatible stacks fail with clear errors."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from obliviate.evals.metrics.refusal import classify_response
from obliviate.methods.guards.base import Guard, GuardConfigError, make_guard, unwrap
from obliviate.methods.guards.classifier import KeywordClassifier
from obliviate.methods.guards.decoding import LogitsUnavailableError
from obliviate.methods.guards.eco import ECO
from obliviate.methods.guards.memfree import MemFree
from obliviate.methods.guards.output_filter import OutputFilter
from obliviate.methods.guards.rcad import RCAD
from obliviate.methods.guards.system_prompt import PROMPTS, SystemPromptGuard
from obliviate.methods.guards.topk_perturb import TopKPerturb
from obliviate.methods.guards.uld import ULD
from obliviate.models.lm import Prompt, Scored
from obliviate.registry import guards

GUARDS = ["eco", "memfree", "output_filter", "rcad", "system_prompt", "topk_perturb", "uld"]


class Recorder:
    """A text-only LM that records what it was asked (no logits: a hosted API, say)."""

    name = "recorder"

    def __init__(self, reply: str = "ok") -> None:
        self.reply, self.prompts, self.scored = reply, [], []  # type: ignore[var-annotated]

    def generate(self, prompts, *, max_new_tokens, sampling=None, stop=()):  # type: ignore[no-untyped-def]
        self.prompts += list(prompts)
        return [self.reply for _ in prompts]

    def token_stats(self, items):  # type: ignore[no-untyped-def]
        self.scored += list(items)
        return []


def test_every_guard_is_registered() -> None:
    assert set(GUARDS) <= set(guards.names())


def test_guard_rejects_a_non_lm() -> None:
    with pytest.raises(TypeError, match="LM protocol"):
        SystemPromptGuard("not a model", template="privacy")  # type: ignore[arg-type]


# ------------------------------------------------------------------------ system prompt
def test_system_prompt_conditions_generation_and_scoring() -> None:
    rec = Recorder()
    g = SystemPromptGuard(rec, template="refuse_subjects", subjects=["Alora Venn"])
    g.generate(
        [
            Prompt("Where was Alora Venn born?"),
            Prompt("Once upon", chat=False),
            Prompt("Hi", system="Be brief."),
        ],
        max_new_tokens=4,
    )
    chat, raw, sys = rec.prompts
    assert "Alora Venn" in chat.system and chat.text == "Where was Alora Venn born?"
    assert raw.system is None and raw.text.endswith("\n\nOnce upon") and "Alora Venn" in raw.text
    assert sys.system.endswith("\n\nBe brief.")
    g.token_stats([Scored(Prompt("Q"), "A")])
    assert rec.scored[0].prompt.system == g.system


def test_system_prompt_changes_the_model(tiny_lm) -> None:  # type: ignore[no-untyped-def]
    g = SystemPromptGuard(tiny_lm, template="no_copyright")
    item = Scored(Prompt("Continue: the quick brown"), "fox jumps")
    assert not np.allclose(
        g.token_stats([item])[0].logprobs, tiny_lm.token_stats([item])[0].logprobs
    )


def test_system_prompt_needs_subjects_for_named_templates(tiny_lm) -> None:  # type: ignore[no-untyped-def]
    assert "{subjects}" in PROMPTS["refuse_subjects"]
    with pytest.raises(GuardConfigError, match="subjects"):
        SystemPromptGuard(tiny_lm, template="refuse_subjects")


# ------------------------------------------------------------------------ top-k perturbation
def test_topk_perturb_changes_outputs_deterministically(tiny_lm) -> None:  # type: ignore[no-untyped-def]
    prompts = [Prompt("Where was Alora Venn born?"), Prompt("The quick", chat=False)]
    base = tiny_lm.generate(prompts, max_new_tokens=12)
    g = TopKPerturb(tiny_lm, k=20, sigma=3.0)
    out = g.generate(prompts, max_new_tokens=12)
    assert out != base
    g.clear_cache()
    assert g.generate(prompts[::-1], max_new_tokens=12) == out[::-1]  # seeded per prompt
    assert TopKPerturb(tiny_lm, seed=1).generate(prompts, max_new_tokens=12) != out
    with pytest.raises(GuardConfigError):
        TopKPerturb(tiny_lm, sigma=0)


# ------------------------------------------------------------------------ R-CAD
def test_rcad_contrasts_relevant_prompts_only(memoriser, memorised_texts) -> None:  # type: ignore[no-untyped-def]
    doc = memorised_texts[0]
    g = RCAD(memoriser, documents=[doc], min_relevance=0.5)
    on, off = Prompt("The quick brown fox", chat=False), Prompt("abcdefgh", chat=False)
    assert g.active(on) and not g.active(off)
    assert g.with_document(on).text.startswith(doc)
    item_on, item_off = Scored(on, " jumps over the lazy dog."), Scored(off, "ijklmnop")
    base_on, base_off = memoriser.token_stats([item_on, item_off])
    got_on, got_off = g.token_stats([item_on, item_off])
    assert not np.allclose(got_on.logprobs, base_on.logprobs, atol=0.1)
    np.testing.assert_allclose(got_off.logprobs, base_off.logprobs, atol=0.05)  # bf16 vs fp32
    assert g.generate([off], max_new_tokens=10) == memoriser.generate([off], max_new_tokens=10)


def test_rcad_bad_inputs(tiny_lm) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(GuardConfigError, match="at least one"):
        RCAD(tiny_lm, documents=[" "])
    with pytest.raises(GuardConfigError, match="alpha"):
        RCAD(tiny_lm, documents=["x y"], alpha=0)
    with pytest.raises(LogitsUnavailableError, match="exposes none"):
        RCAD(Recorder(), documents=["x y"])


# ------------------------------------------------------------------------ ECO
def test_eco_leaves_unflagged_prompts_identical(memoriser, memorised_qa) -> None:  # type: ignore[no-untyped-def]
    g = ECO(memoriser, classifier=KeywordClassifier(["France"]))
    clean = [Prompt(memorised_qa[0][0]), Prompt("The quick brown", chat=False)]
    assert g.flags(clean) == [False, False]
    assert g.generate(clean, max_new_tokens=16) == memoriser.generate(clean, max_new_tokens=16)
    item = Scored(clean[0], memorised_qa[0][1], end_of_turn=True)
    np.testing.assert_array_equal(
        g.token_stats([item])[0].logprobs, memoriser.token_stats([item])[0].logprobs
    )


def test_eco_corrupts_flagged_prompts(memoriser, memorised_qa) -> None:  # type: ignore[no-untyped-def]
    q, a = memorised_qa[1]  # the France question
    g = ECO(
        memoriser,
        classifier=KeywordClassifier(["France"]),
        corruption="zero",
        strength=1.0,
        scope="user",
    )
    flagged = Prompt(q)
    assert g.flags([flagged]) == [True]
    base = memoriser.generate([flagged], max_new_tokens=16)[0]
    assert base == a
    assert g.generate([flagged], max_new_tokens=16)[0] != base
    item = Scored(flagged, a, end_of_turn=True)
    assert g.token_stats([item])[0].mean_nll > 2 * memoriser.token_stats([item])[0].mean_nll
    # Only the user's tokens are corrupted, not the chat template around them.
    ids = memoriser.encode_prompt(flagged)
    pos = g._positions(flagged, ids)
    assert 0 < len(pos) < len(ids)
    assert memoriser.tokenizer.decode([ids[i] for i in pos]).strip() == q
    entity = ECO(memoriser, classifier=KeywordClassifier(["France"]), scope="entity")
    assert (
        memoriser.tokenizer.decode([ids[i] for i in entity._positions(flagged, ids)]).strip()
        == "France"
    )


def test_eco_bad_inputs(tiny_lm) -> None:  # type: ignore[no-untyped-def]
    kw = KeywordClassifier(["x"])
    with pytest.raises(GuardConfigError, match="corruption"):
        ECO(tiny_lm, classifier=kw, corruption="blur")  # type: ignore[arg-type]
    with pytest.raises(GuardConfigError, match="strength"):
        ECO(tiny_lm, classifier=kw, corruption="zero", strength=2.0)
    with pytest.raises(LogitsUnavailableError):
        ECO(Recorder(), classifier=kw)
    with pytest.raises(LogitsUnavailableError, match="hides"):
        MemFree(ECO(tiny_lm, classifier=kw), blocklist=["the quick brown fox jumps over"], n=2)


# ------------------------------------------------------------------------ output filter
def test_output_filter_passes_clean_outputs_untouched(
    memoriser, memorised_texts, memorised_qa
) -> None:  # type: ignore[no-untyped-def]
    g = OutputFilter(memoriser, blocklist=[memorised_texts[0]], min_words=4)
    prompts = [Prompt("The quick brown", chat=False), Prompt(memorised_qa[0][0])]
    base = memoriser.generate(prompts, max_new_tokens=20)
    out = g.generate(prompts, max_new_tokens=20)
    assert out[1] == base[1]
    assert out[0] == g.refusal and classify_response(out[0]) == "refusal"
    assert g.n_filtered == 1


def test_output_filter_keys_and_errors() -> None:
    g = OutputFilter(Recorder("She was born in Velmora."), keys=["Velmora"])
    assert g.generate([Prompt("q")], max_new_tokens=3) == [g.refusal]
    assert not g.violates("Velmorans are people")  # whole words only
    with pytest.raises(GuardConfigError, match="non-empty blocklist or keys"):
        OutputFilter(Recorder(), blocklist=[])
    with pytest.raises(GuardConfigError, match="longer than every"):
        OutputFilter(Recorder(), blocklist=["two words"], min_words=6)


# ------------------------------------------------------------------------ ULD
def test_uld_adapter_matches_the_uld_model(tmp_path, memoriser) -> None:  # type: ignore[no-untyped-def]
    from obliviate.methods.uld_model import ULDModel, truncated_copy

    uld_model = ULDModel(memoriser.model, truncated_copy(memoriser.model, 1), weight=-0.8)
    uld_model.save_pretrained(tmp_path)
    memoriser.tokenizer.save_pretrained(tmp_path)
    g = ULD.from_dir(tmp_path, bf16=False)  # exact fp32 decoding, as HF's generate runs it
    prompt = Prompt("The quick brown", chat=False)
    ids = memoriser.encode_prompt(prompt)
    import torch

    want = uld_model.generate(torch.tensor([ids]), max_new_tokens=8)[0, len(ids) :].tolist()
    assert g.generate_ids([prompt], max_new_tokens=8)[0].new_ids == want
    assert g.weight == pytest.approx(-0.8)


def test_uld_bad_inputs(tiny_lm, memoriser) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(GuardConfigError, match="negative"):
        ULD(tiny_lm, assistant=memoriser, weight=0.5)
    with pytest.raises(GuardConfigError, match="needs an assistant"):
        make_guard("uld", tiny_lm, world=object())
    with pytest.raises(LogitsUnavailableError, match="ULD assistant"):
        ULD(tiny_lm, assistant=Recorder())


# ------------------------------------------------------------------------ stacking
def test_logit_guards_compose_under_and_over_prompt_guards(memoriser, memorised_texts) -> None:  # type: ignore[no-untyped-def]
    sp = SystemPromptGuard(memoriser, template="no_copyright")
    mf = MemFree(sp, blocklist=[memorised_texts[0]], n=4)
    prompt = Prompt("The quick brown", chat=False)
    out = mf.generate_ids([prompt], max_new_tokens=12)[0]
    assert memoriser.tokenizer.decode(out.prompt_ids).startswith(sp.system)  # system prompt kept
    assert not mf.contains_blocked(out.prompt_ids[-3:] + out.new_ids)
    outer = OutputFilter(TopKPerturb(mf), blocklist=[memorised_texts[0]])
    assert unwrap(outer) is memoriser
    assert [d["name"] for d in _chain(outer.describe())] == [
        "output_filter",
        "topk_perturb",
        "memfree",
        "system_prompt",
    ]


def _chain(d):  # type: ignore[no-untyped-def]
    while "name" in d:
        yield d
        d = d["inner"]


def test_text_only_models_take_text_guards_but_not_logit_guards() -> None:
    rec = Recorder("copy: the quick brown fox jumps over the lazy dog")
    assert isinstance(
        OutputFilter(rec, blocklist=["the quick brown fox jumps over the lazy dog"]), Guard
    )
    for name in ("memfree", "topk_perturb"):
        kwargs = {"blocklist": ["a b c d e f g h"]} if name == "memfree" else {}
        with pytest.raises(LogitsUnavailableError, match="HFLM"):
            make_guard(name, rec, **kwargs)
    assert replace(Prompt("x"), chat=False).chat is False


def test_make_guard_without_a_world_names_what_is_missing(tiny_lm) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(GuardConfigError, match="needs blocklist: give a world"):
        make_guard("memfree", tiny_lm)
    assert isinstance(make_guard("topk_perturb", tiny_lm), TopKPerturb)
    with pytest.raises(KeyError, match="Did you mean: memfree"):
        make_guard("memfre", tiny_lm)
