"""Each loss checked against numbers worked out by hand on fixed tiny tensors."""

from __future__ import annotations

import math

import pytest
import torch

from obliviate.methods.flat import flat_loss
from obliviate.methods.idk_dpo import dpo_loss
from obliviate.methods.npo import npo_loss
from obliviate.methods.rmu import default_layer, masked_mse, shared_prefix_len
from obliviate.methods.saliency import saliency_scores, top_fraction_masks
from obliviate.methods.simnpo import simnpo_loss
from obliviate.methods.task_vector import negate
from obliviate.methods.uld import uniform_kl
from obliviate.methods.uld_model import combine_logits
from obliviate.methods.undial import undial_loss, undial_targets
from obliviate.methods.whp import generic_logits
from obliviate.train.batch import TokenBatch
from obliviate.train.losses import AnswerLogits, top_k_kl

t = torch.tensor


def test_npo_at_reference_is_2_log2_over_beta() -> None:
    # log ratio 0 -> -(2/β) log σ(0) = (2/β) ln 2 = 20 × 0.693147
    assert npo_loss(t([-3.0, -1.0]), t([-3.0, -1.0]), 0.1).item() == pytest.approx(
        13.862944, abs=1e-5
    )


def test_npo_known_values() -> None:
    # ratios (-1, 0): -β·ratio = (0.1, 0); log σ(0.1) = -0.644397, log σ(0) = -0.693147
    # mean = -0.668772; × -(2/0.1) = 13.375443
    assert npo_loss(t([-2.0, -1.0]), t([-1.0, -1.0]), 0.1).item() == pytest.approx(
        13.375443, abs=1e-5
    )


def test_npo_lower_when_model_moved_away_from_forget_answer() -> None:
    ref = t([-1.0])
    assert npo_loss(t([-5.0]), ref, 0.1) < npo_loss(t([-1.0]), ref, 0.1)


def test_simnpo_known_values() -> None:
    # β·NLL/|y| = (4, 2); log σ(4) = -0.018150, log σ(2) = -0.126928; mean -0.072539; × -(2/2)
    assert simnpo_loss(t([4.0, 2.0]), t([2.0, 2.0]), beta=2.0, delta=0.0).item() == pytest.approx(
        0.072539, abs=1e-5
    )


def test_simnpo_delta_shifts_the_margin() -> None:
    # β·NLL/|y| − δ = 2·1/1 − 2 = 0 -> (2/β) ln 2 = ln 2
    assert simnpo_loss(t([1.0]), t([1.0]), beta=2.0, delta=2.0).item() == pytest.approx(
        math.log(2), abs=1e-6
    )


def test_dpo_known_values() -> None:
    # margin = (−1 − −2) − (−3 − −2) = 2; β·margin = 1; log σ(1) = -0.313262; × -(2/0.5) = 1.253047
    v = dpo_loss(t([-1.0]), t([-2.0]), t([-3.0]), t([-2.0]), beta=0.5)
    assert v.item() == pytest.approx(1.253047, abs=1e-5)


def test_rmu_masked_mse_ignores_masked_positions() -> None:
    h = t([[[1.0, 2.0], [3.0, 4.0]]])
    target = 2.0 * t([1.0, 0.0])  # c·u with c = 2, u = e_0
    # only position 0: ((1-2)^2 + (2-0)^2) / 2 = 2.5
    assert masked_mse(h, target, t([[1, 0]])).item() == pytest.approx(2.5)
    # both positions: (2.5 + ((3-2)^2 + 4^2)/2) / 2 = (2.5 + 8.5) / 2
    assert masked_mse(h, target, t([[1, 1]])).item() == pytest.approx(5.5)


def test_rmu_layer_scales_with_depth() -> None:
    assert default_layer(32) == 7
    assert default_layer(30) == 7  # 6.56 rounds to 7
    assert default_layer(4) == 2  # never below 2: layers l-2..l must exist
    assert default_layer(3) == 2


def test_shared_prefix_len() -> None:
    ex = [([1, 2, 3, 9], [5]), ([1, 2, 3, 8, 7], [6]), ([], [4, 4])]  # empty prompts ignored
    assert shared_prefix_len(ex) == 3


def test_flat_total_variation_known_values() -> None:
    # −½tanh(0.5) + ½tanh(0.2) = −0.231059 + 0.098688
    assert flat_loss(t([0.5]), t([0.2]), "tv").item() == pytest.approx(-0.132371, abs=1e-5)


def test_flat_other_divergences_known_values() -> None:
    # KL: −P_e + exp(P_f − 1); Pearson: −P_e + P_f²/4 + P_f
    assert flat_loss(t([0.5]), t([0.2]), "kl").item() == pytest.approx(
        -0.5 + math.exp(-0.8), abs=1e-6
    )
    assert flat_loss(t([0.5]), t([0.2]), "pearson").item() == pytest.approx(
        -0.5 + 0.01 + 0.2, abs=1e-6
    )

    # JS: g(v) = ln2 − softplus(−v); f*(g(v)) = v + softplus(−v) − ln 2
    def sp(v: float) -> float:
        return math.log1p(math.exp(-v))

    js = -(math.log(2) - sp(0.5)) + (0.2 + sp(0.2) - math.log(2))
    assert flat_loss(t([0.5]), t([0.2]), "js").item() == pytest.approx(js, abs=1e-6)


