"""HFLM: scoring matches a plain forward pass, batching changes nothing, one forward per pair."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from obliviate.models.hf_lm import HFLM, _token_stats_chunk
from obliviate.models.lm import LM, Prompt, Sampling, Scored
from obliviate.models.prompt import encode_pair

ITEMS = [
    Scored(Prompt("Where was Alora Venn born?"), "Alora Venn was born in Velmora.", end_of_turn=True),
    Scored(Prompt("hi"), "The quick brown fox"),
    Scored(Prompt("", chat=False), "The quick brown fox jumps over the lazy dog."),
    Scored(Prompt("Paris is", chat=False), " the capital of France."),
]


def test_is_an_lm(tiny_lm: HFLM) -> None:
    assert isinstance(tiny_lm, LM)


def test_token_stats_match_full_forward(tiny_lm: HFLM, tiny_model, tiny_tokenizer) -> None:  # type: ignore[no-untyped-def]
    st = tiny_lm.token_stats(ITEMS[:1])[0]
    p, a = encode_pair(tiny_tokenizer, ITEMS[0].prompt, ITEMS[0].continuation)
    with torch.no_grad():
        logp = tiny_model(torch.tensor([p + a])).logits[0].float().log_softmax(-1)[len(p) - 1 : -1]
    probs = logp.exp()
    mu = (probs * logp).sum(-1)
    sigma = ((probs * logp**2).sum(-1) - mu**2).sqrt()
    np.testing.assert_array_equal(st.token_ids, a)
    np.testing.assert_allclose(st.logprobs, logp.gather(-1, torch.tensor(a)[:, None])[:, 0], atol=1e-5)
    np.testing.assert_allclose(st.mu, mu, atol=1e-5)
    np.testing.assert_allclose(st.sigma, sigma, atol=1e-4)
    np.testing.assert_array_equal(st.argmax_match, logp.argmax(-1).numpy() == np.array(a))
    assert a[-1] == tiny_tokenizer.convert_tokens_to_ids("<|im_end|>")  # end_of_turn scored


def test_batched_and_single_agree(tiny_model, tiny_tokenizer) -> None:  # type: ignore[no-untyped-def]
    batched = HFLM(tiny_model, tiny_tokenizer, bf16=False).token_stats(ITEMS)
    for it, b in zip(ITEMS, batched, strict=True):
        single = HFLM(tiny_model, tiny_tokenizer, bf16=False, max_batch_size=1).token_stats([it])[0]
        np.testing.assert_allclose(single.logprobs, b.logprobs, atol=1e-5)
        np.testing.assert_allclose(single.sigma, b.sigma, atol=1e-5)


def test_bf16_close_to_fp32(tiny_model, tiny_tokenizer) -> None:  # type: ignore[no-untyped-def]
    a = HFLM(tiny_model, tiny_tokenizer, bf16=False).token_stats(ITEMS)
    b = HFLM(tiny_model, tiny_tokenizer, bf16=True).token_stats(ITEMS)
    for x, y in zip(a, b, strict=True):
        assert abs(x.logprobs.mean() - y.logprobs.mean()) < 0.05


def test_empty_prompt_skips_first_token_and_empty_continuation(tiny_lm: HFLM, tiny_tokenizer) -> None:  # type: ignore[no-untyped-def]
    text = ITEMS[2].continuation
    st = tiny_lm.token_stats([ITEMS[2], Scored(Prompt("hi"), "")])
    assert st[0].n_tokens == len(tiny_tokenizer(text, add_special_tokens=False)["input_ids"]) - 1
    assert st[1].n_tokens == 0


def test_cache_and_invalidation(tiny_lm: HFLM) -> None:
    tiny_lm.token_stats(ITEMS)
    tiny_lm.token_stats(ITEMS + ITEMS)
    assert tiny_lm.n_forward_texts == len(ITEMS)
    with torch.no_grad():
        next(tiny_lm.model.parameters()).add_(0.01)  # an in-place update, like an optimizer step
    tiny_lm.token_stats(ITEMS[:1])
    assert tiny_lm.n_forward_texts == len(ITEMS) + 1


def test_batched_generate_equals_unbatched_greedy(tiny_model, tiny_tokenizer) -> None:  # type: ignore[no-untyped-def]
    prompts = [Prompt("Where was Alora Venn born?"), Prompt("hi"), Prompt("The quick brown", chat=False),
               Prompt("What is 1987?", system="Be brief.")]
    batched = HFLM(tiny_model, tiny_tokenizer, bf16=False).generate(prompts, max_new_tokens=12)
    single = [HFLM(tiny_model, tiny_tokenizer, bf16=False).generate([p], max_new_tokens=12)[0] for p in prompts]
    assert batched == single
    assert all(isinstance(t, str) for t in batched)


def test_decoding_passes_the_kv_cache_under_the_installed_transformers_name(tiny_model, tiny_tokenizer) -> None:  # type: ignore[no-untyped-def]
    import warnings

    # transformers 5.24 renamed `past_key_values` to `cache` and warns on the old name (removed
    # in 5.40): decoding with the renamed argument must not trigger it, and the cache must work.
    # (test_greedy_matches_hf_generate checks what the cached decoding produces.)
    lm = HFLM(tiny_model, tiny_tokenizer, bf16=False)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*past_key_values.*")
        lm.generate([Prompt("Where was Alora Venn born?"), Prompt("hi")], max_new_tokens=8)
    assert lm.n_generated_tokens > 2


def test_greedy_matches_hf_generate(tiny_model, tiny_tokenizer) -> None:  # type: ignore[no-untyped-def]
    lm = HFLM(tiny_model, tiny_tokenizer, bf16=False)
    ids = lm.encode_prompt(Prompt("Where was Alora Venn born?"))
    ref = tiny_model.generate(torch.tensor([ids]), max_new_tokens=10, do_sample=False,
                              eos_token_id=sorted(lm.stop_ids), pad_token_id=lm.pad_id)[0, len(ids):]
    want = tiny_tokenizer.decode([t for t in ref.tolist() if t not in lm.stop_ids and t != lm.pad_id],
                                 skip_special_tokens=True)
    assert lm.generate([Prompt("Where was Alora Venn born?")], max_new_tokens=10) == [want]


def test_bf16_generation_equals_a_bf16_model(tiny_model, tiny_tokenizer) -> None:  # type: ignore[no-untyped-def]
    import copy

    prompts = [Prompt("Where was Alora Venn born?"), Prompt("The quick brown", chat=False)]
    lm = HFLM(tiny_model, tiny_tokenizer)  # fp32 weights, bf16 decoding by default
    assert lm.generation_dtype == torch.bfloat16
    cast = HFLM(copy.deepcopy(tiny_model).to(torch.bfloat16), tiny_tokenizer, bf16=False)
    assert lm.generate(prompts, max_new_tokens=10) == cast.generate(prompts, max_new_tokens=10)
    assert next(tiny_model.parameters()).dtype == torch.float32  # the model itself is untouched


def test_bf16_generation_runs_hooks_and_follows_weight_edits(tiny_model, tiny_tokenizer) -> None:  # type: ignore[no-untyped-def]
    lm = HFLM(tiny_model, tiny_tokenizer)
    p = [Prompt("hi")]
    before = lm.generate(p, max_new_tokens=6)[0]
    forced = tiny_tokenizer.convert_tokens_to_ids("Ġthe")

    def force(_m, _i, out):  # type: ignore[no-untyped-def]
        out = out.clone()
        out[..., forced] += 1e4
        return out

    handle = tiny_model.lm_head.register_forward_hook(force)  # e.g. directional ablation's hooks
    try:
        lm.clear_cache()
        assert lm.generate(p, max_new_tokens=6)[0] == " the" * 6
    finally:
        handle.remove()
    with torch.no_grad():  # an in-place edit (a weight attack) must reach the bf16 copy
        tiny_model.lm_head.weight.zero_()  # every logit 0: greedy picks token 0, <|endoftext|>
    assert before != ""
    assert lm.generate(p, max_new_tokens=6)[0] == ""


def test_shorter_greedy_requests_reuse_longer_runs(tiny_model, tiny_tokenizer) -> None:  # type: ignore[no-untyped-def]
    ps = [Prompt("Where was Alora Venn born?"), Prompt("hi")]
    lm = HFLM(tiny_model, tiny_tokenizer, bf16=False)
    lm.generate(ps, max_new_tokens=12)
    n = lm.n_generated_prompts
    fresh = HFLM(tiny_model, tiny_tokenizer, bf16=False)
    assert lm.generate(ps, max_new_tokens=5) == fresh.generate(ps, max_new_tokens=5)
    assert lm.n_generated_prompts == n  # served from the 12-token runs, nothing decoded
    lm.generate(ps, max_new_tokens=16)  # longer than any run so far: decoded
    assert lm.n_generated_prompts == n + 2
    lm.generate(ps, max_new_tokens=5, stop=["x"])  # stop strings are not served from prefixes
    assert lm.n_generated_prompts == n + 4


def test_sampling_reproducible_and_batch_independent(tiny_model, tiny_tokenizer) -> None:  # type: ignore[no-untyped-def]
    ps = [Prompt("hi"), Prompt("Where was Alora Venn born?")]
    s = Sampling(temperature=1.0, top_k=50, top_p=0.9, seed=3)
    a = HFLM(tiny_model, tiny_tokenizer, bf16=False).generate(ps, max_new_tokens=8, sampling=s)
    b = HFLM(tiny_model, tiny_tokenizer, bf16=False).generate(ps[:1], max_new_tokens=8, sampling=s)
    assert a[0] == b[0]
    c = HFLM(tiny_model, tiny_tokenizer, bf16=False).generate(ps, max_new_tokens=8, sampling=Sampling(seed=4))
    d = HFLM(tiny_model, tiny_tokenizer, bf16=False).generate(ps, max_new_tokens=8, sampling=Sampling(seed=4))
    assert c == d


def test_stop_strings_cut(tiny_model, tiny_tokenizer) -> None:  # type: ignore[no-untyped-def]
    lm = HFLM(tiny_model, tiny_tokenizer, bf16=False)
    full = lm.generate([Prompt("hi")], max_new_tokens=16)[0]
    if len(full) > 2:
        stop = full[1:3]
        cut = lm.generate([Prompt("hi")], max_new_tokens=16, stop=[stop])[0]
        assert cut == full[: full.find(stop)]


def test_generation_cache_counts(tiny_lm: HFLM) -> None:
    ps = [Prompt("hi"), Prompt("hi"), Prompt("yo")]
    tiny_lm.generate(ps, max_new_tokens=4)
    tiny_lm.generate(ps, max_new_tokens=4)
    assert tiny_lm.n_generated_prompts == 2
    tiny_lm.generate(ps[:1], max_new_tokens=5)  # different settings: a new generation
    assert tiny_lm.n_generated_prompts == 3


def test_bad_input(tiny_lm: HFLM) -> None:
    with pytest.raises(ValueError, match="max_new_tokens"):
        tiny_lm.generate([Prompt("hi")], max_new_tokens=0)
    with pytest.raises(ValueError, match="temperature"):
        tiny_lm.generate([Prompt("hi")], max_new_tokens=2, sampling=Sampling(temperature=0))
    with pytest.raises(ValueError, match="limit"):
        tiny_lm.token_stats([Scored(Prompt("hi"), "word " * 400)])


def test_hidden_states(tiny_lm: HFLM) -> None:
    hs = tiny_lm.hidden_states([Prompt("hi"), Prompt("Where was Alora Venn born?")], [0, -1], pool="mean")
    assert hs.shape == (2, 2, 32) and np.isfinite(hs).all()
    last = tiny_lm.hidden_states([Prompt("hi")], [2])
    assert last.shape == (1, 1, 32)
    with pytest.raises(ValueError, match="out of range"):
        tiny_lm.hidden_states([Prompt("hi")], [99])


def test_min_k_pp_statistics_on_a_fixed_distribution() -> None:
    # p = (1/2, 1/4, 1/4): μ = Σ p log p = −1.0397, σ = 0.3466, so z(p=1/2) = +1, z(p=1/4) = −1.
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.25], [0.5, 0.25, 0.25]]))
    tok, mu, sigma, match = _token_stats_chunk(logits, torch.tensor([0, 1]))
    np.testing.assert_allclose(mu, [-1.0397208] * 2, atol=1e-5)
    np.testing.assert_allclose(sigma, [0.3465736] * 2, atol=1e-5)
    np.testing.assert_allclose((tok - mu) / sigma, [1.0, -1.0], atol=1e-4)
    assert match.tolist() == [True, False]


def test_shared_prompt_next_token_scoring_matches_full_pass(tiny_model, tiny_tokenizer) -> None:  # type: ignore[no-untyped-def]
    prompt = Prompt("Question?\nA. x\nB. y\nC. z\nD. w\nAnswer:", chat=False)
    letters = [Scored(prompt, c) for c in "ABCD"]  # one token each in the tiny vocabulary
    shared = HFLM(tiny_model, tiny_tokenizer, bf16=False)
    got = shared.token_stats(letters)
    assert shared.n_forward_passes == 1 and shared.n_forward_texts == 4
    for it, g in zip(letters, got, strict=True):
        ref = HFLM(tiny_model, tiny_tokenizer, bf16=False).token_stats([it])[0]
        if ref.n_tokens == 1:
            np.testing.assert_allclose(g.logprobs, ref.logprobs, atol=1e-5)
            np.testing.assert_allclose(g.sigma, ref.sigma, atol=1e-5)


def test_shared_lm_is_reused_until_files_or_weights_change(tmp_path, tiny_model_dir) -> None:  # type: ignore[no-untyped-def]
    import shutil

    d = tmp_path / "m"
    shutil.copytree(tiny_model_dir, d)
    a = HFLM.shared(str(d))
    assert HFLM.shared(str(d)) is a  # loaded once; its caches serve later callers
    assert HFLM.shared(str(d), bf16=False) is not a  # other settings, another LM
    with torch.no_grad():  # a caller broke the rule and edited the weights: reload
        next(a.model.parameters()).add_(1.0)
    b = HFLM.shared(str(d))
    assert b is not a
    cfg = d / "config.json"
    cfg.write_text(cfg.read_text())  # new files on disk (mtime): reload
    assert HFLM.shared(str(d)) is not b
