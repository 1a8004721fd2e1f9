"""Negative preference optimisation (Zhang et al. 2024, "Negative Preference Optimization:
From Catastrophic Collapse to Effective Unlearning").

    L_f = −(2/β)·E_f log σ(−β·[log π_θ(y|x) − log π_ref(y|x)])

Sequence log-probs over answer tokens. It is DPO with only a losing answer: bounded below, and
its gradient is gradient ascent's reweighted by how far the model has already moved from the
reference, so it slows down instead of collapsing. π_ref(y|x) of every forget example is computed
once before training (no-grad) and looked up by `batch.forget.index`: no reference forward per
step. retain_weight=0 is plain NPO; retain_loss="nll" / "kl" are the NPO+RT / NPO+KL variants.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field

from obliviate.methods.base import (
    ANCHOR_POOL,
    AnchorPairs,
    Context,
    MethodConfig,
    UnlearnData,
    precompute_sequence_logprobs,
)
from obliviate.methods.grad_diff import GradDiff, RetainTermConfig
from obliviate.registry import method
from obliviate.train.batch import ForgetRetainBatch
from obliviate.train.losses import sequence_logprob


class NPOConfig(RetainTermConfig):
    beta: float = Field(
        0.1, gt=0.0, le=100.0, description="inverse temperature beta of the NPO loss"
    )
    # The forget term sums log-probs over each answer (~24 tokens on the quickstart world) while
    # the retain NLL is a per-token mean, so the paper's alpha = 1 leaves retain facts
    # under-protected at this scale; alpha = 10 with 8 retain examples per step balances them.
    retain_weight: float = Field(
        10.0, ge=0.0, le=1e4, description="alpha: weight of the retain term (0 = plain NPO)"
    )
    retain_batch_size: int = Field(8, ge=1, le=4096, description="retain examples per step")
    # Session 8 (target 1.00 / 0.975 / 0.878, bar 0.871; forget / retain / general of 188 items,
    # seeds 0 and 1): no anchor 0.05 / 0.875 / 0.867 (seed 0); anchor weight 1
    # 0.00 / 0.85 / 0.878 and 0.05 / 0.925 / 0.867; weight 3 (the default) 0.00 / 0.85 / 0.894
    # and 0.10 / 0.90 / 0.878 (128 pairs; 676 pairs, weight 1: 0.05 / 0.825 / 0.888).
    # Session 9, anchor on the whole pool (the default), weight 3, seeds 0 / 1 / 2: 0.05 / 0.825 /
    # 0.894, 0.10 / 0.875 / 0.867, 0.15 / 0.875 / 0.830 (misses the bar on two seeds). Seed 2 with
    # weight 5: 0.15 / 0.875 / 0.856; with 16 anchor examples per step: 0.15 / 0.825 / 0.851.
    anchor_pairs: AnchorPairs = ANCHOR_POOL
    anchor_weight: float = Field(3.0, ge=0.0, le=1e4, description="weight of the anchor KL")


def npo_loss(logp: torch.Tensor, ref_logp: torch.Tensor, beta: float) -> torch.Tensor:
    """−(2/β)·mean log σ(−β·(logp − ref_logp)); logp, ref_logp: (B,) sequence log-probs."""
    return -(2.0 / beta) * F.logsigmoid(-beta * (logp - ref_logp)).mean()


@method("npo")
class NPO(GradDiff):
    name = "npo"
    Config: ClassVar[type[MethodConfig]] = NPOConfig
    # Tuned on the quickstart target (bundled model): 20 steps gave general 0.88 of base; 15 give
    # forget 0.05, retain 0.92, general 0.92 on the first 60 general items (session-2 target); on
    # the current target 0.25 / 0.85 / 0.90, and general 0.80 on all 188 items (target: 0.83)
    # (benchmarks/bench_unlearn.py quality).
    # Session 10 (target 1.00 / 0.975 / 0.878, bar 0.871, anchor on): smaller steps, more of them.
    # 3e-5 x 15 (the old default) on seeds 0-5: general 0.894 0.867 0.830 0.824 0.894 0.867 (mean
    # 0.863, 2 of 6 at the bar), retain 0.875 on average; 1e-5 x 30 (the default, chosen on seeds
    # 0-2, then run on 3-5): 0.878 0.888 0.888 0.862 0.883 0.883 (mean 0.880, 5 of 6), forget
    # 0.10-0.20, retain 0.85-1.00 (mean 0.94). Seeds scatter general by 5 questions instead of 13;
    # plausibly because small steps overshoot less when NPO pushes off the shared answer openings.
    # 1.5e-5 x 30: 0.915 / 0.862 / 0.888 (seeds 0-2). Retain KL instead of NLL (3e-5 x 15): 0.867
    # / 0.862 / 0.819.
    train_defaults: ClassVar[dict[str, Any]] = {
        "lr": 1e-5,
        "max_steps": 30,
        "epochs": 1000.0,
        "schedule": "constant",
    }

    @property
    def needs_reference(self) -> bool:
        return True

    def prepare(self, model: Any, data: UnlearnData, ctx: Context) -> Any:
        model = super().prepare(model, data, ctx)
        self.ref_logp = precompute_sequence_logprobs(model, data.forget, data.pad_id, ctx)
        return model

    def forget_loss(
        self, model: Any, batch: ForgetRetainBatch
    ) -> tuple[torch.Tensor, dict[str, float]]:
        logp, n = sequence_logprob(model, batch.forget)
        ref = self.ref_logp[batch.forget.index]
        nll = -logp.sum() / n.sum()
        logs = {"forget_nll": float(nll.detach()), "log_ratio": float((logp - ref).mean().detach())}
        return npo_loss(logp, ref, self.config.beta), logs