def test_undial_target_distribution() -> None:
    # z_ref = (ln 2, 0, 0), y = 0, β = ln 2 -> adjusted (0, 0, 0) -> uniform
    target = undial_targets(t([[math.log(2), 0.0, 0.0]]), t([0]), beta=math.log(2))
    assert target[0].tolist() == pytest.approx([1 / 3, 1 / 3, 1 / 3])
    # β = 10 on (5, 0, 0): adjusted (-5, 0, 0) -> (e^-5, 1, 1) / (e^-5 + 2)
    target = undial_targets(t([[5.0, 0.0, 0.0]]), t([0]), beta=10.0)
    z = math.exp(-5) + 2
    assert target[0].tolist() == pytest.approx([math.exp(-5) / z, 1 / z, 1 / z], abs=1e-6)
    # cross-entropy from a uniform target to a uniform model = ln 3
    loss = undial_loss(t([[0.0, 0.0, 0.0]]), t([[math.log(2), 0.0, 0.0]]), t([0]), beta=math.log(2))
    assert loss.item() == pytest.approx(math.log(3), abs=1e-6)


def test_undial_beta_per_position_leaves_special_tokens_alone() -> None:
    # β = (10, 0): the second position (an end-of-turn token, say) keeps softmax(z_ref) = (½, ½)
    ref = t([[0.0, 0.0], [0.0, 0.0]])
    target = undial_targets(ref, t([0, 0]), t([10.0, 0.0]))
    assert target[1].tolist() == pytest.approx([0.5, 0.5])
    assert target[0].tolist() == pytest.approx([1 / (1 + math.exp(10)), 1 / (1 + math.exp(-10))])


def test_top_k_kl_reference_to_model() -> None:
    # p_ref = (½, ½), p_θ = (¾, ¼), k = 2 (every token): ½ln(½/¾) + ½ln(½/¼) = 0.143841
    model = AnswerLogits(t([[math.log(3), 0.0]]), t([0]).long(), t([0]).long(), 1)
    ref_ids, ref_lp = t([[0, 1]]).long(), t([[math.log(0.5), math.log(0.5)]])
    assert top_k_kl(model, ref_ids, ref_lp).item() == pytest.approx(0.143841, abs=1e-5)
    # k = 1 over three tokens: p_ref = (½ | ½ rest), p_θ = (½, ¼, ¼) -> (½ | ½): KL 0
    model3 = AnswerLogits(t([[math.log(2), 0.0, 0.0]]), t([0]).long(), t([0]).long(), 1)
    assert top_k_kl(model3, t([[0]]).long(), t([[math.log(0.5)]])).item() == pytest.approx(0, abs=1e-6)
    # k = 1, p_θ = (¼, ½, ¼) -> (¼ | ¾): ½ln(½/¼) + ½ln(½/¾) = 0.143841 again
    model4 = AnswerLogits(t([[0.0, math.log(2), 0.0]]), t([0]).long(), t([0]).long(), 1)
    assert top_k_kl(model4, t([[0]]).long(), t([[math.log(0.5)]])).item() == pytest.approx(0.143841, abs=1e-5)


def test_whp_generic_logits() -> None:
    # ReLU(v_r − v_b) = (1, 0, 0): only the boosted token is pushed down, by α = 5
    out = generic_logits(t([1.0, 2.0, 3.0]), t([2.0, 2.0, 1.0]), alpha=5.0)
    assert out.tolist() == [-4.0, 2.0, 3.0]


def test_task_vector_negation() -> None:
    assert negate(t(1.0), t(1.5), 5.0).item() == pytest.approx(-1.5)  # 1 − 5·0.5


def test_uld_combine_offsets_only_plausible_tokens() -> None:
    z_t = t([[0.0, math.log(0.5), math.log(0.001)]])  # p ∝ (1, .5, .001): third below 1% of max
    z_a = t([[2.0, 0.0, 5.0]])
    # assistant log-probs centred over the plausible pair: (+1, −1); third token untouched
    out = combine_logits(z_t, z_a, weight=-0.8, relative_top=0.01)
    assert out[0].tolist() == pytest.approx([-0.8, math.log(0.5) + 0.8, math.log(0.001)], abs=1e-6)


def test_uld_uniform_assistant_changes_nothing() -> None:
    z_t = t([[1.0, 3.0, 2.0, -9.0]])
    assert torch.allclose(combine_logits(z_t, torch.zeros(1, 4), -0.8, 0.01), z_t)


def test_uld_uniform_kl_is_zero_for_flat_logits() -> None:
    class Flat(torch.nn.Module):
        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> object:
            return type("O", (), {"logits": torch.zeros(*input_ids.shape, 7)})()

    b = TokenBatch(t([[1, 2]]), t([[1, 1]]), t([[-100, 2]]), t([0]))
    assert uniform_kl(Flat(), b).item() == pytest.approx(0.0, abs=1e-6)


def test_saliency_salun_and_wagle() -> None:
    params = {"a": t([1.0, -2.0]), "b": t([3.0])}
    g_f = {"a": t([0.1, 0.5]), "b": t([-0.2])}
    g_r = {"a": t([0.0, 0.0]), "b": t([1.0])}
    salun = top_fraction_masks(saliency_scores("salun", params, g_f), 1 / 3)
    assert salun["a"].tolist() == [False, True] and salun["b"].tolist() == [False]
    # WAGLE, μ = 1: |(θ − g_r) ⊙ g_f| = (0.1, 1.0), (|(3 − 1)·−0.2| = 0.4)
    scores = saliency_scores("wagle", params, g_f, g_r, mu=1.0)
    assert scores["a"].tolist() == pytest.approx([0.1, 1.0]) and scores[
        "b"
    ].tolist() == pytest.approx([0.4])
    wagle = top_fraction_masks(scores, 2 / 3)
    assert wagle["a"].tolist() == [False, True] and wagle["b"].tolist() == [True]
