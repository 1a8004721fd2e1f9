"""ULD, unlearning from logit difference (Ji et al. 2024): reverse the objectives and train a
small *assistant* to remember the forget set and to know nothing on the retain set, then
subtract its logits from the target's at inference (see `uld_model.ULDModel`).

    L_assistant = NLL_f + α·KL(uniform ‖ π_assistant) on retain tokens

The target is never modified, so retain knowledge cannot be damaged by the training itself;
everything rests on the assistant being confident on forget inputs and flat elsewhere. The
assistant is the target's first layers (a quarter of them, 8 of 32 in the paper) with its
embeddings and head, trained in full (or with LoRA when the caller asks for it).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from pydantic import Field

from obliviate.methods.base import Context, Method, MethodConfig, UnlearnData
from obliviate.methods.uld_model import ULDModel, truncated_copy
from obliviate.registry import method
from obliviate.train.batch import ForgetRetainBatch, TokenBatch
from obliviate.train.loop import StepOutput
from obliviate.train.losses import mean_nll


class ULDConfig(MethodConfig):
    assistant_layers: int | None = Field(
        None,
        ge=1,
        le=1024,
        description="decoder layers of the assistant (None: a quarter of the target's)",
    )
    weight: float = Field(-0.8, ge=-10.0, le=0.0, description="w in z_target + w * z_assistant")
    relative_top: float = Field(
        0.01,
        gt=0.0,
        le=1.0,
        description="offset only tokens with p >= relative_top x max p of the target",
    )
    retain_weight: float = Field(
        5.0, ge=0.0, le=1e4, description="alpha: weight of the retain uniform loss"
    )


def uniform_kl(model: Any, batch: TokenBatch) -> torch.Tensor:
    """KL(uniform ‖ π) = −log V − mean_v log π(v), averaged over non-pad positions."""
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    lp = torch.log_softmax(logits.float(), dim=-1)
    per_pos = -lp.mean(-1) - math.log(lp.shape[-1])
    m = batch.attention_mask.to(per_pos.dtype)
    return (per_pos * m).sum() / m.sum().clamp(min=1)


@method("uld")
class ULD(Method):
    name = "uld"
    Config: ClassVar[type[MethodConfig]] = ULDConfig
    train_defaults: ClassVar[dict[str, Any]] = {
        "lr": 3e-4,
        "max_steps": 60,
        "epochs": 1000.0,
        "schedule": "constant",
    }
    monitor_retain: ClassVar[bool] = False
    trains_output: ClassVar[bool] = False  # it trains the assistant, not the model it saves

    @property
    def needs_retain(self) -> bool:
        return bool(self.config.retain_weight > 0)

    def prepare(self, model: Any, data: UnlearnData, ctx: Context) -> Any:
        n = self.config.assistant_layers or max(1, round(int(model.config.num_hidden_layers) / 4))
        assistant = truncated_copy(model, n)
        for p in model.parameters():  # the target never trains
            p.requires_grad_(False)
        ctx.notes["uld_assistant_layers"] = n
        return assistant.train()

    def loss(self, model: Any, batch: ForgetRetainBatch) -> StepOutput:
        f = mean_nll(model, batch.forget)
        total, logs = f, {"forget_loss": float(f.detach())}
        if self.config.retain_weight > 0:
            if batch.retain is None:
                raise ValueError("uld: retain_weight > 0 but the batch has no retain data")
            r = uniform_kl(model, batch.retain)
            total = total + self.config.retain_weight * r
            logs["retain_loss"] = float(r.detach())
        return StepOutput(total, logs)

    def finalize(self, trained: Any, original: Any) -> Any:
        from obliviate.train.lora import merge_lora

        return ULDModel(
            original, merge_lora(trained).eval(), self.config.weight, self.config.relative_top
        ).eval()
