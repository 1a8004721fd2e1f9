"""Task-vector negation (Ilharco et al. 2023, "Editing Models with Task Arithmetic"; the MUSE
baseline, Shi et al. 2024).

Fine-tune a copy further on the forget set, then move the model the other way:

    θ_new = θ − α·(θ_ft − θ)

The training loop fine-tunes the model itself (plain NLL descent on D_f) after `trainable`
snapshots θ, and `finalize` applies the negation, so no second full model is ever held. Under
LoRA the adapter's update is s·B·A, so negating it is scaling B by −α (A stays as trained).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from pydantic import Field

from obliviate.methods.base import Method, MethodConfig
from obliviate.registry import method
from obliviate.train.batch import ForgetRetainBatch
from obliviate.train.loop import StepOutput
from obliviate.train.losses import mean_nll


class TaskVectorConfig(MethodConfig):
    alpha: float = Field(
        5.0, gt=0.0, le=1e3, description="negation scale alpha (MUSE uses about 5)"
    )


def negate(theta: torch.Tensor, theta_ft: torch.Tensor, alpha: float) -> torch.Tensor:
    """θ − α·(θ_ft − θ)."""
    return theta - alpha * (theta_ft - theta)


@method("task_vector")
class TaskVector(Method):
    name = "task_vector"
    Config: ClassVar[type[MethodConfig]] = TaskVectorConfig
    train_defaults: ClassVar[dict[str, Any]] = {
        "lr": 1e-5,
        "max_steps": 10,
        "epochs": 1000.0,
        "schedule": "constant",
    }
    trains_output: ClassVar[bool] = False  # it trains a forget expert, then subtracts it

    def trainable(self, model: Any) -> None:
        # θ before fine-tuning, for the trained parameters only (LoRA: just the adapters).
        self.theta0 = {
            n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad
        }

    def loss(self, model: Any, batch: ForgetRetainBatch) -> StepOutput:
        nll = mean_nll(model, batch.forget)
        return StepOutput(
            nll, {"forget_loss": float(nll.detach()), "forget_nll": float(nll.detach())}
        )

    @torch.no_grad()
    def finalize(self, trained: Any, original: Any) -> Any:
        a = self.config.alpha
        for name, p in trained.named_parameters():
            if name not in self.theta0:
                continue
            if "lora_B" in name:
                p.mul_(-a)
            elif "lora_A" not in name:
                p.copy_(negate(self.theta0[name].to(p.device), p, a))
        self.theta0 = {}
        return trained
