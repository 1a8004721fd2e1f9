"""The one training loop: answer-only loss, what trains under full vs LoRA, divergence stop."""

from __future__ import annotations

import random

import pytest
import torch

from obliviate.models.lm import Prompt
from obliviate.models.prompt import encode_pair
from obliviate.train.batch import IGNORE_INDEX, collate, length_bucketed
from obliviate.train.loop import LoraSettings, StepOutput, TrainConfig, TrainingDivergedError, train
from obliviate.train.lora import apply_lora
from obliviate.train.losses import answer_logits, mean_nll, sequence_logprob, token_logprobs


def _batches(tok, n: int = 6, bs: int = 3):  # type: ignore[no-untyped-def]
    ex = [encode_pair(tok, Prompt(f"Where was person {i} born?"), f"In town {i}.") for i in range(n)]
    groups = length_bucketed(n, [len(p) + len(a) for p, a in ex], bs, random.Random(0))
    return ex, [collate([ex[i] for i in g], tok.pad_token_id, g) for g in groups]


def nll(model, batch):  # type: ignore[no-untyped-def]
    return StepOutput(mean_nll(model, batch))


def test_labels_only_on_answer_tokens(tiny_tokenizer) -> None:  # type: ignore[no-untyped-def]
    ex, _ = _batches(tiny_tokenizer)
    b = collate(ex[:2], tiny_tokenizer.pad_token_id)
    for row, (p, a) in enumerate(ex[:2]):
        labelled = (b.labels[row] != IGNORE_INDEX).nonzero().flatten().tolist()
        assert labelled == list(range(len(p), len(p) + len(a)))
        assert b.labels[row, len(p) : len(p) + len(a)].tolist() == a
        assert b.attention_mask[row].sum() == len(p) + len(a)


def test_loss_ignores_prompt_tokens(tiny_tokenizer, tiny_model) -> None:  # type: ignore[no-untyped-def]
    """Changing prompt labels' would-be targets must not change the loss: only answers count."""
    ex, _ = _batches(tiny_tokenizer)
    b = collate(ex[:3], tiny_tokenizer.pad_token_id)
    logits, labels, _ = answer_logits(tiny_model, b)
    logp, mask = token_logprobs(logits, labels)
    expected = -(logp.sum() / mask.sum())
    assert torch.allclose(mean_nll(tiny_model, b), expected, atol=1e-5)
    seq, lengths = sequence_logprob(tiny_model, b)
    assert torch.allclose(seq, logp.sum(-1), atol=1e-5)
    assert lengths.tolist() == [len(a) for _, a in ex[:3]]


def test_full_finetune_changes_all_and_learns(tiny_tokenizer, tiny_model) -> None:  # type: ignore[no-untyped-def]
    _, batches = _batches(tiny_tokenizer)
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    res = train(tiny_model, batches, nll, TrainConfig(lr=1e-2, epochs=15, bf16=False))
    assert res.curve[-1]["loss"] < 0.5 * res.curve[0]["loss"]
    changed = {k for k, v in tiny_model.state_dict().items() if not torch.equal(v, before[k])}
    # every weight matrix trains (rotary buffers are not parameters)
    assert {k for k, _ in tiny_model.named_parameters()} <= changed
    assert res.tokens > 0 and res.steps == len(batches) * 15


def test_lora_changes_only_adapters(tiny_tokenizer, tiny_model) -> None:  # type: ignore[no-untyped-def]
    _, batches = _batches(tiny_tokenizer)
    peft_model = apply_lora(tiny_model, LoraSettings(r=4, target_modules=["q_proj", "v_proj"]))
    before = {k: v.clone() for k, v in peft_model.named_parameters()}
    train(peft_model, batches, nll, TrainConfig(lr=1e-2, epochs=2))
    changed = {k for k, v in peft_model.named_parameters() if not torch.equal(v, before[k])}
    assert changed, "adapters must train"
    assert all("lora_B" in k or "lora_A" in k for k in changed), changed
    assert any("q_proj" in k for k in changed) and any("v_proj" in k for k in changed)
    assert not any("k_proj" in k for k in changed)


def test_lora_unknown_target(tiny_model) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="none of the LoRA target modules"):
        apply_lora(tiny_model, LoraSettings(target_modules=["c_attn"]))


def test_nan_loss_stops_with_message(tiny_tokenizer, tiny_model) -> None:  # type: ignore[no-untyped-def]
    _, batches = _batches(tiny_tokenizer)

    def bad(model, batch):  # type: ignore[no-untyped-def]
        return StepOutput(mean_nll(model, batch) * float("nan"))

    with pytest.raises(TrainingDivergedError, match="lower the learning rate"):
        train(tiny_model, batches, bad, TrainConfig(lr=1e-3))


def test_callback_stops_and_max_steps(tiny_tokenizer, tiny_model) -> None:  # type: ignore[no-untyped-def]
    _, batches = _batches(tiny_tokenizer)
    res = train(tiny_model, batches, nll, TrainConfig(lr=1e-3, epochs=10), callbacks=[lambda s, r: "enough" if s == 3 else None])
    assert res.steps == 3 and res.stopped == "enough"
    res = train(tiny_model, batches, nll, TrainConfig(lr=1e-3, epochs=10, max_steps=4))
    assert res.steps == 4 and res.stopped == "max_steps"


def test_grad_accum_and_checkpoints(tiny_tokenizer, tiny_model, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _, batches = _batches(tiny_tokenizer, n=8, bs=2)
    res = train(tiny_model, batches, nll, TrainConfig(lr=1e-3, epochs=1, grad_accum=2, checkpoint_every=1), checkpoint_dir=tmp_path)
    assert res.steps == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-000001", "step-000002"]


def test_empty_data_and_frozen_model(tiny_tokenizer, tiny_model) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="no training batches"):
        train(tiny_model, [], nll, TrainConfig())
    for p in tiny_model.parameters():
        p.requires_grad_(False)
    _, batches = _batches(tiny_tokenizer)
    with pytest.raises(ValueError, match="no trainable parameters"):
        train(tiny_model, batches, nll, TrainConfig())


def test_cpu_attention_kernel_computes_the_same_loss_and_gradients(tiny_tokenizer, tiny_model) -> None:  # type: ignore[no-untyped-def]
    """The training step's CPU attention backend (plain matmuls, chosen for speed) is the same
    function as torch's default kernel: padded batches give equal losses and gradients."""
    from obliviate.train.loop import attention_kernel

    assert tiny_model.config._attn_implementation == "sdpa"
    _, batches = _batches(tiny_tokenizer, n=5, bs=5)  # one batch with padding
    assert not bool(batches[0].attention_mask.all())

    def loss_and_grads(kernel: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        tiny_model.zero_grad(set_to_none=True)
        ctx = attention_kernel(torch.device("cpu")) if kernel else torch.enable_grad()
        with ctx:
            loss = mean_nll(tiny_model, batches[0])
            loss.backward()
        return loss.detach(), [p.grad.clone() for p in tiny_model.parameters() if p.grad is not None]

    (l0, g0), (l1, g1) = loss_and_grads(False), loss_and_grads(True)
    assert torch.allclose(l0, l1, atol=1e-5)
    assert len(g0) == len(g1) > 0
    assert all(torch.allclose(a, b, atol=1e-5, rtol=1e-4) for a, b in zip(g0, g1, strict=True))
