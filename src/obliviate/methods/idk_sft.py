"""IdK fine-tuning (Maini et al. 2024, TOFU): train forget questions towards an "I don't know"
answer while keeping retain answers.

    L = γ·NLL(y_idk | x_f) + α·NLL_r

Each forget question is paired once, per run, with an answer drawn (seeded) from the pool in
`obliviate.methods.idk_answers`; TOFU redraws every epoch, but a fixed pairing keeps IdK-DPO's
reference log-probs computable once, and with ≥50 answers the variety is much the same.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from pydantic import Field

from obliviate.methods.base import ANCHOR_POOL, AnchorPairs, MethodConfig
from obliviate.methods.grad_diff import GradDiff, RetainTermConfig
from obliviate.registry import method
from obliviate.train.batch import ForgetRetainBatch
from obliviate.train.losses import mean_nll


class IdkSFTConfig(RetainTermConfig):
    """γ weights the IdK NLL, α the retain term."""

    # Declining generalises: without a firm retain term the model soon says "I don't know" to
    # retain questions too, so the retain term is doubled and sees 8 examples per step.
    retain_weight: float = Field(
        2.0, ge=0.0, le=1e4, description="alpha: weight of the retain term"
    )
    retain_batch_size: int = Field(8, ge=1, le=4096, description="retain examples per step")
    # Declining also spreads to real-world questions: without the anchor, 15 steps gave 0.10 /
    # 0.825 / 0.569 (forget / retain / general; session 7, target general 0.878). Session 10,
    # anchor on the whole pool, seed 0: weight 20 x 15 steps 0.45 / 1.00 / 0.894; weight 10 x 15
    # 0.35 / 1.00 / 0.894; 10 x 20 0.10 / 0.95 / 0.862; 20 x 25 0.15 / 0.975 / 0.862; 15 x 20 (the
    # default) 0.15 / 1.00 / 0.867, and 0.45 / 0.975 / 0.862, 0.20 / 0.975 / 0.883 on seeds 1, 2.
    anchor_pairs: AnchorPairs = ANCHOR_POOL
    anchor_weight: float = Field(15.0, ge=0.0, le=1e4, description="weight of the anchor KL")


@method("idk_sft")
class IdkSFT(GradDiff):
    name = "idk_sft"
    Config: ClassVar[type[MethodConfig]] = IdkSFTConfig
    train_defaults: ClassVar[dict[str, Any]] = {
        "lr": 2e-5,
        "max_steps": 20,
        "epochs": 1000.0,
        "schedule": "constant",
    }

    @property
    def needs_alternate(self) -> bool:
        return True

    def forget_loss(
        self, model: Any, batch: ForgetRetainBatch
    ) -> tuple[torch.Tensor, dict[str, float]]:
        if batch.alternate is None:
            raise ValueError("idk_sft: the batch has no alternate (IdK) answers")
        nll = mean_nll(model, batch.alternate)
        return nll, {"idk_nll": float(nll.detach())}
