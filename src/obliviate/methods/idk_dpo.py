"""IdK-DPO (Maini et al. 2024, TOFU; DPO from Rafailov et al. 2023): prefer an "I don't know"
answer over the true answer on forget questions, plus retain NLL.

    L_f = −(2/β)·E log σ(β·[(log π_θ(y_idk|x) − log π_ref(y_idk|x))
                             − (log π_θ(y_f|x)   − log π_ref(y_f|x))])

The 2/β scale matches NPO (and the reference implementations), so β changes the shape of the
loss, not its size. Reference log-probs of both answers are computed once before training.
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


class IdkDPOConfig(RetainTermConfig):
    beta: float = Field(0.1, gt=0.0, le=100.0, description="inverse temperature beta of DPO")
    # Declining spreads from forget to every question, so the retain term is weighted 3x.
    retain_weight: float = Field(
        3.0, ge=0.0, le=1e4, description="alpha: weight of the retain term"
    )
    # Retain KL (retain_loss="kl") did not rescue general knowledge (weight 3: 0.25 / 0.93 / 0.78;
    # weight 10: 0.30 / 1.00 / 0.82), so the tuned NLL stays.
    # Declining spreads to questions the retain set never asks. Session 6 (all 188 general items,
    # target 0.95 / 0.975 / 0.894): world retain only 0.05 / 0.85 / 0.60; + 64 written real-world
    # pairs in the retain data 0.15 / 0.85 / 0.755; + all 676, 8 per step 0.15 / 0.90 / 0.83
    # (16 per step 0.15 / 0.875 / 0.80; weight 6 0.25 / 0.975 / 0.85; weight 10 0.70 / 1.00 /
    # 0.85, no longer forgets). On the session-7 target (1.00 / 0.975 / 0.878) that recipe fell
    # to 0.15 / 0.85 / 0.739. Session 8: the general-knowledge anchor instead (the starting
    # model's own answers under a KL, not written answers under NLL; seeds 0 and 1): with the 676
    # written pairs kept, weight 1 0.15 / 0.85 / 0.787; without them, weight 5 0.05 / 0.875 / 0.830,
    # weight 10 0.20 / 0.925 / 0.867, weight 15 0.25 / 0.95 / 0.878 and 0.35 / 0.95 / 0.862,
    # weight 20 0.25 / 0.975 / 0.888 and 0.40 / 0.975 / 0.878; weight 20 with 20 steps (the
    # default) 0.15 / 0.975 / 0.872 and 0.15 / 0.975 / 0.878. Session 9, anchor on the whole pool
    # (the default), seeds 0 / 1 / 2: 0.15 / 1.00 / 0.899, 0.15 / 0.975 / 0.872, 0.20 / 1.00 /
    # 0.915.
    retain_replay: int = Field(
        0, ge=0, le=100_000, description="real-world rehearsal pairs added to the retain data"
    )
    anchor_pairs: AnchorPairs = ANCHOR_POOL
    anchor_weight: float = Field(20.0, ge=0.0, le=1e4, description="weight of the anchor KL")
    retain_batch_size: int = Field(8, ge=1, le=4096, description="retain examples per step")


def dpo_loss(
    win_logp: torch.Tensor,
    win_ref: torch.Tensor,
    lose_logp: torch.Tensor,
    lose_ref: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    """−(2/β)·mean log σ(β·((win − win_ref) − (lose − lose_ref))); all (B,) sequence log-probs."""
    margin = (win_logp - win_ref) - (lose_logp - lose_ref)
    return -(2.0 / beta) * F.logsigmoid(beta * margin).mean()


@method("idk_dpo")
class IdkDPO(GradDiff):
    name = "idk_dpo"
    Config: ClassVar[type[MethodConfig]] = IdkDPOConfig
    # Tuned on the quickstart target (forget / retain / general of base, first 60 general items):
    # lr 3e-5 x 20 steps -> 0.00 / 0.25 / 0.03 (declines everything); 1e-5 x 20 -> 0.50 / 0.93 /
    # 0.85; 2e-5 x 15 with retain weight 3 -> 0.15 / 0.78 / 0.70 (this default; on the final
    # target 0.25 / 0.80 / 0.55, on the current one 0.20 / 0.90 / 0.78: general misses the 90%
    # bar); 1e-5 x 30, weight 2 -> 0.10 / 0.65 / 0.62. With the anchor (session 8), 20 steps.
    train_defaults: ClassVar[dict[str, Any]] = {
        "lr": 2e-5,
        "max_steps": 20,
        "epochs": 1000.0,
        "schedule": "constant",
    }

    @property
    def needs_alternate(self) -> bool:
        return True

    @property
    def needs_reference(self) -> bool:
        return True

    def prepare(self, model: Any, data: UnlearnData, ctx: Context) -> Any:
        model = super().prepare(model, data, ctx)
        if data.alternate is None:
            raise ValueError("idk_dpo needs alternate (IdK) answers for every forget question")
        self.ref_lose = precompute_sequence_logprobs(model, data.forget, data.pad_id, ctx)
        self.ref_win = precompute_sequence_logprobs(model, data.alternate, data.pad_id, ctx)
        return model

    def forget_loss(
        self, model: Any, batch: ForgetRetainBatch
    ) -> tuple[torch.Tensor, dict[str, float]]:
        if batch.alternate is None:
            raise ValueError("idk_dpo: the batch has no alternate (IdK) answers")
        idx = batch.forget.index
        lose, n = sequence_logprob(model, batch.forget)
        win, _ = sequence_logprob(model, batch.alternate)
        loss = dpo_loss(win, self.ref_win[idx], lose, self.ref_lose[idx], self.config.beta)
        return loss, {"forget_nll": float((-lose.sum() / n.sum()).detach())}
