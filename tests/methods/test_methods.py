"""Every registered method on the tiny model: finite loss, gradients only where it trains,
parameters that change (and only those), through the same engine the CLI uses."""

from __future__ import annotations

import random
from typing import Any

import pytest
import torch

from obliviate.methods.base import Context, Method
from obliviate.methods.batches import batch_source, build_data
from obliviate.registry import methods
from obliviate.train.loop import TrainConfig
from obliviate.unlearn import make_method, unlearn

ALL = methods.names()
EXPECTED = {
    "grad_ascent",
    "grad_diff",
    "npo",
    "simnpo",
    "idk_sft",
    "idk_dpo",
    "rmu",
    "task_vector",
    "whp",
    "flat",
    "undial",
    "uld",
}
FAST = {"whp": {"reinforce_steps": 2}}


def prepared(name: str, model: Any, tok: Any, world: Any, **cfg: Any) -> tuple[Method, Any, Any]:
    m = make_method(name, {**FAST.get(name, {}), **cfg})
    data = build_data(world, tok, m)
    ctx = Context(tok, TrainConfig.model_validate({}), torch.device("cpu"), bf16=False)
    trained = m.prepare(model, data, ctx)
    m.trainable(trained)
    batch = batch_source(data, m.config, use_retain=True)(0, random.Random(0))[0]
    return m, trained, batch


def test_all_methods_registered() -> None:
    assert EXPECTED <= set(ALL)


@pytest.mark.parametrize("name", ALL)
def test_loss_finite_and_gradients_only_where_trained(
    name: str, tiny_model, tiny_tokenizer, tiny_world
) -> None:  # type: ignore[no-untyped-def]
    m, trained, batch = prepared(name, tiny_model, tiny_tokenizer, tiny_world)
    out = m.loss(trained, batch)
    assert torch.isfinite(out.loss)
    assert "forget_loss" in out.logs
    if m.needs_retain:
        assert "retain_loss" in out.logs
    out.loss.backward()
    got = {
        n for n, p in trained.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0
    }
    allowed = {n for n, p in trained.named_parameters() if p.requires_grad}
    assert got and got <= allowed
    if trained is not tiny_model:  # ULD trains an assistant; the target gets nothing
        assert all(p.grad is None for p in tiny_model.parameters())


def test_rmu_trains_exactly_three_down_projections(tiny_model, tiny_tokenizer, tiny_world) -> None:  # type: ignore[no-untyped-def]
    m, trained, batch = prepared("rmu", tiny_model, tiny_tokenizer, tiny_world)
    l = m.layer  # type: ignore[attr-defined]
    want = {f"model.layers.{i}.mlp.down_proj.weight" for i in (l - 2, l - 1, l)}
    assert {n for n, p in trained.named_parameters() if p.requires_grad} == want
    m.loss(trained, batch).loss.backward()
    assert {n for n, p in trained.named_parameters() if p.grad is not None} == want


def test_rmu_retain_term_starts_at_zero_and_u_is_a_unit_vector(
    tiny_model, tiny_tokenizer, tiny_world
) -> None:  # type: ignore[no-untyped-def]
    m, trained, batch = prepared("rmu", tiny_model, tiny_tokenizer, tiny_world)
    assert m.loss(trained, batch).logs["retain_loss"] == pytest.approx(0.0, abs=1e-10)
    u = m.u  # type: ignore[attr-defined]
    assert float(u.norm()) == pytest.approx(1.0) and bool((u >= 0).all())


def test_npo_reference_is_precomputed_and_ratio_starts_at_zero(
    tiny_model, tiny_tokenizer, tiny_world
) -> None:  # type: ignore[no-untyped-def]
    m, trained, batch = prepared("npo", tiny_model, tiny_tokenizer, tiny_world)
    assert m.ref_logp.shape == (len(tiny_world.forget_facts),)  # type: ignore[attr-defined]
    assert m.loss(trained, batch).logs["log_ratio"] == pytest.approx(0.0, abs=1e-4)


