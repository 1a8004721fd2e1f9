"""SimNPO (Fan et al. 2024, "Simplicity Prevails: Rethinking Negative Preference Optimization
for LLM Unlearning"): NPO without a reference model, on the length-normalised NLL.

    L = γ·(−(2/β)·E_f log σ(β·NLL_θ(y|x)/|y| − δ)) + λ·NLL_r

Minimising it raises the per-token forget NLL. Normalising by |y| removes NPO's bias towards
spending its effort on long answers; dropping the reference removes NPO's bias towards answers
the reference already found unlikely. Published TOFU settings (β = 2.5–4.5, γ ≈ 0.13, δ = 0)
are for 7B models; the defaults below are tuned for SmolLM2-135M.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field

from obliviate.methods.base import MethodConfig
from obliviate.methods.grad_diff import GradDiff, GradDiffConfig
from obliviate.registry import method
from obliviate.train.batch import ForgetRetainBatch
from obliviate.train.losses import sequence_logprob


class SimNPOConfig(GradDiffConfig):
    beta: float = Field(2.5, gt=0.0, le=100.0, description="inverse temperature beta")
    delta: float = Field(0.0, ge=0.0, le=100.0, description="reward margin delta")
    forget_weight: float = Field(
        0.13, ge=0.0, le=1e4, description="gamma: weight of the forget term"
    )
    # Tuned with retain KL (inherited), 25 steps: weight 1 -> forget 0.25, retain 0.93, general
    # 0.88 of base; 2 -> 0.30 / 0.98 / 0.90 (this default, on both edges of the bar); 3 -> 0.35 /
    # 0.95 / 0.90. Retain NLL, weight 1: 0.30 / 0.95 / 0.83. With the KL over a precomputed
    # top-32 reference and bf16 decoding, this default measures 0.35 / 0.95 / 0.81 on all 188
    # general items (base 0.97): one forget fact above the 0.30 bar, left as measured.
    retain_weight: float = Field(
        2.0, ge=0.0, le=1e4, description="lambda: weight of the retain term"
    )
    # Session 8 (target 1.00 / 0.975 / 0.878, bar 0.871): without an anchor 0.15 / 0.95 / 0.851.
    # The anchor on 128 pairs trades forgetting for general knowledge and never gets both:
    # weight 2 (the default) 0.30 / 1.00 / 0.867 on seeds 0 and 1 (general one item under the
    # bar); weight 3 0.35 / 1.00 / 0.894 (30 steps: 0.25 / 0.975 / 0.830 and 0.35 / 0.975 /
    # 0.830; 16 anchor examples per step: 0.45 / 0.975 / 0.888); weight 5 0.60 / 0.95 / 0.910
    # (40 steps 0.40 / 0.975 / 0.883; lr 1e-4 0.25 / 0.975 / 0.750).
    # Session 9, anchor questions from the whole pool (inherited from GradDiff): weight 2 (the
    # default) 0.25 / 0.95 / 0.936 and 0.20 / 0.925 / 0.867 on seeds 0 / 1; weight 2.5 0.35 /
    # 0.95 / 0.899 (seed 0); weight 3 0.45 / 0.975 / 0.904, 0.30 / 0.975 / 0.888, 0.30 / 0.925 /
    # 0.894 (seeds 0 / 1 / 2). Retain weight 1 with anchor weight 3: 0.35 / 0.925 / 0.856. A SalUn
    # mask over half (a fifth) of the weights, 128 pairs: 0.35 (0.45) / 1.00 / 0.894 (0.888).
    # 16 anchor examples per step: 0.30 / 0.95 / 0.899, 0.25 / 0.90 / 0.862, 0.30 / 0.95 / 0.872.
    # The default over seeds 0 / 1 / 2 (bench_unlearn quality): general 0.936 / 0.867 / 0.862.
    # Seeds move forgetting and general knowledge more than these settings do.
    # Session 10, the smaller steps that steadied NPO: lr 2.5e-5 x 50 steps 0.10 / 0.975 / 0.888,
    # 0.15 / 1.00 / 0.867, 0.30 / 0.975 / 0.883 (seeds 0 / 1 / 2); 3.5e-5 x 35 0.20 / 0.925 /
    # 0.872, 0.30 / 0.95 / 0.867 (seeds 0 / 1). Retain weight 3: 0.40 / 0.975 / 0.910 (seed 0).
    anchor_weight: float = Field(2.0, ge=0.0, le=1e4, description="weight of the anchor KL")


def simnpo_loss(
    nll_sum: torch.Tensor, lengths: torch.Tensor, beta: float, delta: float
) -> torch.Tensor:
    """−(2/β)·mean log σ(β·NLL/|y| − δ); nll_sum, lengths: (B,)."""
    return -(2.0 / beta) * F.logsigmoid(beta * nll_sum / lengths - delta).mean()


@method("simnpo")
class SimNPO(GradDiff):
    name = "simnpo"
    Config: ClassVar[type[MethodConfig]] = SimNPOConfig
    train_defaults: ClassVar[dict[str, Any]] = {
        "lr": 5e-5,
        "max_steps": 25,
        "epochs": 1000.0,
        "schedule": "constant",
    }

    def forget_loss(
        self, model: Any, batch: ForgetRetainBatch
    ) -> tuple[torch.Tensor, dict[str, float]]:
        logp, n = sequence_logprob(model, batch.forget)
        loss = simnpo_loss(-logp, n.to(logp.dtype), self.config.beta, self.config.delta)
        return loss, {"forget_nll": float((-logp.sum() / n.sum()).detach())}