def _snapshot(model: Any) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("name", [n for n in ALL if n != "uld"])
def test_parameters_change(name: str, tiny_model_dir, tiny_world, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from obliviate.models.load import load_model

    loaded = load_model(tiny_model_dir)
    before = _snapshot(loaded.model)
    res = unlearn(
        name,
        loaded,
        tiny_world,
        tmp_path / "out",
        config=FAST.get(name),
        train_cfg={"max_steps": 2, "lr": 1e-3},
    )
    assert res.steps == 2 and all(torch.isfinite(torch.tensor(r["loss"])) for r in res.curve)
    after = load_model(tmp_path / "out").model
    changed = {n for n, p in after.named_parameters() if not torch.equal(p, before[n])}
    assert changed
    if name == "rmu":
        assert len(changed) == 3 and all("mlp.down_proj" in n for n in changed)


def test_uld_assistant_changes_and_target_does_not(tiny_model_dir, tiny_world, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from obliviate.methods.uld_model import ULDModel, load_uld
    from obliviate.models.load import load_model

    loaded = load_model(tiny_model_dir)
    before = _snapshot(loaded.model)
    unlearn("uld", loaded, tiny_world, tmp_path / "uld", train_cfg={"max_steps": 3, "lr": 1e-2})
    back = load_uld(tmp_path / "uld")
    assert isinstance(back.model, ULDModel)
    assert all(torch.equal(p, before[n]) for n, p in back.model.target.named_parameters())
    ids = torch.tensor([[1, 5, 9, 12]])
    z_t = back.model.target(input_ids=ids).logits
    assert not torch.allclose(back.model(input_ids=ids).logits, z_t)


@pytest.mark.parametrize("mask", ["salun", "wagle"])
def test_saliency_mask_restricts_updates(mask: str, tiny_model_dir, tiny_world, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from obliviate.models.load import load_model

    loaded = load_model(tiny_model_dir)
    before = _snapshot(loaded.model)
    cfg = {"mask": mask, "mask_fraction": 0.1}
    res = unlearn(
        "npo",
        loaded,
        tiny_world,
        tmp_path / "out",
        config=cfg,
        train_cfg={"max_steps": 3, "lr": 1e-3},
    )
    after = {n: p for n, p in load_model(tmp_path / "out").model.named_parameters()}
    moved = sum(int((after[n] != before[n]).sum()) for n in before)
    # The mask keeps a fraction of the trainable weights: every weight but the (frozen) embeddings.
    total = sum(p.numel() for n, p in before.items() if "embed_tokens" not in n)
    kept = res.notes["saliency"]["kept_weights"]
    assert kept == pytest.approx(0.1 * total, rel=0.01)
    assert 0 < moved <= kept  # only masked weights may move


def test_saliency_masked_weights_are_exactly_the_ones_that_move(
    tiny_model, tiny_tokenizer, tiny_world
) -> None:  # type: ignore[no-untyped-def]
    from obliviate.methods.saliency import apply_mask, compute_mask

    m, trained, batch = prepared("grad_diff", tiny_model, tiny_tokenizer, tiny_world)
    data = build_data(tiny_world, tiny_tokenizer, m)
    ctx = Context(tiny_tokenizer, TrainConfig.model_validate({}), torch.device("cpu"), bf16=False)
    masks = compute_mask(trained, data.forget, data.retain, data.pad_id, ctx, "salun", 0.2)
    apply_mask(trained, masks)
    m.loss(trained, batch).loss.backward()
    for n, p in trained.named_parameters():
        if p.grad is not None:
            assert bool((p.grad[~masks[n]] == 0).all())


@pytest.mark.parametrize("train_embeddings", [False, True])
def test_embeddings_train_only_when_asked(train_embeddings: bool, tiny_model_dir, tiny_world, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from obliviate.models.load import load_model

    before = load_model(tiny_model_dir).model.get_input_embeddings().weight.detach().clone()
    unlearn(
        "grad_ascent", tiny_model_dir, tiny_world, tmp_path / "out",
        config={"train_embeddings": train_embeddings}, train_cfg={"max_steps": 2, "lr": 1e-3},
    )
    after = load_model(tmp_path / "out").model.get_input_embeddings().weight
    assert torch.equal(before, after) is not train_embeddings


def test_retain_replay_adds_real_world_pairs_to_the_retain_data(tiny_tokenizer, tiny_world) -> None:  # type: ignore[no-untyped-def]
    from obliviate.data.world import replay_pairs

    plain = build_data(tiny_world, tiny_tokenizer, make_method("grad_diff", {"retain_replay": 0}))
    more = build_data(tiny_world, tiny_tokenizer, make_method("grad_diff", {"retain_replay": 5}))
    assert len(more.retain) == len(plain.retain) + 5
    assert more.retain[: len(plain.retain)] == plain.retain
    _, a = replay_pairs(5)[0]
    assert tiny_tokenizer.decode(more.retain[len(plain.retain)][1]).find(a[:20]) >= 0
    assert make_method("idk_dpo").config.anchor_pairs > 0  # its tuned default: the anchor instead


def test_tuned_anchor_defaults_cover_the_whole_rehearsal_pool() -> None:
    from obliviate.data.world import replay_pairs
    from obliviate.methods.base import ANCHOR_POOL

    # The tuning record in methods/base.py is for the whole pool; growing the file must move it.
    assert len(replay_pairs()) == ANCHOR_POOL
    for name in ("grad_diff", "simnpo", "npo", "idk_dpo", "idk_sft"):
        assert make_method(name).config.anchor_pairs == ANCHOR_POOL, name


@pytest.mark.parametrize(("name", "retain_loss", "passes"), [("npo", "nll", 0), ("npo", "kl", 1), ("grad_diff", "kl", 1)])
def test_retain_reference_is_computed_only_for_a_kl_retain_term(
    name: str, retain_loss: str, passes: int, tiny_model, tiny_tokenizer, tiny_world, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    import obliviate.methods.grad_diff as gd

    calls: list[int] = []
    real = gd.top_k_reference
    monkeypatch.setattr(gd, "top_k_reference", lambda *a, **k: calls.append(1) or real(*a, **k))
    m, trained, batch = prepared(name, tiny_model, tiny_tokenizer, tiny_world, retain_loss=retain_loss)
    assert len(calls) == passes
    assert torch.isfinite(m.loss(trained, batch).loss)


def test_anchor_adds_its_weighted_kl_to_the_method_loss(tiny_model, tiny_tokenizer, tiny_world) -> None:  # type: ignore[no-untyped-def]
    from obliviate.methods.batches import qa_example
    from obliviate.train.losses import answer_only

    m = make_method("npo", {"anchor_pairs": 3, "anchor_weight": 2.5})
    data = build_data(tiny_world, tiny_tokenizer, m)
    data.anchor = [qa_example(tiny_tokenizer, f"Question {i}?", f"Answer number {i}.", 64) for i in range(3)]
    ctx = Context(tiny_tokenizer, TrainConfig.model_validate({}), torch.device("cpu"), bf16=False)
    m.prepare_anchor(tiny_model, data, ctx)
    trained = m.prepare(tiny_model, data, ctx)
    batch = batch_source(data, m.config, use_retain=True)(0, random.Random(0))[0]
    assert batch.anchor is not None and m.anchor_ref is not None
    assert m.step(trained, batch).logs["anchor_kl"] == pytest.approx(0.0, abs=1e-6)  # at the start
    with torch.no_grad():  # move the model off the reference
        for p in trained.parameters():
            p.add_(0.05 * torch.randn_like(p))
    # By hand from the stored reference: KL(ref || model) over ref's top-k tokens plus one bucket
    # for the rest, averaged over the anchor answer tokens.
    ref = m.anchor_ref
    a = answer_only(trained, batch.anchor)
    rows = [int(i) for i in batch.anchor.index]
    lp = torch.log_softmax(a.logits.float(), -1)
    ref_lp = torch.cat([ref.logprobs[r] for r in rows])
    ref_ids = torch.cat([ref.ids[r] for r in rows])
    p_ref = ref_lp.exp()
    head = (p_ref * (ref_lp - lp.gather(-1, ref_ids))).sum(-1)
    tail_p = (1 - p_ref.sum(-1)).clamp(min=1e-6)
    tail_q = (1 - lp.gather(-1, ref_ids).exp().sum(-1)).clamp(min=1e-6)
    kl = (head + tail_p * (tail_p.log() - tail_q.log())).mean()
    out, plain = m.step(trained, batch), m.loss(trained, batch)
    assert out.logs["anchor_kl"] == pytest.approx(float(kl), rel=1e-4) and float(kl) > 1e-4
    assert float(out.loss) == pytest.approx(float(plain.loss) + 2.5 * float(kl), rel=1e-4)
